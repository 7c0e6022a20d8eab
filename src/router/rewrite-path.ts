// The paths a rule's `redirect` and `rewrite` policies produce (Gateway API
// HTTPPathModifier: ReplaceFullPath and ReplacePrefixMatch).

import { normalizePath } from './normalize-path.ts'
import { expandGroups } from './path-regex.ts'
import type { Route } from './route.ts'

/**
 * The path `route` turns `path` (the one it matched) into, given a policy's
 * `full` path (with `$1`..`$9` from the rule's regex) or `prefix`; `path`
 * itself when the policy has neither. Outside raw routes the result is
 * normalised (throws PathError when it would climb above `/`), so that
 * capture groups cannot assemble a dot-segment the upstream would resolve.
 */
export function replacedPath(route: Route, path: string, full: string | undefined, prefix: string | undefined): string {
  let out: string
  if (full !== undefined) {
    const match = route.regex === undefined || !full.includes('$') ? undefined : route.regex.exec(path)
    out = match === undefined || match === null ? full : expandGroups(full, match)
  } else if (prefix !== undefined) {
    const cut = route.matchMode === 'prefix' ? route.path.length : route.segmentKey.length
    const rest = path.slice(cut)
    // Gateway API: `/foo` → `/` on `/foo/bar` gives `/bar`, not `//bar`.
    if (rest === '') out = prefix
    else if (prefix.endsWith('/') && rest.startsWith('/')) out = prefix + rest.slice(1)
    else if (!prefix.endsWith('/') && !rest.startsWith('/')) out = `${prefix}/${rest}`
    else out = prefix + rest
  } else {
    return path
  }
  if (out === '' || out.charCodeAt(0) !== 47 /* '/' */) out = '/' + out
  return route.raw ? out : normalizePath(out)
}

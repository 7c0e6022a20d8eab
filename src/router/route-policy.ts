// A rule's policies, compiled once per config load (docs/configuration.md,
// "Per-route policies"). A route without policies has none of this: the
// request handler checks one field and goes on as before.

import type { BlockList } from 'node:net'
import { blockListOf } from './cidr-list.ts'
import type { HeaderEdits, RedirectPolicy, RewritePolicy, RuleConfig } from '../config/schema.ts'

/** Edits the header lines the proxy passes through (`Name: value\r\n` each). */
export type HeaderEditor = (lines: string) => string

export interface RoutePolicy {
  readonly redirect: RedirectPolicy | undefined
  readonly rewrite: RewritePolicy | undefined
  readonly forceSslRedirect: boolean
  readonly requestHeaders: HeaderEditor | undefined
  readonly responseHeaders: HeaderEditor | undefined
  /** The rule's deadlines in ms (the handler passes them to the upstream connection). */
  readonly timeouts: { connectMs?: number; responseMs?: number; idleMs?: number } | undefined
  /** Client addresses allowed (undefined: any) and refused (undefined: none). */
  readonly allow: BlockList | undefined
  readonly deny: BlockList | undefined
  /** Largest request body in bytes; -1: no limit. */
  readonly maxBodySize: number
  /** `redirect.path` or `rewrite.path` refers to capture groups: the handler runs the rule's regex again for them. */
  readonly needsGroups: boolean
}

/** The rule's policies, or undefined when it has none (the fast path). */
export function compilePolicy(rule: RuleConfig): RoutePolicy | undefined {
  if (
    rule.redirect === undefined &&
    rule.rewrite === undefined &&
    rule.forceSslRedirect !== true &&
    rule.requestHeaders === undefined &&
    rule.responseHeaders === undefined &&
    rule.maxBodySize === undefined &&
    rule.timeouts === undefined &&
    rule.allow === undefined &&
    rule.deny === undefined
  ) {
    return undefined
  }
  const templates = [rule.redirect?.path, rule.rewrite?.path].filter((t) => t !== undefined)
  return {
    redirect: rule.redirect,
    rewrite: rule.rewrite,
    forceSslRedirect: rule.forceSslRedirect === true,
    requestHeaders: headerEditor(rule.requestHeaders),
    responseHeaders: headerEditor(rule.responseHeaders),
    maxBodySize: rule.maxBodySize ?? -1,
    allow: rule.allow === undefined ? undefined : blockListOf(rule.allow),
    deny: rule.deny === undefined ? undefined : blockListOf(rule.deny),
    timeouts:
      rule.timeouts === undefined
        ? undefined
        : {
            ...(rule.timeouts.connect !== undefined ? { connectMs: rule.timeouts.connect * 1000 } : {}),
            ...(rule.timeouts.response !== undefined ? { responseMs: rule.timeouts.response * 1000 } : {}),
            ...(rule.timeouts.idle !== undefined ? { idleMs: rule.timeouts.idle * 1000 } : {}),
          },
    needsGroups: rule.matchMode === 'regex' && templates.some((t) => /\$[1-9]/.test(t)),
  }
}

/**
 * Gateway API's header modifier semantics: `set` replaces every field of
 * its name, `add` appends one more (after any existing), `remove` drops
 * them all. Applied to the pass-through lines, which hold neither the
 * framing fields nor the proxy's own (validation keeps policies off those).
 */
export function headerEditor(edits: HeaderEdits | undefined): HeaderEditor | undefined {
  if (edits === undefined) return undefined
  const drop = new Set<string>([...(edits.remove ?? []), ...(edits.set ?? []).map((h) => h.name.toLowerCase())])
  let extra = ''
  for (const h of edits.set ?? []) extra += `${h.name}: ${h.value}\r\n`
  for (const h of edits.add ?? []) extra += `${h.name}: ${h.value}\r\n`
  if (drop.size === 0) return (lines) => lines + extra
  return (lines) => {
    let out = ''
    let start = 0
    while (start < lines.length) {
      let end = lines.indexOf('\r\n', start)
      end = end === -1 ? lines.length : end + 2
      const colon = lines.indexOf(':', start)
      const name = lines.slice(start, colon === -1 || colon > end ? end : colon).toLowerCase()
      if (!drop.has(name)) out += lines.slice(start, end)
      start = end
    }
    return out + extra
  }
}

// The paths of one host's rules, indexed so that a lookup costs O(length of
// the request path), whatever the number of rules.
//
// Semantics stay those of the original NanoProxy: rules are tried in file
// order and the first match wins. Instead of trying them one by one, every
// index returns the earliest rule (lowest file index) that matches, and the
// earliest of those wins. That is the same answer a linear scan gives.

import { earliest, type Route } from './route.ts'

/** The prefix lengths of an index without `prefix` rules (shared: never changed). */
const NO_LENGTHS: readonly number[] = []

export class PathIndex {
  // The maps are created with their first rule: a 10,000-host table has
  // 10,000 indexes, most with one kind of rule, and an empty Map still costs
  // ~100 bytes. Fewer objects also make the garbage collector's pauses
  // shorter after a reload (it marks every live object).
  /** `exact`: the whole path, compared byte for byte. */
  private exact: Map<string, Route> | undefined
  /**
   * `pathPrefix` (Kubernetes Prefix): keyed by the rule path without its
   * trailing slash, so `/foo` and `/foo/` share the key `/foo` and `/` is ''.
   */
  private segment: Map<string, Route> | undefined
  /** `prefix` (string prefix): keyed by length, then by the prefix itself. */
  private prefixByLength: Map<number, Map<string, Route>> | undefined
  private prefixLengths: readonly number[] = NO_LENGTHS
  /** `regex`: tried one by one, in file order (an automaton each, linear in the path). */
  private regexes: Route[] | undefined
  /** The routes in match order, for display. */
  readonly routes: Route[] = []

  add(route: Route): void {
    this.routes.push(route)
    switch (route.matchMode) {
      case 'exact':
        keepFirst((this.exact ??= new Map<string, Route>()), route.path, route)
        break
      case 'pathPrefix':
        keepFirst((this.segment ??= new Map<string, Route>()), route.segmentKey, route)
        break
      case 'regex':
        ;(this.regexes ??= []).push(route)
        break
      case 'prefix': {
        const byLength = (this.prefixByLength ??= new Map<number, Map<string, Route>>())
        let byPrefix = byLength.get(route.path.length)
        if (!byPrefix) {
          byPrefix = new Map<string, Route>()
          byLength.set(route.path.length, byPrefix)
          this.prefixLengths = [...byLength.keys()].sort((a, b) => a - b)
        }
        keepFirst(byPrefix, route.path, route)
        break
      }
    }
  }

  /** The first rule in file order whose path matches `path` (no query string). */
  match(path: string): Route | undefined {
    let best = this.exact?.get(path)

    const segment = this.segment
    if (segment !== undefined) {
      // Candidates are '' (the rule `/`), every prefix ending before a '/',
      // and the whole path: `/aaa/bbb` tries '', `/aaa`, `/aaa/bbb`.
      best = earliest(best, segment.get(''))
      for (let i = path.indexOf('/', 1); i !== -1; i = path.indexOf('/', i + 1)) {
        best = earliest(best, segment.get(path.slice(0, i)))
      }
      if (path.length > 1 && path.charCodeAt(path.length - 1) !== 47 /* '/' */) {
        best = earliest(best, segment.get(path))
      }
    }

    const lengths = this.prefixLengths
    for (let i = 0; i < lengths.length; i++) {
      const len = lengths[i]!
      if (len > path.length) break
      best = earliest(best, this.prefixByLength!.get(len)!.get(len === path.length ? path : path.slice(0, len)))
    }
    const regexes = this.regexes
    if (regexes !== undefined) for (let i = 0; i < regexes.length; i++) {
      const route = regexes[i]!
      // In file order: once one matches, later ones cannot be earlier.
      if (best !== undefined && best.index < route.index) break
      if (route.regex!.test(path)) return route
    }
    return best
  }
}

function keepFirst(map: Map<string, Route>, key: string, route: Route): void {
  if (!map.has(key)) map.set(key, route)
}

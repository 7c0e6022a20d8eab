// The paths of one host's rules, indexed so that a lookup costs O(length of
// the request path), whatever the number of rules.
//
// Semantics stay those of the original NanoProxy: rules are tried in file
// order and the first match wins. Instead of trying them one by one, every
// index returns the earliest rule (lowest file index) that matches, and the
// earliest of those wins. That is the same answer a linear scan gives.

import { earliest, type Route } from './route.ts'

export class PathIndex {
  /** `exact`: the whole path, compared byte for byte. */
  private readonly exact = new Map<string, Route>()
  /**
   * `pathPrefix` (Kubernetes Prefix): keyed by the rule path without its
   * trailing slash, so `/foo` and `/foo/` share the key `/foo` and `/` is ''.
   */
  private readonly segment = new Map<string, Route>()
  /** `prefix` (string prefix): keyed by length, then by the prefix itself. */
  private readonly prefixByLength = new Map<number, Map<string, Route>>()
  private prefixLengths: number[] = []
  /** `regex`: tried one by one, in file order (an automaton each, linear in the path). */
  private readonly regexes: Route[] = []
  /** The routes in match order, for display. */
  readonly routes: Route[] = []

  add(route: Route): void {
    this.routes.push(route)
    switch (route.matchMode) {
      case 'exact':
        keepFirst(this.exact, route.path, route)
        break
      case 'pathPrefix':
        keepFirst(this.segment, route.segmentKey, route)
        break
      case 'regex':
        this.regexes.push(route)
        break
      case 'prefix': {
        let byPrefix = this.prefixByLength.get(route.path.length)
        if (!byPrefix) {
          byPrefix = new Map()
          this.prefixByLength.set(route.path.length, byPrefix)
          this.prefixLengths = [...this.prefixByLength.keys()].sort((a, b) => a - b)
        }
        keepFirst(byPrefix, route.path, route)
        break
      }
    }
  }

  /** The first rule in file order whose path matches `path` (no query string). */
  match(path: string): Route | undefined {
    let best = this.exact.get(path)

    if (this.segment.size > 0) {
      // Candidates are '' (the rule `/`), every prefix ending before a '/',
      // and the whole path: `/aaa/bbb` tries '', `/aaa`, `/aaa/bbb`.
      best = earliest(best, this.segment.get(''))
      for (let i = path.indexOf('/', 1); i !== -1; i = path.indexOf('/', i + 1)) {
        best = earliest(best, this.segment.get(path.slice(0, i)))
      }
      if (path.length > 1 && path.charCodeAt(path.length - 1) !== 47 /* '/' */) {
        best = earliest(best, this.segment.get(path))
      }
    }

    const lengths = this.prefixLengths
    for (let i = 0; i < lengths.length; i++) {
      const len = lengths[i]!
      if (len > path.length) break
      best = earliest(best, this.prefixByLength.get(len)!.get(len === path.length ? path : path.slice(0, len)))
    }
    const regexes = this.regexes
    for (let i = 0; i < regexes.length; i++) {
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

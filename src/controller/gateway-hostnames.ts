// Hostname matching between Gateway listeners and HTTPRoutes.
//
// gateway-api apis/v1/gateway_types.go (Listener.Hostname) and
// httproute_types.go (HTTPRouteSpec.Hostnames):
// - a wildcard `*.example.com` matches one or MORE labels in front of
//   `example.com` (`foo.example.com`, `foo.bar.example.com`), never
//   `example.com` itself. (Ingress's wildcard covers one label only: the two
//   APIs differ here.)
// - a listener without a hostname accepts every route hostname; a route
//   without hostnames takes the listener's;
// - otherwise the route's hostnames that do not match the listener's are
//   ignored, and when none match the route is not accepted on that listener
//   (reason NoMatchingListenerHostname);
// - a listener `test.example.com` matches a route `*.example.com` (the
//   effective hostname is then the listener's), and a listener
//   `*.example.com` a route `*.foo.example.com` (the route's, the narrower).

/** Whether `wildcard` (`*.suffix`) covers `name` (an exact name or a narrower wildcard). */
export function wildcardCovers(wildcard: string, name: string): boolean {
  if (!wildcard.startsWith('*.')) return false
  const suffix = wildcard.slice(1) // ".example.com"
  return name.length > suffix.length && name.endsWith(suffix) && name !== wildcard
}

/**
 * The hostnames a route serves on a listener: undefined when the route
 * serves every host there (neither side names one), [] when they do not
 * intersect, else the effective names (lower-case, deduplicated, in the
 * route's order).
 */
export function intersectHostnames(listenerHostname: string | undefined, routeHostnames: readonly string[] | undefined): string[] | undefined {
  const listener = listenerHostname?.toLowerCase() || undefined
  const route = (routeHostnames ?? []).map((h) => h.toLowerCase())
  if (route.length === 0) return listener === undefined ? undefined : [listener]
  if (listener === undefined) return [...new Set(route)]
  const out: string[] = []
  for (const h of route) {
    if (h === listener || wildcardCovers(listener, h)) out.push(h)
    else if (wildcardCovers(h, listener)) out.push(listener)
  }
  return [...new Set(out)]
}

/**
 * Whether two listener hostnames (either possibly absent: every host) can
 * both receive a request for some name, the test for HostnameConflict
 * between listeners on one port: only identical hostnames conflict
 * (gateway_types.go: listeners on a port must be distinct by hostname).
 */
export function sameListenerHostname(a: string | undefined, b: string | undefined): boolean {
  return (a?.toLowerCase() || '') === (b?.toLowerCase() || '')
}

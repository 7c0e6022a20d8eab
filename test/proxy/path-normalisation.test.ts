// Black-box tests of the path the proxy routes by and the path the upstream
// receives (docs/routing.md, "Path normalisation"): every disguise of
// `/admin` must reach the rule for `/admin`, as the normalised `/admin`, so
// that the proxy and the application agree on the path. Raw sockets on both
// sides: the request line each upstream received is asserted byte for byte.

import assert from 'node:assert/strict'
import { after, before, describe, it } from 'node:test'
import { startProxy, type ProxyProcess } from '../helpers/proxy-process.ts'
import { sendRaw } from '../helpers/http-client.ts'
import { ScriptedUpstream } from '../helpers/raw-http.ts'
import { config } from '../helpers/upstreams.ts'

const NAMES = ['admin', 'exact', 'api', 'k8s', 'raw', 'other'] as const
type Name = (typeof NAMES)[number]

// In file order; the first rule that matches wins.
const RULES = `  - { upstream: admin, path: /admin, matchMode: pathPrefix }
  - { upstream: exact, path: /exact/x, matchMode: exact }
  - { upstream: api, path: /api, stripPath: true }
  - { upstream: k8s, path: /k8s/, matchMode: pathPrefix, stripPath: true }
  - { upstream: raw, path: /raw/, rawPath: true }
  - { upstream: other, path: / }
`

interface Outcome {
  status: number
  /** The upstream that received the request, and the request target it received. */
  upstream?: Name
  target?: string
}

function setup(env: Record<string, string> = {}): { send(target: string): Promise<Outcome>; proxy(): ProxyProcess } {
  const ups = new Map<Name, ScriptedUpstream>()
  let proxy: ProxyProcess
  before(async () => {
    for (const name of NAMES) {
      ups.set(
        name,
        await ScriptedUpstream.start(({ socket }) => void socket.write(`HTTP/1.1 200 OK\r\nx-upstream: ${name}\r\ncontent-length: 0\r\n\r\n`)),
      )
    }
    proxy = await startProxy({ env, config: config(Object.fromEntries([...ups].map(([n, u]) => [n, u.port])), RULES) })
  })
  after(async () => {
    await proxy.stop()
    for (const u of ups.values()) await u.close()
  })
  return {
    proxy: () => proxy,
    async send(target: string): Promise<Outcome> {
      const before = new Map([...ups].map(([n, u]) => [n, u.requests.length]))
      const text = await sendRaw(proxy.port, `GET ${target} HTTP/1.1\r\nHost: t.example\r\nConnection: close\r\n\r\n`)
      const status = Number(/^HTTP\/1\.1 (\d{3}) /.exec(text)?.[1] ?? 0)
      const reached = [...ups].filter(([n, u]) => u.requests.length > before.get(n)!)
      assert.ok(reached.length <= 1, `more than one upstream reached: ${reached.map(([n]) => n).join(', ')}`)
      if (reached.length === 0) return { status }
      const [name, up] = reached[0]!
      const line = up.requests.at(-1)!.head.split('\r\n')[0]!
      assert.match(line, /^GET \S+ HTTP\/1\.1$/)
      return { status, upstream: name, target: line.split(' ')[1] }
    },
  }
}

describe('path normalisation: request target → rule → path the upstream receives', () => {
  const s = setup()

  const rows: [string, Outcome][] = [
    // Every disguise of /admin reaches the /admin rule as /admin.
    ['/admin', { status: 200, upstream: 'admin', target: '/admin' }],
    ['//admin', { status: 200, upstream: 'admin', target: '/admin' }],
    ['///admin//', { status: 200, upstream: 'admin', target: '/admin/' }],
    ['/%61dmin', { status: 200, upstream: 'admin', target: '/admin' }],
    ['/%61%64%6D%69%6e', { status: 200, upstream: 'admin', target: '/admin' }],
    ['/x/../admin', { status: 200, upstream: 'admin', target: '/admin' }],
    ['/./admin', { status: 200, upstream: 'admin', target: '/admin' }],
    ['/x/%2e%2E/admin', { status: 200, upstream: 'admin', target: '/admin' }],
    ['/admin/./x//y/../z', { status: 200, upstream: 'admin', target: '/admin/x/z' }],
    ['/admin?next=/../%61', { status: 200, upstream: 'admin', target: '/admin?next=/../%61' }],
    // Kubernetes Prefix stays element-wise, case-sensitive, on the normalised path.
    ['/adminx', { status: 200, upstream: 'other', target: '/adminx' }],
    ['/ADMIN', { status: 200, upstream: 'other', target: '/ADMIN' }],
    // %2F is data, not a separator: one segment `admin%2Fx`, kept encoded (hex upper-cased).
    ['/admin%2fx', { status: 200, upstream: 'other', target: '/admin%2Fx' }],
    ['/files/a%2Fb%5cc', { status: 200, upstream: 'other', target: '/files/a%2Fb%5Cc' }],
    ['/caf%c3%a9', { status: 200, upstream: 'other', target: '/caf%C3%A9' }],
    // Refused: a disguised dot-segment, a fragment, a backslash, escaping the root, bad escapes.
    ['/x/..%2fadmin', { status: 400 }],
    ['/x/..%5Cadmin', { status: 400 }],
    ['/x/..;/admin', { status: 400 }],
    ['/admin#x', { status: 400 }],
    ['/x#/../admin', { status: 400 }],
    ['/x\\..\\admin', { status: 400 }],
    ['/..', { status: 400 }],
    ['/../admin', { status: 400 }],
    ['/x/../../admin', { status: 400 }],
    ['/%2e%2e/admin', { status: 400 }],
    ['/admin%zz', { status: 400 }],
    // Exact compares the whole normalised path.
    ['/exact/x', { status: 200, upstream: 'exact', target: '/exact/x' }],
    ['/exact//x', { status: 200, upstream: 'exact', target: '/exact/x' }],
    ['/exact/./%78', { status: 200, upstream: 'exact', target: '/exact/x' }],
    ['/exact/x/', { status: 200, upstream: 'other', target: '/exact/x/' }],
    ['/exact/x/y/..', { status: 200, upstream: 'other', target: '/exact/x/' }],
    // String prefix with stripPath: the prefix comes off the normalised path.
    ['/api/users?q=/../a%7e', { status: 200, upstream: 'api', target: '/users?q=/../a%7e' }],
    ['/api//users/./me', { status: 200, upstream: 'api', target: '/users/me' }],
    ['/api/../admin', { status: 200, upstream: 'admin', target: '/admin' }],
    ['/apix/y', { status: 200, upstream: 'api', target: '/x/y' }],
    ['/api../admin', { status: 400 }],
    ['/api.', { status: 200, upstream: 'api', target: '/' }],
    // Kubernetes Prefix with stripPath.
    ['/k8s', { status: 200, upstream: 'k8s', target: '/' }],
    ['/k8s/a/../b', { status: 200, upstream: 'k8s', target: '/b' }],
    ['/k8s/%7Euser', { status: 200, upstream: 'k8s', target: '/~user' }],
    ['/k8s/..', { status: 200, upstream: 'other', target: '/' }],
    // A rawPath rule matches and forwards the bytes as received.
    ['/raw/%7E/../x', { status: 200, upstream: 'raw', target: '/raw/%7E/../x' }],
    ['/raw/../../x', { status: 200, upstream: 'raw', target: '/raw/../../x' }],
    ['//raw/x', { status: 200, upstream: 'other', target: '/raw/x' }],
    ['/raw/a\\b', { status: 400 }],
    // Absolute-form targets are normalised the same way.
    ['http://t.example//admin', { status: 200, upstream: 'admin', target: '/admin' }],
    ['http://t.example/x/../admin?q=%7e', { status: 200, upstream: 'admin', target: '/admin?q=%7e' }],
    ['http://t.example/x/..%2Fadmin', { status: 400 }],
    ['http://t.example', { status: 200, upstream: 'other', target: '/' }],
    ['http://t.example?a', { status: 200, upstream: 'other', target: '/?a' }],
    // Asterisk-form stays refused, as before (OPTIONS * is not routed).
    ['*', { status: 400 }],
  ]
  for (const [target, want] of rows) {
    const what = want.status === 200 ? `routes ${target} to ${want.upstream} as ${want.target}` : `refuses ${target} with ${want.status}, without reaching an upstream`
    it(what, async () => {
      assert.deepEqual(await s.send(target), want)
    })
  }

  it('answers the health check at a disguised /.nanoproxy/health too', async () => {
    const text = await sendRaw(s.proxy().port, 'GET //.nanoproxy/./health HTTP/1.1\r\nHost: t.example\r\nConnection: close\r\n\r\n')
    assert.match(text, /^HTTP\/1\.1 200 [^]*\r\n\r\nOK$/)
  })

  it('logs a refused path with its reason in the access log', async () => {
    await s.send('/x/../../logged')
    const line = await s.proxy().waitForLog((l) => l.msg === 'request' && l.path === '/x/../../logged')
    assert.equal(line.status, 400)
    assert.equal(line.error, 'NP_ERR_BAD_REQUEST')
  })
})

describe('path normalisation off: RAW_PATHS=true matches and forwards raw paths, as before', () => {
  const s = setup({ RAW_PATHS: 'true' })

  const rows: [string, Outcome][] = [
    ['//admin', { status: 200, upstream: 'other', target: '//admin' }],
    ['/%61dmin', { status: 200, upstream: 'other', target: '/%61dmin' }],
    ['/x/../admin', { status: 200, upstream: 'other', target: '/x/../admin' }],
    ['/api/../admin', { status: 200, upstream: 'api', target: '/../admin' }],
    ['/admin%2fx', { status: 200, upstream: 'other', target: '/admin%2fx' }],
    ['/admin', { status: 200, upstream: 'admin', target: '/admin' }],
    // Never valid in a request target, raw or not.
    ['/admin#x', { status: 400 }],
    ['/a\\admin', { status: 400 }],
  ]
  for (const [target, want] of rows) {
    const what = want.status === 200 ? `routes ${target} to ${want.upstream} as ${want.target}` : `still refuses ${target} with ${want.status}`
    it(what, async () => {
      assert.deepEqual(await s.send(target), want)
    })
  }
})

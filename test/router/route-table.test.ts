import assert from 'node:assert/strict'
import { describe, it } from 'node:test'
import type { MatchMode, ProxyConfig, RuleConfig } from '../../src/config/schema.ts'
import { routingHost } from '../../src/router/request-host.ts'
import { upstreamTarget } from '../../src/router/route.ts'
import { RouteTable } from '../../src/router/route-table.ts'

type R = Partial<RuleConfig> & { path: string }

function table(rules: R[]): RouteTable {
  const config: ProxyConfig = {
    upstreams: [{ name: 'u', host: 'u.example', port: 80, scheme: 'http', noHostRewrite: false }],
    rules: rules.map((r) => ({ upstream: 'u', host: '', matchMode: 'prefix', stripPath: false, ...r })),
  }
  return new RouteTable(config)
}

/** The 1-based number of the rule that answers, or 0 for none. */
function ruleFor(t: RouteTable, path: string, host = 'any.example'): number {
  const route = t.match(routingHost(host), path)
  return route ? route.index + 1 : 0
}

describe('routing: Kubernetes path types (pathPrefix and exact)', () => {
  // Every row of the table in kubernetes.io/docs/concepts/services-networking/ingress/#examples.
  // Multi-path rows list rules as the controller emits them: longest first, Exact before Prefix.
  const rows: { rules: [MatchMode, string][]; path: string; want: number }[] = [
    { rules: [['pathPrefix', '/']], path: '/anything/at/all', want: 1 },
    { rules: [['exact', '/foo']], path: '/foo', want: 1 },
    { rules: [['exact', '/foo']], path: '/bar', want: 0 },
    { rules: [['exact', '/foo']], path: '/foo/', want: 0 },
    { rules: [['exact', '/foo/']], path: '/foo', want: 0 },
    { rules: [['pathPrefix', '/foo']], path: '/foo', want: 1 },
    { rules: [['pathPrefix', '/foo']], path: '/foo/', want: 1 },
    { rules: [['pathPrefix', '/foo/']], path: '/foo', want: 1 },
    { rules: [['pathPrefix', '/foo/']], path: '/foo/', want: 1 },
    { rules: [['pathPrefix', '/aaa/bb']], path: '/aaa/bbb', want: 0 },
    { rules: [['pathPrefix', '/aaa/bbb']], path: '/aaa/bbb', want: 1 },
    { rules: [['pathPrefix', '/aaa/bbb/']], path: '/aaa/bbb', want: 1 },
    { rules: [['pathPrefix', '/aaa/bbb']], path: '/aaa/bbb/', want: 1 },
    { rules: [['pathPrefix', '/aaa/bbb']], path: '/aaa/bbb/ccc', want: 1 },
    { rules: [['pathPrefix', '/aaa/bbb']], path: '/aaa/bbbxyz', want: 0 },
    { rules: [['pathPrefix', '/aaa'], ['pathPrefix', '/']], path: '/aaa/ccc', want: 1 },
    { rules: [['pathPrefix', '/aaa/bbb'], ['pathPrefix', '/aaa'], ['pathPrefix', '/']], path: '/aaa/bbb', want: 1 },
    { rules: [['pathPrefix', '/aaa/bbb'], ['pathPrefix', '/aaa'], ['pathPrefix', '/']], path: '/ccc', want: 3 },
    { rules: [['pathPrefix', '/aaa']], path: '/ccc', want: 0 },
    { rules: [['exact', '/foo'], ['pathPrefix', '/foo']], path: '/foo', want: 1 },
  ]
  for (const row of rows) {
    const desc = row.rules.map(([m, p]) => `${m} ${p}`).join(' + ')
    it(`${desc} ${row.want ? `matches ${row.path} with rule ${row.want}` : `does not match ${row.path}`}`, () => {
      const t = table(row.rules.map(([matchMode, path]) => ({ matchMode, path })))
      assert.equal(ruleFor(t, row.path), row.want)
    })
  }
})

describe('routing: the original NanoProxy semantics', () => {
  it('prefix is a plain string prefix, as in the original (/api matches /apix)', () => {
    const t = table([{ path: '/api' }])
    assert.equal(ruleFor(t, '/apix'), 1)
    assert.equal(ruleFor(t, '/api/v1'), 1)
    assert.equal(ruleFor(t, '/ap'), 0)
  })

  it('tries rules in file order and the first match wins, whatever the path lengths', () => {
    const t = table([{ path: '/' }, { path: '/api' }, { path: '/api', matchMode: 'exact' }])
    assert.equal(ruleFor(t, '/api'), 1)
    const t2 = table([{ path: '/api', matchMode: 'exact' }, { path: '/api/v1' }, { path: '/' }])
    assert.equal(ruleFor(t2, '/api'), 1)
    assert.equal(ruleFor(t2, '/api/v1/x'), 2)
    assert.equal(ruleFor(t2, '/other'), 3)
  })

  it('keeps file order between modes: a later exact rule loses to an earlier prefix rule', () => {
    const t = table([{ path: '/a' }, { path: '/a/b', matchMode: 'pathPrefix' }, { path: '/a/b', matchMode: 'exact' }])
    assert.equal(ruleFor(t, '/a/b'), 1)
  })

  it('matches hosts case-insensitively and without the port; an empty rule host matches every host', () => {
    const t = table([{ path: '/', host: 'api.example.com' }, { path: '/x' }])
    assert.equal(ruleFor(t, '/', 'API.Example.com:8443'), 1)
    assert.equal(ruleFor(t, '/', 'api.example.com.'), 1)
    assert.equal(ruleFor(t, '/', 'www.example.com'), 0)
    assert.equal(ruleFor(t, '/x', 'www.example.com'), 2)
  })

  it('lets a host-less rule that comes first win over a later rule for the exact host', () => {
    const t = table([{ path: '/x' }, { path: '/', host: 'a.example' }])
    assert.equal(ruleFor(t, '/x', 'a.example'), 1)
    assert.equal(ruleFor(t, '/y', 'a.example'), 2)
  })

  it('matches an IPv6 literal host without brackets and port', () => {
    const t = table([{ path: '/', host: '::1' }])
    assert.equal(ruleFor(t, '/', '[::1]:8080'), 1)
  })
})

describe('routing: wildcard hosts', () => {
  // kubernetes.io/docs/concepts/services-networking/ingress/#hostname-wildcards
  const t = table([{ path: '/', host: '*.foo.com' }])
  it('*.foo.com matches bar.foo.com', () => assert.equal(ruleFor(t, '/', 'bar.foo.com'), 1))
  it('*.foo.com does not match baz.bar.foo.com (one label only)', () => assert.equal(ruleFor(t, '/', 'baz.bar.foo.com'), 0))
  it('*.foo.com does not match foo.com', () => assert.equal(ruleFor(t, '/', 'foo.com'), 0))
  it('*.foo.com does not match .foo.com (an empty label)', () => assert.equal(ruleFor(t, '/', '.foo.com'), 0))

  it('an exact host rule placed before a wildcard rule wins for that host only', () => {
    const t2 = table([{ path: '/', host: 'a.foo.com' }, { path: '/', host: '*.foo.com' }])
    assert.equal(ruleFor(t2, '/', 'a.foo.com'), 1)
    assert.equal(ruleFor(t2, '/', 'b.foo.com'), 2)
  })
})

describe('routing: the request target sent upstream', () => {
  const target = (rule: R, path: string, query = ''): string => {
    const t = table([{ stripPath: true, ...rule }])
    const route = t.match('h', path)
    assert.ok(route, 'expected a match')
    return upstreamTarget(route, path, query)
  }

  it('strips the matched prefix and keeps the query string byte for byte', () => {
    assert.equal(target({ path: '/api' }, '/api/x', '?q=1&b=%2F+x'), '/x?q=1&b=%2F+x')
  })

  it('leaves "/" when the whole path was the prefix', () => {
    assert.equal(target({ path: '/api' }, '/api'), '/')
    assert.equal(target({ path: '/api' }, '/api', '?q'), '/?q')
  })

  it('always starts the stripped path with "/" (prefix /api on /apix gives /x)', () => {
    assert.equal(target({ path: '/api' }, '/apix'), '/x')
    assert.equal(target({ path: '/api/' }, '/api/x'), '/x')
  })

  it('strips a pathPrefix rule by its segments, trailing slash or not', () => {
    assert.equal(target({ path: '/api/', matchMode: 'pathPrefix' }, '/api'), '/')
    assert.equal(target({ path: '/api/', matchMode: 'pathPrefix' }, '/api/v1/x'), '/v1/x')
    assert.equal(target({ path: '/', matchMode: 'pathPrefix' }, '/v1'), '/v1')
  })

  it('strips an exact rule to "/"', () => {
    assert.equal(target({ path: '/login', matchMode: 'exact' }, '/login', '?next=%2F'), '/?next=%2F')
  })

  it('never decodes the path: percent-encoding reaches the upstream unchanged', () => {
    assert.equal(target({ path: '/api', stripPath: false }, '/api/a%2Fb/%E2%9C%93'), '/api/a%2Fb/%E2%9C%93')
    assert.equal(target({ path: '/api' }, '/api/a%2Fb'), '/a%2Fb')
  })
})

describe('routing: a large table', () => {
  it('routes 10,000 rules over 1,000 hosts exactly as a linear first-match scan does', () => {
    const rules: R[] = []
    const modes: MatchMode[] = ['prefix', 'exact', 'pathPrefix']
    for (let i = 0; i < 10_000; i++) {
      const host = i % 7 === 0 ? '' : i % 11 === 0 ? `*.h${i % 1000}.example` : `h${i % 1000}.example`
      rules.push({ host, path: `/p${i % 37}/${i % 5 === 0 ? '' : `s${i % 3}`}`, matchMode: modes[i % 3]! })
    }
    const t = table(rules)
    const linear = (host: string, path: string): number => {
      for (let i = 0; i < rules.length; i++) {
        const r = rules[i]!
        const h = r.host ?? ''
        const hostOk = h === '' || h === host || (h.startsWith('*.') && host.endsWith(h.slice(1)) && !host.slice(0, -h.length + 1).includes('.'))
        if (!hostOk) continue
        const key = r.path.replace(/\/+$/, '')
        const ok =
          r.matchMode === 'exact' ? path === r.path : r.matchMode === 'pathPrefix' ? path === key || path.startsWith(key + '/') : path.startsWith(r.path)
        if (ok) return i + 1
      }
      return 0
    }
    let checked = 0
    for (let h = 0; h < 1000; h += 13) {
      for (const host of [`h${h}.example`, `x.h${h}.example`, 'other.example']) {
        for (const path of ['/', `/p${h % 37}`, `/p${h % 37}/`, `/p${h % 37}/s1`, `/p${h % 37}/s2/deeper`, `/p${h % 37}x`, '/nope']) {
          assert.equal(ruleFor(t, path, host), linear(host, path), `${host}${path}`)
          checked++
        }
      }
    }
    assert.ok(checked > 1000)
  })
})

describe('routing: a table compiled in slices (reloads)', () => {
  // Rules of every kind over many hosts, wildcards and any-host rules included.
  const modes: MatchMode[] = ['prefix', 'exact', 'pathPrefix']
  const rules: R[] = []
  for (let i = 0; i < 3000; i++) {
    const host = i % 7 === 0 ? '' : i % 5 === 0 ? `*.w${i % 11}.example` : `h${i % 400}.example`
    rules.push({ host, path: `/p${i % 13}${i % 2 ? '/' : ''}`, matchMode: modes[i % 3]!, rawPath: i % 17 === 0 })
  }
  const config: ProxyConfig = {
    upstreams: [{ name: 'u', host: 'u.example', port: 80, scheme: 'http', noHostRewrite: false }],
    rules: rules.map((r) => ({ upstream: 'u', host: '', matchMode: 'prefix', stripPath: false, ...r })),
  }

  it('gives way between slices and answers every request as the table compiled at once does', async () => {
    let pauses = 0
    const sliced = await RouteTable.compile(config, {}, { sliceMs: 0, pause: () => ((pauses += 1), Promise.resolve()) })
    const whole = new RouteTable(config)
    assert.ok(pauses > 10, `only ${pauses} pauses`)
    assert.equal(sliced.size, whole.size)
    for (const host of ['h1.example', 'h399.example', 'a.w3.example', 'b.a.w3.example', 'other.example']) {
      for (const path of ['/', '/p1', '/p1/', '/p12/x', '/p3x', '/p7/deep/er']) {
        assert.equal(sliced.match(host, path)?.index, whole.match(host, path)?.index, `${host}${path}`)
      }
    }
    assert.deepEqual(
      sliced.describe().map((g) => [g.host, g.routes.map((r) => r.index)]),
      whole.describe().map((g) => [g.host, g.routes.map((r) => r.index)]),
    )
  })
})

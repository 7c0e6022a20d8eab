import assert from 'node:assert/strict'
import { describe, it } from 'node:test'
import { normalizePath, PathError } from '../../src/router/normalize-path.ts'
import { validAuthority } from '../../src/router/request-host.ts'
import { RouteTable } from '../../src/router/route-table.ts'

describe('path normalisation (RFC 3986 §6.2.2, §5.2.4, merged slashes)', () => {
  const rows: [string, string][] = [
    ['/', '/'],
    ['/admin', '/admin'],
    ['/a/b/c/', '/a/b/c/'],
    ['/.well-known/acme', '/.well-known/acme'],
    ['/a/...b/.c', '/a/...b/.c'],
    ['//admin', '/admin'],
    ['/a//b///c//', '/a/b/c/'],
    ['//', '/'],
    ['/%61dmin', '/admin'],
    ['/%41%5a%7e%2d%2E%5F', '/AZ~-._'],
    ['/a%2fb', '/a%2Fb'],
    ['/a%2Fb%5cc', '/a%2Fb%5Cc'],
    ['/%252e%252e/', '/%252e%252e/'],
    ['/caf%c3%a9', '/caf%C3%A9'],
    ['/%00%20', '/%00%20'],
    ['/./admin', '/admin'],
    ['/x/../admin', '/admin'],
    ['/x/%2e%2E/admin', '/admin'],
    ['/x/.%2e/admin', '/admin'],
    ['/a/b/..', '/a/'],
    ['/a/b/../', '/a/'],
    ['/a/.', '/a/'],
    ['/a/..', '/'],
    ['/.', '/'],
    ['/a/./b/../../c', '/c'],
    ['/a//../b', '/b'],
    ['/a;p=1/b', '/a;p=1/b'],
    ['/..a/b..', '/..a/b..'],
  ]
  for (const [path, want] of rows) {
    it(`normalises ${path} to ${want}`, () => {
      assert.equal(normalizePath(path), want)
    })
  }

  const refused: [string, RegExp][] = [
    ['/..', /above the root/],
    ['/../admin', /above the root/],
    ['/a/../../admin', /above the root/],
    ['/%2e%2e/admin', /above the root/],
    ['/a\\b', /backslash/],
    ['/%zz', /malformed/],
    ['/%4', /malformed/],
    ['/a%', /malformed/],
    ['/x/..%2fadmin', /encoded slash/],
    ['/x/..%5Cadmin', /encoded slash/],
    ['/x/a%2F..%2Fadmin', /encoded slash/],
    ['/x/.%2Fadmin', /encoded slash/],
    ['/api/..;/admin', /dot-segment/],
    ['/api/.;x/admin', /dot-segment/],
  ]
  for (const [path, reason] of refused) {
    it(`refuses ${path}`, () => {
      assert.throws(() => normalizePath(path), (err: unknown) => err instanceof PathError && reason.test(err.message))
    })
  }

  it('returns the very string it was given when the path needs no work', () => {
    const path = ['/api', 'v1', 'users', '42'].join('/')
    assert.equal(normalizePath(path), path)
    assert.ok(Object.is(normalizePath(path), path))
  })
})

describe('rule paths are normalised like request paths', () => {
  it('matches a rule written /%7Euser against the request /~user, and a rawPath rule only against its own bytes', () => {
    const t = new RouteTable({
      upstreams: [{ name: 'u', host: 'u.example', port: 80, scheme: 'http', noHostRewrite: false }],
      rules: [
        { upstream: 'u', host: '', path: '/%7Euser', matchMode: 'exact', stripPath: false },
        { upstream: 'u', host: '', path: '/%7Eraw', matchMode: 'exact', stripPath: false, rawPath: true },
      ],
    })
    assert.equal(t.match('h', '/~user')?.index, 0)
    assert.equal(t.match('h', '/~raw', '/~raw'), undefined)
    assert.equal(t.match('h', '/~raw', '/%7Eraw')?.index, 1)
  })
})

describe('a table with raw and normalised rules', () => {
  const config = {
    upstreams: [{ name: 'u', host: 'u.example', port: 80, scheme: 'http' as const, noHostRewrite: false }],
    rules: [
      { upstream: 'u', host: 'h.example', path: '/b', matchMode: 'prefix' as const, stripPath: false },
      { upstream: 'u', host: 'h.example', path: '/a', matchMode: 'prefix' as const, stripPath: false, rawPath: true },
      { upstream: 'u', host: '', path: '/', matchMode: 'prefix' as const, stripPath: false },
    ],
  }

  it('lists both kinds of rules of a host together, in file order', () => {
    const t = new RouteTable(config)
    const group = t.describe().find((g) => g.host === 'h.example')!
    assert.deepEqual(
      group.routes.map((r) => [r.index, r.raw]),
      [
        [0, false],
        [1, true],
        [2, false],
      ],
    )
  })

  it('gives the earliest rule when a raw and a normalised rule both match', () => {
    const t = new RouteTable(config)
    assert.equal(t.match('h.example', '/a/x', '/a/./x')?.index, 1)
    assert.equal(t.match('h.example', '/b/x', '//b/x')?.index, 0)
    assert.equal(t.match('h.example', '/a/x', '//a/x')?.index, 2)
    assert.equal(t.match('h.example', undefined, '/a/../..')?.index, 1)
    assert.equal(t.match('other.example', undefined, '/x/../..'), undefined)
  })

  it('makes every rule raw with rawPaths', () => {
    const t = new RouteTable(config, { rawPaths: true })
    assert.equal(t.normalizes, false)
    assert.ok(t.describe().every((g) => g.routes.every((r) => r.raw)))
  })
})

describe('Host validation (RFC 9112 §3.2, RFC 3986 §3.2.2)', () => {
  const valid = ['a.example', 'A.Example:8080', 'a.example.', '127.0.0.1', '127.0.0.1:0', 'x:65535', '[::1]', '[::1]:80', '[v1.fe80::a+en1]', 'under_score.example', "s!$&'()*+,;=.example", '']
  const invalid = ['a b', 'a/b', 'a\\b', 'user@a.example', 'a.example:', 'a.example:65536', 'a.example:123456', 'a.example:8o', '[::1', '[::1]x', '[zz::1]', '[fe80::1%25eth0]', '%61.example', 'a.example:80:80', 'caf\u00e9.example', '[]']
  for (const host of valid) it(`accepts ${JSON.stringify(host)}`, () => assert.equal(validAuthority(host), true))
  for (const host of invalid) it(`refuses ${JSON.stringify(host)}`, () => assert.equal(validAuthority(host), false))
})

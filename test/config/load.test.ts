import assert from 'node:assert/strict'
import { describe, it } from 'node:test'
import { parseConfig, parseWithPositions } from '../../src/config/load.ts'
import type { ProxyConfig } from '../../src/config/schema.ts'
import { serializeConfig, serializeConfigJson } from '../../src/controller/config-writer.ts'
import { problems } from '../helpers/config-problems.ts'


describe('config loading', () => {
  it('applies the original NanoProxy defaults: port by scheme, http, prefix, no strip, any host', () => {
    const config = parseConfig(`
upstreams:
  - name: a
    host: a.example
  - name: b
    host: b.example
    scheme: https
rules:
  - upstream: a
    path: /api
  - upstream: b
`)
    assert.deepEqual(config.upstreams, [
      { name: 'a', host: 'a.example', port: 80, scheme: 'http', noHostRewrite: false },
      { name: 'b', host: 'b.example', port: 443, scheme: 'https', noHostRewrite: false },
    ])
    assert.deepEqual(config.rules, [
      { upstream: 'a', path: '/api', host: '', matchMode: 'prefix', stripPath: false },
      { upstream: 'b', path: '/', host: '', matchMode: 'prefix', stripPath: false },
    ])
  })

  it('accepts an empty file, a comment-only file and empty sections as a config with no rules', () => {
    for (const text of ['', '# nothing yet\n', 'upstreams:\nrules:\n']) {
      assert.deepEqual(parseConfig(text), { upstreams: [], rules: [] })
    }
  })

  it('lower-cases rule hosts and drops a trailing dot, keeping a wildcard', () => {
    const config = parseConfig('upstreams: [{name: a, host: x}]\nrules: [{upstream: a, host: "*.Example.COM."}]\n')
    assert.equal(config.rules[0]?.host, '*.example.com')
  })

  it('names every problem in one pass, each with its line and column', () => {
    const lines = problems(`upstreams:
  - name: a
    host: x.example
    port: "80"
    colour: blue
  - name: a
    host: http://y.example
    scheme: ftp
rules:
  - upstream: missing
    path: api
    matchMode: glob
  - path: /
`)
    assert.deepEqual(lines, [
      'c.yaml:4:11: upstream 1 field "port" must be an integer, not string "80"',
      'c.yaml:5:5: unknown field "colour" in upstream 1 (allowed: name, host, port, servers, balance, serverName, scheme, noHostRewrite)',
      'c.yaml:6:11: duplicate upstream name "a"',
      'c.yaml:7:11: upstream 2 field "host": "http://y.example" must be a hostname or IP address, without scheme, port or path',
      'c.yaml:8:13: upstream 2 field "scheme": "ftp" is not valid for scheme; expected one of http, https',
      'c.yaml:10:15: rule 1 names upstream "missing", which is not defined (upstreams: "a")',
      'c.yaml:11:11: rule 1 field "path": "api" must start with "/" and contain no spaces',
      'c.yaml:12:16: rule 1 field "matchMode": "glob" is not valid for matchMode; expected one of prefix, exact, pathPrefix, regex',
      'c.yaml:13:5: rule 2 is missing required field "upstream" (only a rule with "redirect" has none)',
    ])
  })

  it('reports YAML syntax errors with their position', () => {
    const [first] = problems('upstreams:\n  - name: a\n    host: [x\n')
    assert.match(first ?? '', /^c\.yaml:\d+:\d+: /)
  })

  it('rejects duplicate keys, which YAML parsers otherwise silently resolve', () => {
    assert.deepEqual(problems('rules: []\nrules: []\n'), ['c.yaml:2:1: Map keys must be unique'])
  })

  it('rejects a file of several YAML documents', () => {
    assert.match(problems('rules: []\n---\nrules: []\n')[0] ?? '', /single YAML document/)
  })

  it('rejects a top level that is not a mapping', () => {
    assert.deepEqual(problems('- a\n- b\n'), ['c.yaml:1:1: config must be a mapping, not a list'])
  })

  it('rejects unknown top-level fields, listing the allowed ones', () => {
    assert.deepEqual(problems('upstream: []\n'), ['c.yaml:1:1: unknown field "upstream" (allowed: upstreams, rules, certificates)'])
  })

  it('rejects an upstream host with a port in it, which is not an IPv6 address', () => {
    assert.deepEqual(problems('upstreams:\n  - name: db\n    host: db:5432\n'), [
      'c.yaml:3:11: upstream 1 field "host": "db:5432" must be a hostname or IP address, without scheme, port or path',
    ])
  })

  it('reads yes/no/on/off in boolean fields as the original (YAML 1.1) did', () => {
    const config = parseConfig('upstreams:\n  - {name: a, host: a, noHostRewrite: yes}\nrules:\n  - {upstream: a, stripPath: On}\n  - {upstream: a, stripPath: no}\n')
    assert.equal(config.upstreams[0]?.noHostRewrite, true)
    assert.deepEqual(config.rules.map((r) => r.stripPath), [true, false])
  })

  it('keeps an IPv6 rule host without its brackets, as request hosts are compared', () => {
    const config = parseConfig('upstreams: [{name: a, host: a}]\nrules: [{upstream: a, host: "[::1]"}]\n')
    assert.equal(config.rules[0]?.host, '::1')
  })

  it('accepts IPv4 and IPv6 upstream hosts and pathPrefix rules', () => {
    const config = parseConfig(`
upstreams:
  - {name: v4, host: 10.1.2.3, port: 8080}
  - {name: v6, host: "::1", port: 8080}
rules:
  - {upstream: v6, path: /x/, matchMode: pathPrefix, stripPath: true}
`)
    assert.equal(config.upstreams[1]?.host, '::1')
    assert.equal(config.rules[0]?.matchMode, 'pathPrefix')
  })

  it('reads an upstream with a list of servers: port by scheme, weight 1, brackets off IPv6, the policy as given', () => {
    const config = parseConfig(`upstreams:
  - name: app
    scheme: https
    balance: leastRequest
    servers:
      - { host: 198.18.20.1, port: 8443, weight: 3 }
      - { host: "[2001:db8::1]" }
      - host: api.example
  - name: empty
    servers: []
rules:
  - { upstream: app }
`)
    assert.deepEqual(config.upstreams, [
      {
        name: 'app',
        servers: [
          { host: '198.18.20.1', port: 8443, weight: 3 },
          { host: '2001:db8::1', port: 443, weight: 1 },
          { host: 'api.example', port: 443, weight: 1 },
        ],
        balance: 'leastRequest',
        scheme: 'https',
        noHostRewrite: false,
      },
      { name: 'empty', servers: [], scheme: 'http', noHostRewrite: false },
    ])
  })

  it('names the problems of server lists with their line and column', () => {
    const lines = problems(`upstreams:
  - name: both
    host: a.example
    servers: []
  - name: neither
  - name: bad
    port: 80
    balance: random
    servers:
      - { host: "b.example:80", weight: 0 }
      - { host: c.example, colour: red }
      - { port: 80 }
rules: []
`)
    assert.deepEqual(lines, [
      'c.yaml:4:14: upstream 1 has both "host" and "servers": give one server with host/port, or a list in servers',
      'c.yaml:5:5: upstream 2 needs "host" (one server) or "servers" (a list, possibly empty)',
      'c.yaml:7:11: upstream 3 field "port" goes with "host"; with "servers", give each server its port',
      'c.yaml:8:14: upstream 3 field "balance": "random" is not valid for balance; expected one of roundRobin, leastRequest',
      'c.yaml:10:17: upstream 3 server 1 field "host": "b.example:80" must be a hostname or IP address, without scheme, port or path',
      'c.yaml:10:41: upstream 3 server 1 field "weight" must be >= 1',
      'c.yaml:11:28: unknown field "colour" in upstream 3 server 2 (allowed: host, port, weight)',
      'c.yaml:12:9: upstream 3 server 3 is missing required field "host"',
    ])
  })

  it('reads a valid file the same way on the fast and the careful path', () => {
    const files = [
      'upstreams:\n  - {name: 2026-11-28, host: a, port: 0x1F90}\nrules:\n  - {upstream: "2026-11-28", path: /x, stripPath: yes}\n',
      'upstreams: &u\n  - name: a\n    host: "::1"\nrules:\n  - upstream: a\n    host: "*.Example.com."\n    matchMode: exact\n',
      '# empty\n',
      'rules: ~\nupstreams: []\n',
      'upstreams:\n  - {name: a, balance: roundRobin, servers: [{host: x, port: 81, weight: 2}, {host: "::1"}]}\n  - {name: b, servers: []}\n',
    ]
    for (const text of files) assert.deepEqual(parseConfig(text), parseWithPositions(text, 'f'), text)
  })

  it('parses 10,000 rules, reporting a problem in the last one with its position', () => {
    let text = 'upstreams: [{name: a, host: a}]\nrules:\n'
    for (let i = 0; i < 10_000; i++) text += `  - {upstream: a, host: h${i}.example, path: /p${i}}\n`
    assert.equal(parseConfig(text).rules.length, 10_000)
    assert.deepEqual(problems(text + '  - {upstream: b}\n'), ['c.yaml:10003:16: rule 10001 names upstream "b", which is not defined (upstreams: "a")'])
  })

  describe('the JSON file the controller writes', () => {
    const config: ProxyConfig = {
      upstreams: [
        { name: 'shop/web:80', host: 'web.shop.svc.cluster.local', port: 80, scheme: 'http', noHostRewrite: false },
        { name: 'shop/api:8443/https', host: 'api.shop.svc.cluster.local', port: 8443, scheme: 'https', noHostRewrite: false },
      ],
      rules: [
        { upstream: 'shop/api:8443/https', path: '/api', host: 'shop.example.com', matchMode: 'pathPrefix', stripPath: true },
        { upstream: 'shop/web:80', path: '/', host: '', matchMode: 'prefix', stripPath: false },
      ],
    }

    it('is read as the same config as its YAML form, on the fast and on the careful path', () => {
      const json = serializeConfigJson(config)
      assert.match(json, /^# Written by the NanoProxy ingress controller/)
      assert.deepEqual(parseConfig(json), config)
      assert.deepEqual(parseWithPositions(json, 'f'), config)
      assert.deepEqual(parseConfig(serializeConfig(config)), config)
      assert.deepEqual(parseConfig(serializeConfigJson({ upstreams: [], rules: [] })), { upstreams: [], rules: [] })
    })

    it('has one upstream or rule per line', () => {
      const lines = serializeConfigJson(config).split('\n')
      assert.equal(lines.filter((l) => l.includes('"upstream":')).length, 2)
      assert.ok(lines.some((l) => l.trim() === '{"upstream":"shop/web:80","path":"/","host":"","matchMode":"prefix","stripPath":false}'))
    })

    it('reports a problem with its line and column, as in a YAML file', () => {
      const broken = serializeConfigJson(config).replace('"matchMode":"prefix"', '"matchMode":"glob"')
      assert.deepEqual(problems(broken), [
        'c.yaml:10:64: rule 2 field "matchMode": "glob" is not valid for matchMode; expected one of prefix, exact, pathPrefix, regex',
      ])
      const [syntax] = problems(serializeConfigJson(config).replace('"rules": [', '"rules": [[,'))
      assert.match(syntax ?? '', /^c\.yaml:8:\d+: /)
    })

    it('is judged as YAML when written by hand: duplicate keys are rejected', () => {
      assert.deepEqual(problems('{"rules": [], "rules": []}\n'), ['c.yaml:1:15: Map keys must be unique'])
      assert.deepEqual(parseConfig('# by hand\n{"upstreams": [{"name": "a", "host": "a"}], "rules": [{"upstream": "a"}]}\n').rules.length, 1)
    })
  })
})

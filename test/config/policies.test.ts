// Validation of per-route policies: every problem with file:line:column.

import assert from 'node:assert/strict'
import { describe, it } from 'node:test'
import { parseConfig, parseWithPositions } from '../../src/config/load.ts'
import { problems } from '../helpers/config-problems.ts'


const UP = 'upstreams:\n  - name: a\n    host: a.example\nrules:\n'

describe('per-route policies in the config file', () => {
  it('load with their defaults (redirect 302) and need no upstream on a redirect rule', () => {
    const text = `${UP}  - path: /
    matchMode: exact
    redirect: { path: /app }
  - upstream: a
    path: /api(/|$)(.*)
    matchMode: regex
    ignoreCase: yes
    rewrite: { path: /$2, hostname: B.example }
    requestHeaders: { set: [{ name: X-A, value: "1 2" }], remove: [X-Debug] }
    responseHeaders: { add: [{ name: x-b, value: v }] }
`
    const config = parseConfig(text)
    assert.deepEqual(config.rules[0], { path: '/', host: '', matchMode: 'exact', stripPath: false, redirect: { path: '/app', statusCode: 302 } })
    assert.deepEqual(config.rules[1], {
      upstream: 'a',
      path: '/api(/|$)(.*)',
      host: '',
      matchMode: 'regex',
      stripPath: false,
      ignoreCase: true,
      rewrite: { path: '/$2', hostname: 'B.example' },
      requestHeaders: { set: [{ name: 'X-A', value: '1 2' }], remove: ['x-debug'] },
      responseHeaders: { add: [{ name: 'x-b', value: 'v' }] },
    })
    assert.deepEqual(parseWithPositions(text, 'c.yaml'), config, 'both parsing paths agree')
  })

  it('reject a regex that needs backtracking, at the position of the path', () => {
    assert.deepEqual(problems(`${UP}  - upstream: a\n    path: /(a)\\1\n    matchMode: regex\n`), [
      'c.yaml:6:11: rule 1 field "path": "/(a)\\\\1" cannot be matched in linear time (back-references, look-ahead and large counted repetitions are not supported)',
    ])
  })

  it('reject capture groups the pattern does not have, and groups on a rule that is not a regex', () => {
    assert.deepEqual(problems(`${UP}  - upstream: a\n    path: /x/(.*)\n    matchMode: regex\n    rewrite: { path: /$2 }\n  - upstream: a\n    path: /y\n    redirect: { path: /$1 }\n`), [
      'c.yaml:8:22: rule 1 field "rewrite.path": $2 refers to a capture group the rule\'s path does not have (it has 1)',
      'c.yaml:11:23: rule 2 field "redirect.path": $1 refers to a capture group, which only a matchMode: regex rule has',
    ])
  })

  it('reject "?" in a path that is not a regex, and a rule with neither upstream nor redirect', () => {
    assert.deepEqual(problems(`${UP}  - upstream: a\n    path: /a?b\n  - path: /\n`), [
      'c.yaml:6:11: rule 1 field "path": "/a?b" must not contain "?" or "#" (the query string is never matched; for a regular expression, set matchMode: regex)',
      'c.yaml:7:5: rule 2 is missing required field "upstream" (only a rule with "redirect" has none)',
    ])
  })

  it('reject header changes to framing fields and Host, and values with control characters', () => {
    const got = problems(`${UP}  - upstream: a\n    requestHeaders:\n      set: [{ name: Content-Length, value: "1" }]\n      remove: [host]\n      add: [{ name: x-a, value: "a\\r\\nb: c" }]\n`)
    assert.deepEqual(got, [
      'c.yaml:7:21: rule 1 field "requestHeaders": "Content-Length" cannot be changed by a policy (the proxy writes the framing and connection fields)',
      'c.yaml:8:16: rule 1 field "requestHeaders": "host" cannot be changed by a policy (the proxy writes the framing and connection fields; use rewrite.hostname)',
      'c.yaml:9:33: rule 1 field "requestHeaders.add[1].value": "a\\r\\nb: c" must be a header field value: no control characters, no leading or trailing space',
    ])
  })

  it('reject unknown policy fields, naming the allowed ones, and status codes that are not redirects', () => {
    assert.deepEqual(problems(`${UP}  - redirect: { code: 301, statusCode: 200 }\n`), [
      'c.yaml:5:17: unknown field "code" in rule 1 field "redirect" (allowed: scheme, hostname, port, path, prefix, statusCode)',
      'c.yaml:5:40: rule 1 field "redirect.statusCode": "200" is not valid for statusCode; expected one of 301, 302, 303, 307, 308',
    ])
  })

  it('reject timeouts that are not positive numbers of seconds, naming the field', () => {
    assert.deepEqual(problems(`${UP}  - upstream: a\n    timeouts: { response: 0, idel: 3 }\n`), [
      'c.yaml:6:27: rule 1 field "timeouts.response" must be > 0',
      'c.yaml:6:30: unknown field "idel" in rule 1 field "timeouts" (allowed: connect, response, idle)',
    ])
  })

  it('reject allow and deny entries that are not addresses or CIDR blocks', () => {
    assert.deepEqual(problems(`${UP}  - upstream: a\n    allow: [10.0.0.0/8, 10.0.0.0/33]\n    deny: [example.com]\n`), [
      'c.yaml:6:25: rule 1 field "allow[2]": "10.0.0.0/33" has an invalid prefix length (0-32)',
      'c.yaml:7:12: rule 1 field "deny[1]": "example.com" is not an IP address or CIDR',
    ])
  })

  it('reject a replaced prefix on a rule that matches no prefix, and together with stripPath', () => {
    assert.deepEqual(problems(`${UP}  - upstream: a\n    matchMode: exact\n    path: /x\n    rewrite: { prefix: /y }\n  - upstream: a\n    stripPath: true\n    rewrite: { prefix: /y }\n`), [
      'c.yaml:8:24: rule 1 field "rewrite.prefix" needs matchMode prefix or pathPrefix (it replaces the matched prefix)',
      'c.yaml:11:24: rule 2: "rewrite.prefix" and "stripPath" both replace the matched prefix; use one',
    ])
  })
})

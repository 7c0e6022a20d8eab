import assert from 'node:assert/strict'
import { describe, it } from 'node:test'
import { caseless, compilePathRegex, expandGroups, groupCount, PathRegexError } from '../../src/router/path-regex.ts'

describe('regular-expression rule paths', () => {
  it('match from the start of the path, not necessarily to its end', () => {
    const re = compilePathRegex('/api(/|$)(.*)', false)
    assert.equal(re.test('/api'), true)
    assert.equal(re.test('/api/v1'), true)
    assert.equal(re.test('/apix'), false)
    assert.equal(re.test('/x/api'), false)
  })

  it('cannot escape the start anchor with an unbalanced parenthesis', () => {
    assert.throws(() => compilePathRegex('/a)|(.*', false), PathRegexError)
  })

  it('are refused when they need backtracking or a huge automaton: back-references, look-ahead, large counted repetitions', () => {
    for (const p of ['/(a)\\1', '/x(?=y)', '/x(?!y)', '/(?<n>a)\\k<n>', '/(.*a){20}$']) {
      assert.throws(() => compilePathRegex(p, false), /cannot be matched in linear time/, p)
    }
  })

  it('are refused with the engine\'s reason when they are not regular expressions', () => {
    assert.throws(() => compilePathRegex('/[a', false), /is not a valid regular expression \(Unterminated character class\)/)
  })

  it('ignore the case of ASCII letters without the engine\'s i flag, classes and ranges included', () => {
    assert.equal(caseless('/a[b-d]\\d(?<Name>x)[^q]'), '/[aA][b-dB-D]\\d(?<Name>[xX])[^qQ]')
    const re = compilePathRegex('/api/v[0-9]+/[a-c]+', true)
    assert.equal(re.test('/API/V1/AbC'), true)
    assert.equal(re.test('/api/v1/d'), false)
  })

  it('count their capture groups and expand $1-$9 (an unmatched group is empty, $$ is a dollar)', () => {
    const re = compilePathRegex('/(a)(b)?(c)', false)
    assert.equal(groupCount(re), 3)
    const m = re.exec('/ac')!
    assert.equal(expandGroups('/$3/$2/$1/$$', m), '/c//a/$')
  })

  it('match a 100 KB hostile path against every accepted pattern in linear time (well under a second each)', () => {
    const hostile = '/' + 'a'.repeat(100_000) + '!'
    for (const p of ['/(a+)+$', '/(.*)(.*)(.*)x', '/(a|a)*b', '/([a-z]+)*[0-9]$', '/(\\w+\\s?)*$', '/(a|aa)+$', '/(.*a){5}$']) {
      for (const ignoreCase of [false, true]) {
        const re = compilePathRegex(p, ignoreCase)
        const t0 = performance.now()
        re.test(hostile)
        const ms = performance.now() - t0
        assert.ok(ms < 1000, `${p} (ignoreCase ${ignoreCase}) took ${ms.toFixed(0)} ms`)
      }
    }
  })
})

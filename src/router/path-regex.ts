// Regular-expression rule paths, compiled by V8's linear-time engine.
//
// A backtracking engine can take exponential time on a crafted path
// (`^(a+)+$` against `aaaa…!`): with patterns taken from Ingress
// annotations, any tenant could stall the proxy. V8's experimental engine
// (the `l` flag) runs an automaton instead, in time proportional to the
// input, and refuses at compile time what it cannot run that way
// (back-references, look-around). Measured here (Node 24, one core):
// a 100 KB hostile path against `^(a+)+$` ~20 ms, against `^/(.*)(.*)(.*)x`
// ~90 ms — bounded and linear, where the backtracking engine never finishes.
// Alternatives weighed: re2js (a dependency, slower in pure JS), and
// rejecting "dangerous" shapes by inspection (unsound: nested quantifiers
// are only one way to backtrack).

import { setFlagsFromString } from 'node:v8'

// The flag only makes the `l` flag known to the RegExp parser; patterns
// without `l` keep the default engine. Set once, when this module loads,
// before any linear pattern is compiled.
setFlagsFromString('--enable-experimental-regexp-engine')

/** The linear engine's flag (a variable: ESLint's no-invalid-regexp does not know it). */
const LINEAR = 'l'

/** Thrown for a pattern that is not valid or cannot be matched in linear time. */
export class PathRegexError extends Error {}

/**
 * `pattern` anchored at the start of the path (as ingress-nginx's `~*
 * "^…"` locations are), not at its end. Throws PathRegexError.
 */
export function compilePathRegex(pattern: string, ignoreCase: boolean): RegExp {
  const source = ignoreCase ? caseless(pattern) : pattern
  let re: RegExp
  try {
    // The pattern alone first: an unbalanced `a)|(b` is an error there,
    // where inside `^(?:…)` it would close the group and escape the anchor.
    new RegExp(source, LINEAR)
    re = new RegExp(`^(?:${source})`, LINEAR)
  } catch (err) {
    const message = (err as Error).message
    if (message.includes('linear time')) {
      throw new PathRegexError('cannot be matched in linear time (back-references, look-ahead and large counted repetitions are not supported)')
    }
    throw new PathRegexError(`is not a valid regular expression (${message.replace(/^Invalid regular expression: \/.*\/l: /, '')})`)
  }
  return re
}

/**
 * The linear engine has no `i` flag: `pattern` rewritten so that ASCII
 * letters match in either case (`a` → `[aA]`, `[a-f]` → `[a-fA-F]`).
 * Letters written as escapes (`\x41`) and non-ASCII letters stay as they
 * are; ingress-nginx's caseless PCRE matches those too (documented).
 */
export function caseless(pattern: string): string {
  let out = ''
  let i = 0
  const n = pattern.length
  const isLetter = (c: string): boolean => (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z')
  const other = (c: string): string => (c === c.toLowerCase() ? c.toUpperCase() : c.toLowerCase())
  /** An escape starting at `j` (the backslash): its whole text. */
  const escapeAt = (j: number): string => {
    const c = pattern[j + 1] ?? ''
    if ((c === 'u' && pattern[j + 2] === '{') || ((c === 'p' || c === 'P') && pattern[j + 2] === '{')) {
      const end = pattern.indexOf('}', j)
      return pattern.slice(j, end === -1 ? n : end + 1)
    }
    if (c === 'u') return pattern.slice(j, j + 6)
    if (c === 'x') return pattern.slice(j, j + 4)
    if (c === 'c') return pattern.slice(j, j + 3)
    if (c === 'k' && pattern[j + 2] === '<') {
      const end = pattern.indexOf('>', j)
      return pattern.slice(j, end === -1 ? n : end + 1)
    }
    return pattern.slice(j, j + 2)
  }
  while (i < n) {
    const c = pattern[i]!
    if (c === '\\') {
      const e = escapeAt(i)
      out += e
      i += e.length
    } else if (c === '(' && pattern[i + 1] === '?' && pattern[i + 2] === '<' && pattern[i + 3] !== '=' && pattern[i + 3] !== '!') {
      // A named group: its name is not a pattern.
      const end = pattern.indexOf('>', i)
      const stop = end === -1 ? n : end + 1
      out += pattern.slice(i, stop)
      i = stop
    } else if (c === '[') {
      let body = ''
      let extra = ''
      let j = i + 1
      if (pattern[j] === '^') body += pattern[j++]
      while (j < n && pattern[j] !== ']') {
        if (pattern[j] === '\\') {
          const e = escapeAt(j)
          body += e
          j += e.length
          continue
        }
        const a = pattern[j]!
        if (pattern[j + 1] === '-' && pattern[j + 2] !== undefined && pattern[j + 2] !== ']' && pattern[j + 2] !== '\\') {
          const b = pattern[j + 2]!
          body += `${a}-${b}`
          if (isLetter(a) && isLetter(b) && (a <= 'Z') === (b <= 'Z')) extra += `${other(a)}-${other(b)}`
          j += 3
          continue
        }
        body += a
        if (isLetter(a)) extra += other(a)
        j++
      }
      out += `[${body}${extra}]`
      i = j + 1
    } else {
      out += isLetter(c) ? `[${c}${other(c)}]` : c
      i++
    }
  }
  return out
}

/** The number of capture groups of a compiled pattern. */
export function groupCount(re: RegExp): number {
  // Matching the empty alternative: exec of `|` variant is not possible on a
  // compiled RegExp, so count from a fresh pattern that always matches.
  const probe = new RegExp(`${re.source}|`, re.flags)
  return (probe.exec('')?.length ?? 1) - 1
}

/**
 * `template` with `$1`..`$9` replaced by the groups of `match` (an
 * unmatched group is empty, as in nginx). `$$` is a literal `$`.
 */
export function expandGroups(template: string, match: RegExpExecArray): string {
  if (!template.includes('$')) return template
  return template.replace(/\$(\$|[1-9])/g, (_, g: string) => (g === '$' ? '$' : (match[Number(g)] ?? '')))
}

/** The highest `$n` a template refers to (0 for none). */
export function highestGroup(template: string): number {
  let max = 0
  for (const m of template.matchAll(/\$(\$|[1-9])/g)) if (m[1] !== '$') max = Math.max(max, Number(m[1]))
  return max
}

// `npm run lint` runs this: fails when the modules in src/ import each
// other in a cycle. Type-only imports count too: they leave no trace at run
// time, but a cycle of them is still two files that cannot be understood
// (or changed) one without the other. Break one with a small interface the
// other side implements (see src/proxy/connection-roles.ts).
//
// A script rather than an ESLint plugin (import-x's no-cycle): it is about
// sixty lines, needs no dependency, and reads every file once (no-cycle
// resolves each import through a resolver per file linted).
//
// Usage: node scripts/check-import-cycles.ts [dir]

import { readdirSync, readFileSync } from 'node:fs'
import { dirname, join, relative, resolve } from 'node:path'
import { fileURLToPath } from 'node:url'

/** Relative imports of every .ts file under `root`: static, `export ... from`, and `import()`. */
export function importGraph(root: string): Map<string, string[]> {
  const graph = new Map<string, string[]>()
  const files = (readdirSync(root, { recursive: true }) as string[]).filter((f) => f.endsWith('.ts')).map((f) => join(root, f))
  const specifier = /(?:\bfrom\s*|\bimport\s*\(\s*|^\s*import\s+)['"](\.{1,2}\/[^'"]+)['"]/gm
  for (const file of files) {
    const text = readFileSync(file, 'utf8')
    const targets = new Set<string>()
    for (const m of text.matchAll(specifier)) targets.add(resolve(dirname(file), m[1]!))
    graph.set(file, [...targets].filter((t) => t !== file))
  }
  return graph
}

/** The strongly connected components with more than one file (Tarjan), each a cycle or several. */
export function cycles(graph: Map<string, string[]>): string[][] {
  let counter = 0
  const index = new Map<string, number>()
  const low = new Map<string, number>()
  const stack: string[] = []
  const onStack = new Set<string>()
  const found: string[][] = []
  const visit = (v: string): void => {
    index.set(v, counter)
    low.set(v, counter++)
    stack.push(v)
    onStack.add(v)
    for (const w of graph.get(v) ?? []) {
      if (!graph.has(w)) continue
      if (!index.has(w)) {
        visit(w)
        low.set(v, Math.min(low.get(v)!, low.get(w)!))
      } else if (onStack.has(w)) low.set(v, Math.min(low.get(v)!, index.get(w)!))
    }
    if (low.get(v) === index.get(v)) {
      const component: string[] = []
      let w: string
      do {
        w = stack.pop()!
        onStack.delete(w)
        component.push(w)
      } while (w !== v)
      if (component.length > 1) found.push(component.sort())
    }
  }
  for (const v of graph.keys()) if (!index.has(v)) visit(v)
  return found
}

if (process.argv[1] === fileURLToPath(import.meta.url)) {
  const root = resolve(process.argv[2] ?? fileURLToPath(new URL('../src', import.meta.url)))
  const graph = importGraph(root)
  const found = cycles(graph)
  if (found.length > 0) {
    for (const component of found) {
      const names = component.map((f) => relative(process.cwd(), f))
      process.stderr.write(`import cycle among ${names.length} files:\n${names.map((n) => `  ${n}\n`).join('')}`)
    }
    process.stderr.write(`${found.length} import cycle${found.length === 1 ? '' : 's'} in ${relative(process.cwd(), root) || '.'}\n`)
    process.exitCode = 1
  } else {
    process.stdout.write(`no import cycles among ${graph.size} files in ${relative(process.cwd(), root) || '.'}\n`)
  }
}

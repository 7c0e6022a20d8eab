// scripts/check-import-cycles.ts, run by `npm run lint`.

import assert from 'node:assert/strict'
import { execFile } from 'node:child_process'
import { writeFileSync } from 'node:fs'
import { join } from 'node:path'
import { describe, it } from 'node:test'
import { promisify } from 'node:util'
import { tempDir } from '../helpers/proxy-process.ts'

const SCRIPT = new URL('../../scripts/check-import-cycles.ts', import.meta.url).pathname
const run = (dir?: string) =>
  promisify(execFile)(process.execPath, [SCRIPT, ...(dir ? [dir] : [])]).then(
    ({ stdout }) => ({ code: 0, out: stdout }),
    (err: { code: number; stderr: string }) => ({ code: err.code, out: err.stderr }),
  )

describe('the import cycle check', () => {
  it('finds no cycle in src/', async () => {
    const { code, out } = await run()
    assert.equal(code, 0, out)
  })

  it('fails on a cycle made of a type-only import, naming its files', async () => {
    const dir = tempDir()
    writeFileSync(join(dir, 'a.ts'), "import { b } from './b.ts'\nexport const a = b\nexport interface A { x: number }\n")
    writeFileSync(join(dir, 'b.ts'), "import type { A } from './a.ts'\nexport const b: A | 1 = 1\n")
    writeFileSync(join(dir, 'c.ts'), "import { a } from './a.ts'\nexport const c = a\n")
    const { code, out } = await run(dir)
    assert.equal(code, 1)
    assert.match(out, /import cycle among 2 files:\n {2}\S*a\.ts\n {2}\S*b\.ts\n/)
    assert.doesNotMatch(out, /c\.ts/)
  })

  it('counts a dynamic import() as an edge', async () => {
    const dir = tempDir()
    writeFileSync(join(dir, 'a.ts'), "export const load = () => import('./b.ts')\n")
    writeFileSync(join(dir, 'b.ts'), "import { load } from './a.ts'\nexport const b = load\n")
    assert.equal((await run(dir)).code, 1)
  })
})

// `npm run test:e2e` (part of `npm test`): runs the end-to-end test files
// (test/e2e/*.e2e.ts) one at a time, after the unit tests, so the one-node
// cluster's start-up load does not slow the timing-sensitive unit tests.
// When the cluster cannot run here (not root, Debian packages missing) it
// prints one line saying which tests are skipped and why, and succeeds.

import { spawnSync } from 'node:child_process'
import { readdirSync } from 'node:fs'
import { join } from 'node:path'
import { nodeClusterSkipReason } from '../helpers/node-cluster.ts'

const dir = new URL('.', import.meta.url).pathname
const files = readdirSync(dir)
  .filter((f) => f.endsWith('.e2e.ts'))
  .sort()
  .map((f) => join(dir, f))
const reason = nodeClusterSkipReason()
if (reason) {
  console.log(`test/e2e: skipped ${files.length} end-to-end test file(s) on a one-node cluster (${files.map((f) => f.slice(dir.length)).join(', ')}): ${reason}`)
  process.exit(0)
}
const run = spawnSync(process.execPath, ['--test', '--test-concurrency=1', '--test-reporter=spec', ...files], { stdio: 'inherit' })
process.exit(run.status ?? 1)

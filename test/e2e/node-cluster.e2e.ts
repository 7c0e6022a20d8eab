// The test cluster's own guarantees (helpers/node-cluster.ts), for a test
// process that does not get to call stop(): interrupted (SIGTERM, as the
// test runner's timeout or Ctrl-C do), it cleans up before dying; killed
// outright (SIGKILL), the next start() finds the lock of a dead process and
// cleans up from the state saved there. Either way nothing is left.

import assert from 'node:assert/strict'
import { spawn } from 'node:child_process'
import { existsSync } from 'node:fs'
import { once } from 'node:events'
import { describe, it } from 'node:test'
import { leftovers, NodeCluster, nodeClusterSkipReason } from '../helpers/node-cluster.ts'

const ROOT = new URL('../../', import.meta.url).pathname
const LOCK = '/run/lock/nanoproxy-node-cluster'
const skip = nodeClusterSkipReason()
type State = NodeCluster['startState']

/** Starts fixtures/hold-cluster.ts and waits for its cluster (with pods) to be up. */
async function holdCluster(): Promise<{ pid: number; state: State; exited: Promise<unknown> }> {
  const child = spawn(`${ROOT}node_modules/.bin/node`, [`${ROOT}test/e2e/fixtures/hold-cluster.ts`], { stdio: ['ignore', 'pipe', 'pipe'] })
  const exited = once(child, 'exit')
  let out = ''
  let err = ''
  child.stderr.on('data', (c: Buffer) => (err = (err + c.toString()).slice(-4000)))
  const state = await new Promise<State>((resolve, reject) => {
    child.stdout.on('data', (c: Buffer) => {
      out += c.toString()
      const line = out.split('\n').find((l) => l.startsWith('{'))
      if (line && out.includes('\n')) resolve(JSON.parse(line) as State)
    })
    child.on('exit', (code) => reject(new Error(`hold-cluster exited (${code}):\n${err}`)))
  })
  return { pid: child.pid!, state, exited }
}

const none = { processes: [], mounts: [], links: [], chains: [], cgroups: [], paths: [], sysctls: [] }

describe('the one-node test cluster', { skip: skip && `needs a one-node cluster: ${skip}` }, () => {
  it('cleans up after itself when its test process gets SIGTERM', { timeout: 20 * 60_000 }, async () => {
    const held = await holdCluster()
    assert.ok(existsSync(LOCK))
    process.kill(held.pid, 'SIGTERM')
    await held.exited
    assert.deepEqual(leftovers(held.state), none)
    assert.equal(existsSync(LOCK), false)
  })

  it('is cleaned up by the next start when its test process was killed with SIGKILL', { timeout: 20 * 60_000 }, async () => {
    const held = await holdCluster()
    process.kill(held.pid, 'SIGKILL')
    await held.exited
    assert.ok(existsSync(LOCK), 'a killed process leaves its lock')
    assert.notDeepEqual(leftovers(held.state).processes, [])
    const next = await NodeCluster.start({ images: ['echo'] })
    const state = next.startState
    try {
      // The new cluster runs on the same addresses; the killed one's
      // processes and directory are gone.
      assert.equal(existsSync(held.state.dir), false)
      assert.deepEqual(leftovers(held.state).processes.filter((p) => p.includes(held.state.dir)), [])
      assert.equal((await next.kubectlOk(['get', 'node', '-o', 'jsonpath={.items[0].status.conditions[?(@.type=="Ready")].status}'])).trim(), 'True')
    } finally {
      next.stop()
    }
    assert.deepEqual(leftovers(held.state), none)
    assert.deepEqual(leftovers(state), none)
  })
})

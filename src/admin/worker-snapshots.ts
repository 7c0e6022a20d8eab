// WORKERS > 1: the supervisor's admin server asks every worker for its
// snapshot over the cluster IPC channel and sums them, so that one scrape
// sees the whole proxy (what prom-client's AggregatorRegistry does, without
// the dependency). Loaded by the supervisor: no proxy engine here.

import cluster, { type Worker } from 'node:cluster'
import { mergeFamilies } from '../metrics/metric-families.ts'
import type { ProcessSnapshot, SnapshotSource } from './snapshot.ts'

const ASK = 'nanoproxy:snapshot?'
const ANSWER = 'nanoproxy:snapshot'
/** A worker that does not answer within this is left out of the scrape (it may be starting or stopping). */
const ANSWER_MS = 2000

interface Answer {
  type: typeof ANSWER
  id: number
  snapshot?: ProcessSnapshot
  error?: string
}

let nextId = 1

/** Supervisor side. */
export function workerSnapshotSource(): SnapshotSource {
  return {
    async snapshot() {
      const workers = Object.values(cluster.workers ?? {}).filter((w): w is Worker => w !== undefined && w.isConnected())
      const answers = await Promise.all(workers.map((w) => ask(w)))
      const got = answers.filter((a): a is ProcessSnapshot => a !== undefined)
      if (got.length === 0) throw new Error('no worker answered')
      return { families: mergeFamilies(got.map((s) => s.families)), info: got[0]!.info }
    },
  }
}

function ask(worker: Worker): Promise<ProcessSnapshot | undefined> {
  const id = nextId++
  return new Promise((resolve) => {
    const done = (value: ProcessSnapshot | undefined): void => {
      clearTimeout(timer)
      worker.off('message', onMessage)
      worker.off('exit', onExit)
      resolve(value)
    }
    const onMessage = (message: unknown): void => {
      const m = message as Partial<Answer> | null
      if (m?.type === ANSWER && m.id === id) done(m.snapshot)
    }
    const onExit = (): void => done(undefined)
    const timer = setTimeout(() => done(undefined), ANSWER_MS)
    worker.on('message', onMessage)
    worker.once('exit', onExit)
    worker.send({ type: ASK, id })
  })
}

/** Worker side: answers the supervisor's questions with `snapshot()`. */
export function answerSnapshots(snapshot: () => ProcessSnapshot): void {
  process.on('message', (message: unknown) => {
    const m = message as { type?: string; id?: number } | null
    if (m?.type !== ASK || typeof m.id !== 'number') return
    let answer: Answer
    try {
      answer = { type: ANSWER, id: m.id, snapshot: snapshot() }
    } catch (err) {
      answer = { type: ANSWER, id: m.id, error: (err as Error).message }
    }
    process.send?.(answer)
  })
}

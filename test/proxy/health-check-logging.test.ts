// Health checks and the access log: the kubelet probes a pod's proxy every
// few seconds (startup, readiness, liveness), which filled the access log
// with lines nobody reads. Requests answered by /.nanoproxy/health are left
// out unless ACCESS_LOG_HEALTH=on; every other request is still logged.

import assert from 'node:assert/strict'
import { describe, it } from 'node:test'
import { send, sendRaw } from '../helpers/http-client.ts'
import { startProxy, type LogLine } from '../helpers/proxy-process.ts'

const EMPTY_CONFIG = 'upstreams: []\nrules: []\n'

/** An httpGet probe as the kubelet sends it: its own connection, closed after the answer. */
function kubeProbe(port: number, path = '/.nanoproxy/health'): Promise<string> {
  return sendRaw(port, `GET ${path} HTTP/1.1\r\nHost: 10.1.2.3:${port}\r\nUser-Agent: kube-probe/1.36\r\nAccept: */*\r\nConnection: close\r\n\r\n`)
}

const accessLines = (logs: LogLine[]): LogLine[] => logs.filter((l) => l.msg === 'request')

describe('health checks in the access log', () => {
  it('leaves kubelet probes and other requests answered by /.nanoproxy/health out of the access log by default', async () => {
    const proxy = await startProxy({ config: EMPTY_CONFIG })
    try {
      assert.match(await kubeProbe(proxy.port), /^HTTP\/1\.1 200 /)
      assert.match(await kubeProbe(proxy.port, '/.nanoproxy/health?probe=readiness'), /^HTTP\/1\.1 200 /)
      assert.equal((await send(`${proxy.url}/.nanoproxy/health`, { method: 'HEAD' })).status, 200)
      // A request sent after them is logged; the log is written in order, so
      // once its line is there, theirs would be too.
      assert.equal((await send(`${proxy.url}/after-the-probes`)).status, 404)
      await proxy.waitForLog((l) => l.msg === 'request' && l.path === '/after-the-probes')
      assert.deepEqual(
        accessLines(proxy.logs).map((l) => [l.path, l.status]),
        [['/after-the-probes', 404]],
      )
    } finally {
      await proxy.stop()
    }
  })

  it('logs them like any request with ACCESS_LOG_HEALTH=on', async () => {
    const proxy = await startProxy({ config: EMPTY_CONFIG, env: { ACCESS_LOG_HEALTH: 'on' } })
    try {
      await kubeProbe(proxy.port)
      await send(`${proxy.url}/after-the-probe`)
      await proxy.waitForLog((l) => l.msg === 'request' && l.path === '/after-the-probe')
      const [probe, after] = accessLines(proxy.logs)
      assert.equal(accessLines(proxy.logs).length, 2)
      assert.deepEqual([probe?.method, probe?.path, probe?.status, probe?.bytes, probe?.upstream], ['GET', '/.nanoproxy/health', 200, 2, undefined])
      assert.equal(after?.path, '/after-the-probe')
    } finally {
      await proxy.stop()
    }
  })

  it('logs nothing for them with the access log off, whatever ACCESS_LOG_HEALTH says', async () => {
    const proxy = await startProxy({ config: EMPTY_CONFIG, env: { ACCESS_LOG: 'off', ACCESS_LOG_HEALTH: 'on' } })
    try {
      await kubeProbe(proxy.port)
      await send(`${proxy.url}/x`)
      const { code } = await proxy.stop()
      assert.equal(code, 0)
      // The log itself is still written: its last line comes after any access-log line would.
      await proxy.waitForLog((l) => l.msg === 'shutdown complete')
      assert.deepEqual(accessLines(proxy.logs), [])
    } finally {
      await proxy.stop()
    }
  })

  it('refuses to start with an ACCESS_LOG_HEALTH that is neither on nor off, naming the variable', async () => {
    const proxy = await startProxy({ config: EMPTY_CONFIG, env: { ACCESS_LOG_HEALTH: 'sometimes' }, noWait: true })
    const { code } = await proxy.exited
    assert.equal(code, 1)
    assert.match(proxy.stderr, /ACCESS_LOG_HEALTH="sometimes" is not valid: expected on or off/)
  })
})

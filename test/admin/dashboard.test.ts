// The dashboard on the admin port, in a real browser (Debian's chromium,
// headless): what an operator sees after known traffic, after a bad config,
// and that the page renders at all.

import assert from 'node:assert/strict'
import { writeFileSync } from 'node:fs'
import { join } from 'node:path'
import { after, before, describe, it } from 'node:test'
import type { Browser, Page } from 'playwright-core'
import { browserMissing, launchBrowser, pngByteVariety } from '../helpers/browser.ts'
import { createPki } from '../helpers/certs.ts'
import { send } from '../helpers/http-client.ts'
import { startProxy, type ProxyProcess } from '../helpers/proxy-process.ts'
import { startUpstream, type Upstream } from '../helpers/upstreams.ts'

const missing = browserMissing()
if (missing !== undefined) console.log(`# dashboard browser tests skipped: ${missing}`)

describe('the dashboard, in a real browser', { skip: missing }, () => {
  let up: Upstream
  let proxy: ProxyProcess
  let browser: Browser
  let page: Page
  let goodConfig: string

  before(async () => {
    up = await startUpstream({ handler: (req, res) => {
      res.statusCode = req.url?.startsWith('/api/boom') ? 502 : 200
      res.end('ok')
    } })
    const cert = createPki().issue(['secure.example'])
    goodConfig = `upstreams:
  - name: shop
    servers: [{ host: 127.0.0.1, port: ${up.port} }]
rules:
  - { host: shop.example, path: /api, upstream: shop }
  - { host: shop.example, path: /, matchMode: exact, upstream: shop }
certificates:
  - { hosts: [secure.example], certFile: ${join(cert.dir, 'cert.pem')}, keyFile: ${join(cert.dir, 'key.pem')} }
`
    proxy = await startProxy({ config: goodConfig, env: { ADMIN_PORT: '0', HTTPS_PORT: '0' } })
    const admin = (await proxy.waitForLog((l) => typeof l.admin_port === 'number')).admin_port as number
    browser = await launchBrowser()
    page = await browser.newPage({ viewport: { width: 1280, height: 900 } })
    await page.goto(`http://127.0.0.1:${admin}/`)
  })
  after(async () => {
    await browser?.close()
    await proxy?.stop()
    await up?.close()
  })

  it('shows each route with its request count, error rate and latency after traffic', async () => {
    for (let i = 0; i < 5; i++) assert.equal((await send(`${proxy.url}/api/items`, { headers: { host: 'shop.example' } })).status, 200)
    for (let i = 0; i < 2; i++) assert.equal((await send(`${proxy.url}/api/boom`, { headers: { host: 'shop.example' } })).status, 502)
    for (let i = 0; i < 3; i++) assert.equal((await send(`${proxy.url}/nothing`, { headers: { host: `stranger-${i}.example` } })).status, 404)

    const row = page.locator('tr[data-route="shop.example/api"]')
    await row.locator('.count', { hasText: /^7$/ }).waitFor({ timeout: 10_000 })
    const cells = await row.locator('td').allTextContents()
    assert.deepEqual(cells.slice(0, 4), ['shop.example', '/api', 'prefix', 'shop'])
    assert.match(cells[4]!, new RegExp(`127\\.0\\.0\\.1:${up.port}`), 'the upstream server is listed')
    assert.equal(await row.locator('.dot.down').count(), 0, 'the server is shown healthy')
    assert.equal(cells[7], '28.6 %', '2 of 7 requests failed')
    assert.match(cells[8]!, /ms$/, 'p50 latency')
    assert.match(cells[9]!, /ms$/, 'p99 latency')
    // Unknown hosts share one row.
    assert.equal(await page.locator('tr[data-route=""] .count').textContent(), '3')
    // The certificate, by host, with its days left (the test CA issues for 2 days).
    const cert = await page.locator('#certificates tbody tr', { hasText: 'secure.example' }).locator('td').allTextContents()
    assert.equal(cert[2], '1')
    assert.doesNotMatch(await page.content(), /PRIVATE KEY/)
  })

  it('shows a rejected config with the file, line and column of each problem', async () => {
    writeFileSync(proxy.configFile, goodConfig.replace('upstream: shop }\n  - { host: shop.example, path: /,', 'upstream: nowhere }\n  - { host: shop.example, path: /,'))
    const rejected = await proxy.waitForLog((l) => l.msg.includes('config rejected'))
    const problem = (rejected.problems as string[]).find((p) => p.includes('nowhere'))!
    assert.match(problem, /config\.yaml:5:\d+/, 'the problem carries its position')
    await page.locator('#reloads li', { hasText: 'rejected' }).waitFor({ timeout: 10_000 })
    const shown = await page.locator('#reloads li .problem').allTextContents()
    assert.ok(shown.includes(problem), `dashboard shows ${JSON.stringify(shown)}`)
  })

  it('renders a page that is not blank', async () => {
    // The chart needs two polls to draw its lines.
    await page.locator('#chart path.rps').waitFor({ timeout: 10_000 })
    const png = await page.screenshot({ fullPage: true })
    assert.ok(png.length > 10_000, `screenshot of ${png.length} bytes`)
    assert.ok(pngByteVariety(png) > 100, 'the screenshot has more than one colour')
  })
})

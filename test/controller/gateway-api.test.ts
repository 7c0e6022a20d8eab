// Gateway API status and translation (src/controller/gateway-status.ts,
// gateway-translate.ts), one folder per scenario under gateway-fixtures/:
// input.yaml holds the Kubernetes objects (its first comment line names the
// test), expected.yaml what the controller must publish (GatewayClass,
// Gateway and HTTPRoute status, without lastTransitionTime) and the route
// table of each Gateway port, plus the rules left out and why. Expected
// files are checked by hand against the spec (gateway-api apis/v1 docs),
// never just copied from output.

import assert from 'node:assert/strict'
import { readdirSync, readFileSync } from 'node:fs'
import { join } from 'node:path'
import { describe, it } from 'node:test'
import { parseAllDocuments, stringify } from 'yaml'
import { parseConfig } from '../../src/config/load.ts'
import type { GatewaySnapshot } from '../../src/controller/gateway-objects.ts'
import { gatewayStatuses, withTransitionTimes } from '../../src/controller/gateway-status.ts'
import { translateGateways } from '../../src/controller/gateway-translate.ts'
import { serializeConfigJson } from '../../src/controller/config-writer.ts'
import type { EndpointSlice } from '../../src/controller/snapshot.ts'

const fixtures = new URL('./gateway-fixtures/', import.meta.url).pathname
const CONTROLLER = 'nanoproxy.io/gateway-controller'

function load(file: string): GatewaySnapshot & { endpointSlices: EndpointSlice[] } {
  const s = { gatewayClasses: [], gateways: [], httpRoutes: [], referenceGrants: [], namespaces: [], services: [], secrets: [], endpointSlices: [] } as Record<string, unknown[]>
  const lists: Record<string, string> = {
    GatewayClass: 'gatewayClasses', Gateway: 'gateways', HTTPRoute: 'httpRoutes', ReferenceGrant: 'referenceGrants',
    Namespace: 'namespaces', Service: 'services', Secret: 'secrets', EndpointSlice: 'endpointSlices',
  }
  for (const doc of parseAllDocuments(readFileSync(file, 'utf8'))) {
    const obj = doc.toJS() as { kind: string } | null
    if (!obj) continue
    const list = lists[obj.kind]
    if (!list) throw new Error(`${file}: unexpected kind ${obj.kind}`)
    s[list]!.push(obj)
  }
  return s as unknown as GatewaySnapshot & { endpointSlices: EndpointSlice[] }
}

/** Every Gateway gets the address 198.51.100.<n> unless the fixture's Gateway is annotated fixture/no-address. */
function addresses(snapshot: GatewaySnapshot): Map<string, { type: 'IPAddress'; value: string }[]> {
  const m = new Map<string, { type: 'IPAddress'; value: string }[]>()
  snapshot.gateways.forEach((g, i) => {
    if (g.metadata.annotations?.['fixture/no-address'] !== 'true') m.set(`${g.metadata.namespace ?? 'default'}/${g.metadata.name}`, [{ type: 'IPAddress', value: `198.51.100.${i + 1}` }])
  })
  return m
}

function render(dir: string): string {
  const snapshot = load(join(dir, 'input.yaml'))
  const statuses = gatewayStatuses(snapshot, { controllerName: CONTROLLER, supportedFeatures: ['Gateway', 'HTTPRoute', 'ReferenceGrant'], addresses: addresses(snapshot) })
  const translation = translateGateways(statuses.attachments, snapshot)
  for (const t of translation.tables) parseConfig(serializeConfigJson(t.config), `${t.gateway}:${t.port}`) // the proxy must accept each table
  return stringify(
    {
    gatewayClasses: Object.fromEntries(statuses.gatewayClasses),
    gateways: Object.fromEntries(statuses.gateways),
    httpRoutes: Object.fromEntries(statuses.httpRoutes),
    tables: translation.tables,
    skipped: translation.skipped,
    },
    { aliasDuplicateObjects: false },
  )
}

describe('Gateway API status and translation', () => {
  for (const scenario of readdirSync(fixtures).sort()) {
    const dir = join(fixtures, scenario)
    const description = /^#\s*(.*)/.exec(readFileSync(join(dir, 'input.yaml'), 'utf8'))?.[1] ?? scenario
    it(`${scenario}: ${description}`, () => {
      assert.equal(render(dir), readFileSync(join(dir, 'expected.yaml'), 'utf8'))
    })
  }
})

describe('lastTransitionTime of published conditions', () => {
  const now = '2026-12-03T20:00:00Z'
  const before = '2026-12-01T08:00:00Z'
  it('keeps the current time while a condition keeps its status, even when its reason or message changes', () => {
    const out = withTransitionTimes([{ type: 'Accepted', status: 'True', reason: 'Accepted', message: 'new words' }], [{ type: 'Accepted', status: 'True', reason: 'Accepted', message: 'old', lastTransitionTime: before }], now)
    assert.equal(out[0]!.lastTransitionTime, before)
  })
  it('takes the time of writing when the status changes or the condition is new', () => {
    const out = withTransitionTimes(
      [{ type: 'Accepted', status: 'False', reason: 'NotAllowedByListeners', message: 'x' }, { type: 'ResolvedRefs', status: 'True', reason: 'ResolvedRefs', message: 'y' }],
      [{ type: 'Accepted', status: 'True', reason: 'Accepted', message: 'old', lastTransitionTime: before }],
      now,
    )
    assert.deepEqual(out.map((c) => c.lastTransitionTime), [now, now])
  })
})

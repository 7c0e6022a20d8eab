// Which watch events start a config rebuild. Plain objects in, a yes or no out.

import assert from 'node:assert/strict'
import { describe, it } from 'node:test'
import { ChangeFilter } from '../../src/controller/change-filter.ts'
import type { EndpointSlice, Ingress, IngressClass, Service } from '../../src/controller/snapshot.ts'

const ours: IngressClass = { metadata: { name: 'nanoproxy' }, spec: { controller: 'benc-uk/nanoproxy' } }
const theirs: IngressClass = { metadata: { name: 'other' }, spec: { controller: 'example.com/other' } }

function ingress(name: string, className: string, service = 'web', extra: Partial<Ingress> = {}): Ingress {
  return {
    metadata: { name, namespace: 'shop', uid: `uid-${name}`, creationTimestamp: '2026-12-01T10:00:00Z', resourceVersion: '1' },
    spec: { ingressClassName: className, rules: [{ host: `${name}.test`, http: { paths: [{ path: '/', pathType: 'Prefix', backend: { service: { name: service, port: { number: 80 } } } }] } }] },
    ...extra,
  }
}

function service(name: string, port = 80, extra: Partial<Service> = {}): Service {
  return { metadata: { name, namespace: 'shop', resourceVersion: '1' }, spec: { ports: [{ port }] }, ...extra }
}

function filter(): ChangeFilter {
  const f = new ChangeFilter('benc-uk/nanoproxy')
  f.rebuilt([ours, theirs], [ingress('a', 'nanoproxy')])
  return f
}

describe('which changes start a rebuild', () => {
  it('everything, before the first rebuild', () => {
    const f = new ChangeFilter('benc-uk/nanoproxy')
    assert.equal(f.ingressMatters(undefined, ingress('x', 'other')), true)
    assert.equal(f.serviceMatters(undefined, service('anything')), true)
  })

  it('not a change to an Ingress status, labels or resourceVersion', () => {
    const before = ingress('a', 'nanoproxy')
    const after = { ...before, metadata: { ...before.metadata, resourceVersion: '2', labels: { x: 'y' } }, status: { loadBalancer: { ingress: [{ ip: '192.0.2.1' }] } } }
    assert.equal(filter().ingressMatters(before, after), false)
  })

  it('not a creation timestamp seen as a Date (a list) and then as a string (a watch event)', () => {
    const listed = ingress('a', 'nanoproxy', 'web', {})
    listed.metadata.creationTimestamp = new Date('2026-12-01T10:00:00Z')
    assert.equal(filter().ingressMatters(listed, ingress('a', 'nanoproxy')), false)
  })

  it('a change to the spec or annotations of one of our Ingresses', () => {
    const before = ingress('a', 'nanoproxy')
    assert.equal(filter().ingressMatters(before, ingress('a', 'nanoproxy', 'api')), true)
    assert.equal(filter().ingressMatters(before, { ...before, metadata: { ...before.metadata, annotations: { 'nanoproxy/strip-path': 'true' } } }), true)
  })

  it("not another controller's Ingress, unless it moves to our class or from it", () => {
    assert.equal(filter().ingressMatters(undefined, ingress('b', 'other')), false)
    assert.equal(filter().ingressMatters(ingress('b', 'other'), ingress('b', 'other', 'api')), false)
    assert.equal(filter().ingressMatters(ingress('b', 'other'), undefined), false)
    assert.equal(filter().ingressMatters(ingress('b', 'other'), ingress('b', 'nanoproxy')), true)
    assert.equal(filter().ingressMatters(ingress('a', 'nanoproxy'), ingress('a', 'other')), true)
    assert.equal(filter().ingressMatters(ingress('a', 'nanoproxy'), undefined), true)
  })

  it('a Service one of our Ingresses names, appearing, changing ports or going; no other Service', () => {
    assert.equal(filter().serviceMatters(undefined, service('web')), true)
    assert.equal(filter().serviceMatters(service('web'), service('web', 8080)), true)
    assert.equal(filter().serviceMatters(service('web'), undefined), true)
    assert.equal(filter().serviceMatters(service('unrelated'), service('unrelated', 8080)), false)
    assert.equal(filter().serviceMatters(undefined, service('unrelated')), false)
    const lb = service('web', 80, { status: { loadBalancer: { ingress: [{ ip: '192.0.2.1' }] } } })
    assert.equal(filter().serviceMatters(service('web'), lb), false, 'a Service status change is for the status loop only')
  })

  it("a slice of a Service one of our Ingresses names, when its endpoints change; no other Service's slice", () => {
    const slice = (svc: string, ip: string, extra: Partial<EndpointSlice> = {}): EndpointSlice => ({
      metadata: { name: `${svc}-1`, namespace: 'shop', labels: { 'kubernetes.io/service-name': svc }, resourceVersion: '1' },
      addressType: 'IPv4',
      ports: [{ name: '', port: 8080, protocol: 'TCP' }],
      endpoints: [{ addresses: [ip], conditions: { ready: true } }],
      ...extra,
    })
    assert.equal(filter().endpointSliceMatters(undefined, slice('web', '198.18.20.1')), true)
    assert.equal(filter().endpointSliceMatters(slice('web', '198.18.20.1'), slice('web', '198.18.20.2')), true)
    assert.equal(filter().endpointSliceMatters(slice('web', '198.18.20.1'), undefined), true)
    const notReady = slice('web', '198.18.20.1', { endpoints: [{ addresses: ['198.18.20.1'], conditions: { ready: false } }] })
    assert.equal(filter().endpointSliceMatters(slice('web', '198.18.20.1'), notReady), true)
    assert.equal(filter().endpointSliceMatters(slice('unrelated', '198.18.20.1'), slice('unrelated', '198.18.20.2')), false)
    const relabelled = slice('web', '198.18.20.1')
    relabelled.metadata = { ...relabelled.metadata, resourceVersion: '2', labels: { ...relabelled.metadata.labels, team: 'a' } }
    assert.equal(filter().endpointSliceMatters(slice('web', '198.18.20.1'), relabelled), false, 'labels and resourceVersion are not read')
  })
})

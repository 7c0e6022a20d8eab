// Hostname matching between Gateway listeners and HTTPRoutes
// (src/controller/gateway-hostnames.ts), with the examples of the spec's
// field docs (gateway-api apis/v1 gateway_types.go Listener.Hostname,
// httproute_types.go HTTPRouteSpec.Hostnames).

import assert from 'node:assert/strict'
import { describe, it } from 'node:test'
import { intersectHostnames, wildcardCovers } from '../../src/controller/gateway-hostnames.ts'

describe('a Gateway API wildcard hostname', () => {
  it('covers one or more labels in front of its suffix, never the suffix itself (unlike Ingress, one label only)', () => {
    assert.equal(wildcardCovers('*.example.com', 'test.example.com'), true)
    assert.equal(wildcardCovers('*.example.com', 'foo.test.example.com'), true)
    assert.equal(wildcardCovers('*.example.com', 'example.com'), false)
    assert.equal(wildcardCovers('*.example.com', 'testexample.com'), false)
    assert.equal(wildcardCovers('*.example.com', '*.foo.example.com'), true)
    assert.equal(wildcardCovers('*.example.com', '*.example.com'), false)
  })
})

describe('the hostnames a route serves on a listener', () => {
  it('are every host when neither names one, the listener\'s when only it does, the route\'s when only they do', () => {
    assert.equal(intersectHostnames(undefined, []), undefined)
    assert.deepEqual(intersectHostnames('Foo.Example.com', undefined), ['foo.example.com'])
    assert.deepEqual(intersectHostnames(undefined, ['a.example', 'b.example', 'a.example']), ['a.example', 'b.example'])
  })

  it('drop the route\'s hostnames the listener does not match: *.example.com keeps test.example.com, not test.example.net', () => {
    assert.deepEqual(intersectHostnames('*.example.com', ['test.example.com', 'test.example.net']), ['test.example.com'])
  })

  it('take the listener\'s name for a route wildcard that covers it, and the narrower wildcard of two', () => {
    assert.deepEqual(intersectHostnames('test.example.com', ['*.example.com']), ['test.example.com'])
    assert.deepEqual(intersectHostnames('*.example.com', ['*.foo.example.com']), ['*.foo.example.com'])
    assert.deepEqual(intersectHostnames('*.foo.example.com', ['*.example.com']), ['*.foo.example.com'])
  })

  it('are none when nothing matches (the route is then not accepted there: NoMatchingListenerHostname)', () => {
    assert.deepEqual(intersectHostnames('shop.example.net', ['shop.example.com']), [])
    assert.deepEqual(intersectHostnames('*.example.com', ['example.com']), [])
  })
})

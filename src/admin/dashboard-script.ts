// The dashboard's script (plain browser JavaScript, no framework): polls
// /api/snapshot every second, keeps two minutes of history, and derives per
// route the request rate, the error rate and p50/p99 latency from the
// counters and histogram buckets that /metrics exposes too. Text goes in
// with textContent only: host names and config errors are never parsed as HTML.

export const DASHBOARD_SCRIPT = String.raw`'use strict'
;(function () {
  var POLL_MS = 1000
  var KEEP = 120
  /** Latency percentiles over this window (a second holds too few requests on a quiet route). */
  var WINDOW_MS = 10000
  var history = []

  function byId(id) { return document.getElementById(id) }
  function el(tag, cls, text) {
    var e = document.createElement(tag)
    if (cls) e.className = cls
    if (text !== undefined) e.textContent = text
    return e
  }
  function family(snap, name) {
    for (var i = 0; i < snap.families.length; i++) if (snap.families[i].name === name) return snap.families[i]
    return { samples: [], bounds: [] }
  }
  function key(l) { return [l.host, l.path, l.match, l.upstream].join('\u0000') }
  function one(snap, name) {
    var f = family(snap, name)
    return f.samples.length ? f.samples[0].value : 0
  }

  /** The numbers one snapshot gives, by route. */
  function digest(snap) {
    var routes = {}
    var total = 0
    var errors = 0
    function route(l) { var k = key(l); return routes[k] || (routes[k] = { count: 0, errors: 0, hist: null }) }
    family(snap, 'nanoproxy_requests_total').samples.forEach(function (s) {
      var r = route(s.labels)
      r.count += s.value
      total += s.value
      if (s.labels.status === '5xx') { r.errors += s.value; errors += s.value }
    })
    var duration = family(snap, 'nanoproxy_request_duration_seconds')
    var all = null
    duration.samples.forEach(function (s) {
      route(s.labels).hist = s.counts
      if (!all) all = s.counts.map(function () { return 0 })
      s.counts.forEach(function (c, i) { all[i] += c })
    })
    return { time: snap.time, routes: routes, total: total, errors: errors, all: all, bounds: duration.bounds || [] }
  }

  function diff(now, then) {
    if (!now) return null
    if (!then) return now.slice()
    return now.map(function (c, i) { return c - (then[i] || 0) })
  }
  /** The q-quantile of a histogram, interpolated within its bucket (as PromQL's histogram_quantile does). */
  function quantile(bounds, counts, q) {
    if (!counts) return null
    var total = counts.reduce(function (a, b) { return a + b }, 0)
    if (total <= 0) return null
    var target = q * total
    var cum = 0
    for (var i = 0; i < counts.length; i++) {
      if (cum + counts[i] >= target && counts[i] > 0) {
        if (i >= bounds.length) return bounds[bounds.length - 1]
        var lower = i === 0 ? 0 : bounds[i - 1]
        return lower + (bounds[i] - lower) * ((target - cum) / counts[i])
      }
      cum += counts[i]
    }
    return bounds[bounds.length - 1]
  }
  function ms(seconds) {
    if (seconds === null) return '–'
    var v = seconds * 1000
    return v < 10 ? v.toFixed(1) + ' ms' : v < 1000 ? Math.round(v) + ' ms' : (v / 1000).toFixed(2) + ' s'
  }
  function rate(n) { return n < 10 ? n.toFixed(1) : String(Math.round(n)) }
  function pct(errors, total) { return total > 0 ? (100 * errors / total).toFixed(1) + ' %' : '–' }

  /** The snapshot at least WINDOW_MS older than the newest, or the oldest there is. */
  function windowStart() {
    var last = history[history.length - 1]
    for (var i = history.length - 1; i >= 0; i--) if (last.time - history[i].time >= WINDOW_MS) return history[i]
    return history[0]
  }

  function render(snap) {
    var d = digest(snap)
    var prev = history[history.length - 1]
    history.push(d)
    if (history.length > KEEP) history.shift()
    var dt = prev ? (d.time - prev.time) / 1000 : 0
    d.rps = prev && dt > 0 ? Math.max(0, d.total - prev.total) / dt : 0
    d.eps = prev && dt > 0 ? Math.max(0, d.errors - prev.errors) / dt : 0
    var start = windowStart()
    var windowHist = start === d ? d.all : diff(d.all, start.all)

    byId('version').textContent = 'v' + snap.info.version
    var status = byId('status')
    status.textContent = 'live · ' + new Date(d.time).toLocaleTimeString()
    status.className = 'status live'
    byId('rps').textContent = rate(d.rps)
    var windowTotal = d.total - (start === d ? 0 : start.total)
    var windowErrors = d.errors - (start === d ? 0 : start.errors)
    byId('errors').textContent = pct(windowErrors, windowTotal)
    byId('errors').className = 'value' + (windowTotal > 0 && windowErrors / windowTotal > 0.01 ? ' errors-high' : '')
    byId('p50').textContent = ms(quantile(d.bounds, windowHist, 0.5))
    byId('p99').textContent = ms(quantile(d.bounds, windowHist, 0.99))
    byId('connections').textContent = String(one(snap, 'nanoproxy_client_connections'))
    byId('tunnels').textContent = String(one(snap, 'nanoproxy_websocket_tunnels'))
    renderChart()
    renderRoutes(snap, d, prev, start, dt)
    renderReloads(snap.info.reloads)
    renderCertificates(snap.info.certificates, d.time)
  }

  function renderChart() {
    var svg = byId('chart')
    var W = 600, H = 120
    var points = history.slice(1)
    var max = Math.max(1, Math.max.apply(null, points.map(function (p) { return p.rps || 0 })))
    function line(field) {
      return points.map(function (p, i) {
        var x = W - (points.length - 1 - i) * (W / (KEEP - 1))
        var y = H - 4 - ((p[field] || 0) / max) * (H - 12)
        return (i === 0 ? 'M' : 'L') + x.toFixed(1) + ' ' + y.toFixed(1)
      }).join(' ')
    }
    var ns = 'http://www.w3.org/2000/svg'
    while (svg.firstChild) svg.removeChild(svg.firstChild)
    ;[0.25, 0.5, 0.75].forEach(function (f) {
      var g = document.createElementNS(ns, 'line')
      g.setAttribute('class', 'grid')
      g.setAttribute('x1', '0'); g.setAttribute('x2', String(W))
      g.setAttribute('y1', String(H * f)); g.setAttribute('y2', String(H * f))
      svg.appendChild(g)
    })
    if (points.length < 2) return
    ;[['rps', 'rps'], ['eps', 'err']].forEach(function (pair) {
      var path = document.createElementNS(ns, 'path')
      path.setAttribute('class', pair[1])
      path.setAttribute('d', line(pair[0]))
      svg.appendChild(path)
    })
    var label = document.createElementNS(ns, 'text')
    label.setAttribute('x', '4'); label.setAttribute('y', '12'); label.setAttribute('font-size', '10'); label.setAttribute('fill', 'currentColor')
    label.textContent = 'max ' + rate(max) + ' req/s'
    svg.appendChild(label)
  }

  function renderRoutes(snap, d, prev, start, dt) {
    var servers = {}
    snap.info.upstreams.forEach(function (u) { servers[u.name] = u.servers })
    var rows = snap.info.routes.map(function (r) { return { host: r.host, path: r.path, match: r.match, upstream: r.upstream } })
    var unmatched = { host: '', path: '', match: '', upstream: '' }
    if (d.routes[key(unmatched)]) rows.push(unmatched)
    var tbody = document.querySelector('#routes tbody')
    var body = document.createDocumentFragment()
    rows.forEach(function (r) {
      var k = key(r)
      var now = d.routes[k] || { count: 0, errors: 0, hist: null }
      var before = prev && prev.routes[k]
      var then = start !== d && start.routes[k]
      var tr = el('tr')
      tr.setAttribute('data-route', r.host + r.path)
      if (r.upstream === '') {
        var td = el('td', 'muted', 'no rule matched (any host)')
        td.colSpan = 5
        tr.appendChild(td)
      } else {
        tr.appendChild(el('td', '', r.host || '*'))
        var p = el('td'); p.appendChild(el('code', '', r.path)); tr.appendChild(p)
        tr.appendChild(el('td', 'muted', r.match))
        tr.appendChild(el('td', '', r.upstream))
        var s = el('td')
        ;(servers[r.upstream] || []).forEach(function (srv) {
          var span = el('span', 'server')
          span.appendChild(el('span', 'dot' + (srv.healthy ? '' : ' down')))
          span.appendChild(el('code', '', srv.server.replace(/^https?:\/\//, '')))
          span.title = (srv.healthy ? 'healthy' : 'ejected') + ' · ' + srv.open + ' open, ' + srv.idle + ' idle connections'
          s.appendChild(span)
        })
        if (!s.firstChild) s.appendChild(el('span', 'muted', 'no servers'))
        tr.appendChild(s)
      }
      var windowCount = now.count - (then ? then.count : 0)
      var windowErrors = now.errors - (then ? then.errors : 0)
      var hist = then ? diff(now.hist, then.hist) : now.hist
      tr.appendChild(el('td', 'num count', String(now.count)))
      tr.appendChild(el('td', 'num', rate(before && dt > 0 ? Math.max(0, now.count - before.count) / dt : 0)))
      tr.appendChild(el('td', 'num' + (windowCount > 0 && windowErrors / windowCount > 0.01 ? ' errors-high' : ''), pct(windowErrors, windowCount)))
      tr.appendChild(el('td', 'num', ms(quantile(d.bounds, hist, 0.5))))
      tr.appendChild(el('td', 'num', ms(quantile(d.bounds, hist, 0.99))))
      body.appendChild(tr)
    })
    tbody.replaceChildren(body)
  }

  function renderReloads(reloads) {
    var list = byId('reloads')
    if (!reloads.length) return
    var items = document.createDocumentFragment()
    reloads.slice().reverse().forEach(function (r) {
      var li = el('li')
      li.appendChild(el('span', 'muted', new Date(r.time).toLocaleTimeString() + ' '))
      li.appendChild(el('span', r.ok ? 'ok' : 'failed', r.ok ? 'reloaded' : 'rejected'))
      li.appendChild(el('span', '', r.ok ? ' · ' + r.rules + ' rules' : ' · the last good config stays in force'))
      ;(r.problems || []).forEach(function (p) { var c = el('code', 'problem', p); li.appendChild(c) })
      items.appendChild(li)
    })
    list.replaceChildren(items)
  }

  function renderCertificates(certs, now) {
    if (!certs.length) return
    var tbody = document.querySelector('#certificates tbody')
    var rows = document.createDocumentFragment()
    certs.slice().sort(function (a, b) { return a.expires - b.expires }).forEach(function (c) {
      var days = Math.floor((c.expires - now) / 86400000)
      var tr = el('tr')
      tr.appendChild(el('td', '', c.host))
      tr.appendChild(el('td', 'muted', new Date(c.expires).toISOString().slice(0, 10)))
      tr.appendChild(el('td', 'num ' + (days < 7 ? 'days-bad' : days < 21 ? 'days-warn' : ''), String(days)))
      rows.appendChild(tr)
    })
    tbody.replaceChildren(rows)
  }

  function poll() {
    fetch('/api/snapshot', { cache: 'no-store' })
      .then(function (res) { if (!res.ok) throw new Error(res.status + ''); return res.json() })
      .then(render)
      .catch(function () {
        var status = byId('status')
        status.textContent = 'unreachable'
        status.className = 'status down'
      })
      .finally(function () { setTimeout(poll, POLL_MS) })
  }
  poll()
})()
`

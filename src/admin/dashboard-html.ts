// The dashboard page: the layout only; dashboard-script.ts fills it in from
// /api/snapshot every second. Nothing is loaded from another origin.

export const DASHBOARD_HTML = `<!doctype html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>NanoProxy</title>
<link rel="stylesheet" href="/dashboard.css">
<script src="/dashboard.js" defer></script>
</head>
<body>
<header>
  <h1>NanoProxy</h1>
  <span id="version" class="muted"></span>
  <span id="status" class="status">connecting…</span>
</header>
<main>
  <section class="tiles">
    <div class="tile"><div class="label">Requests / s</div><div class="value" id="rps">–</div></div>
    <div class="tile"><div class="label">Errors (5xx)</div><div class="value" id="errors">–</div></div>
    <div class="tile"><div class="label">p50 latency</div><div class="value" id="p50">–</div></div>
    <div class="tile"><div class="label">p99 latency</div><div class="value" id="p99">–</div></div>
    <div class="tile"><div class="label">Client connections</div><div class="value" id="connections">–</div></div>
    <div class="tile"><div class="label">WebSocket tunnels</div><div class="value" id="tunnels">–</div></div>
  </section>
  <section class="card">
    <h2>Traffic <span class="muted">last 2 minutes · <span class="legend ok">requests/s</span> <span class="legend bad">5xx/s</span></span></h2>
    <svg id="chart" viewBox="0 0 600 120" preserveAspectRatio="none" role="img" aria-label="requests per second, last 2 minutes"></svg>
  </section>
  <section class="card">
    <h2>Routes</h2>
    <table id="routes">
      <thead><tr><th>Host</th><th>Path</th><th>Match</th><th>Upstream</th><th>Servers</th><th class="num">Requests</th><th class="num">req/s</th><th class="num">Errors</th><th class="num">p50</th><th class="num">p99</th></tr></thead>
      <tbody></tbody>
    </table>
  </section>
  <div class="columns">
    <section class="card">
      <h2>Config reloads</h2>
      <ul id="reloads" class="events"><li class="muted">none since start</li></ul>
    </section>
    <section class="card">
      <h2>Certificates</h2>
      <table id="certificates">
        <thead><tr><th>Host</th><th>Expires</th><th class="num">Days left</th></tr></thead>
        <tbody><tr><td colspan="3" class="muted">none</td></tr></tbody>
      </table>
    </section>
  </div>
</main>
<footer class="muted">Read-only. <a href="/metrics">/metrics</a> in the Prometheus text format.</footer>
</body>
</html>
`

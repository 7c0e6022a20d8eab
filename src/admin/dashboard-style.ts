// The dashboard's stylesheet: system fonts, light and dark schemes.

export const DASHBOARD_STYLE = `:root {
  --bg: #f5f6f8; --card: #fff; --text: #1d2330; --muted: #6b7385; --line: #e3e6ec;
  --ok: #2f7de1; --good: #1f9d55; --bad: #d64545; --warn: #d48a00;
  font: 14px/1.45 system-ui, -apple-system, "Segoe UI", Roboto, sans-serif;
}
@media (prefers-color-scheme: dark) {
  :root { --bg: #12151b; --card: #1b1f27; --text: #e4e7ee; --muted: #8d95a8; --line: #2a303c; }
}
* { box-sizing: border-box; }
body { margin: 0; background: var(--bg); color: var(--text); }
header { display: flex; align-items: baseline; gap: 12px; padding: 14px 24px; background: var(--card); border-bottom: 1px solid var(--line); }
h1 { font-size: 18px; margin: 0; }
h2 { font-size: 14px; margin: 0 0 10px; font-weight: 600; }
main { padding: 18px 24px; display: grid; gap: 16px; max-width: 1400px; }
.muted { color: var(--muted); font-weight: normal; }
.status { margin-left: auto; font-size: 12px; padding: 2px 10px; border-radius: 10px; background: var(--line); }
.status.live { background: #d8f3e3; color: #146c3b; }
.status.down { background: #fbe0e0; color: #a02828; }
.tiles { display: grid; grid-template-columns: repeat(auto-fit, minmax(150px, 1fr)); gap: 12px; }
.tile, .card { background: var(--card); border: 1px solid var(--line); border-radius: 8px; padding: 12px 16px; }
.tile .label { color: var(--muted); font-size: 12px; }
.tile .value { font-size: 26px; font-weight: 600; font-variant-numeric: tabular-nums; }
#chart { width: 100%; height: 120px; display: block; }
#chart .rps { fill: none; stroke: var(--ok); stroke-width: 2; vector-effect: non-scaling-stroke; }
#chart .err { fill: none; stroke: var(--bad); stroke-width: 2; vector-effect: non-scaling-stroke; }
#chart .grid { stroke: var(--line); stroke-width: 1; vector-effect: non-scaling-stroke; }
.legend::before { content: ""; display: inline-block; width: 10px; height: 3px; margin: 0 4px 3px 8px; }
.legend.ok::before { background: var(--ok); }
.legend.bad::before { background: var(--bad); }
table { width: 100%; border-collapse: collapse; font-variant-numeric: tabular-nums; }
th { text-align: left; color: var(--muted); font-weight: 500; font-size: 12px; border-bottom: 1px solid var(--line); padding: 6px 8px; }
td { border-bottom: 1px solid var(--line); padding: 6px 8px; vertical-align: top; }
tr:last-child td { border-bottom: none; }
.num { text-align: right; }
code { font: 12px ui-monospace, SFMono-Regular, Menlo, monospace; }
.server { display: inline-flex; align-items: center; gap: 4px; margin-right: 10px; white-space: nowrap; }
.dot { width: 8px; height: 8px; border-radius: 50%; display: inline-block; background: var(--good); }
.dot.down { background: var(--bad); }
.errors-high { color: var(--bad); font-weight: 600; }
.columns { display: grid; grid-template-columns: 1fr 1fr; gap: 16px; }
@media (max-width: 900px) { .columns { grid-template-columns: 1fr; } }
.events { list-style: none; margin: 0; padding: 0; }
.events li { padding: 6px 0; border-bottom: 1px solid var(--line); }
.events li:last-child { border-bottom: none; }
.events .ok { color: var(--good); font-weight: 600; }
.events .failed { color: var(--bad); font-weight: 600; }
.events .problem { display: block; margin: 2px 0 0 16px; }
.days-bad { color: var(--bad); font-weight: 600; }
.days-warn { color: var(--warn); font-weight: 600; }
footer { padding: 0 24px 18px; font-size: 12px; }
a { color: var(--ok); }
`

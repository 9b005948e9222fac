/**
 * Presenting a run: a plain-text table for terminals and logs, and a self-contained HTML report
 * (inline SVG, no scripts, no external assets) with latency over time and the latency histogram.
 */
import { bucketHigh, bucketLow, type HistogramJSON, type LatencySummary } from './stats.js';
import type { BenchResult } from './run.js';

export function fmtNum(n: number, digits = 0): string {
  if (!Number.isFinite(n)) return '–';
  return n.toLocaleString('en-US', { maximumFractionDigits: digits, minimumFractionDigits: digits });
}

/** Microseconds as a human duration (µs, ms or s). */
export function fmtUs(us: number): string {
  if (!Number.isFinite(us)) return '–';
  if (us < 1000) return `${us.toFixed(0)} µs`;
  if (us < 1e6) return `${(us / 1000).toFixed(us < 1e4 ? 2 : 1)} ms`;
  return `${(us / 1e6).toFixed(2)} s`;
}

export function fmtBytes(b: number): string {
  if (!Number.isFinite(b)) return '–';
  if (Math.abs(b) < 10 * 1024) return `${b.toFixed(0)} B`;
  if (Math.abs(b) < 10 * 2 ** 20) return `${(b / 1024).toFixed(1)} KiB`;
  return `${(b / 2 ** 20).toFixed(1)} MiB`;
}

export function latencyRow(l: LatencySummary): string {
  return `p50 ${fmtUs(l.p50)}  p90 ${fmtUs(l.p90)}  p99 ${fmtUs(l.p99)}  p99.9 ${fmtUs(l.p999)}  max ${fmtUs(l.max)}`;
}

/** Rows of [label, value] for one result, shared by the table and the HTML report. */
export function resultRows(r: BenchResult): [string, string][] {
  const rows: [string, string][] = [];
  rows.push(['scenario', `${r.scenario} · ${fmtNum(r.clients)} clients · ${r.procs} generator process(es)`]);
  if (r.registration) {
    const g = r.registration;
    rows.push(['registration', `${fmtNum(g.created)} created, ${fmtNum(g.existed)} existed, ${fmtNum(g.failed)} failed in ${g.seconds.toFixed(1)} s`]);
  }
  const l = r.login;
  const f = r.firstLogin;
  if (f) {
    rows.push([
      'first logins',
      `${fmtNum(f.ok)} ok, ${fmtNum(f.failed)} failed in ${f.seconds.toFixed(2)} s = ${fmtNum(f.perSec)} logins/s` +
        (Number.isFinite(f.serverUsPerLogin) ? `; server ${fmtNum(f.serverUsPerLogin, 1)} µs CPU per login` : '') +
        `, tool ${fmtNum(f.toolUsPerLogin, 1)} µs`,
    ]);
  }
  if (r.logout) {
    const o = r.logout;
    rows.push([
      'logouts',
      `${fmtNum(o.sessions)} streams closed` +
        (Number.isFinite(o.serverUsPerLogout) ? `; server ${fmtNum(o.serverUsPerLogout, 1)} µs CPU per logout` : '') +
        `, tool ${fmtNum(o.toolUsPerLogout, 1)} µs`,
    ]);
  }
  const mechs = Object.entries(l.mechanisms ?? {})
    .map(([m, n]) => `${m} ${fmtNum(n)}`)
    .join(', ');
  rows.push([
    l.reconnect ? 'logins (reconnect)' : 'logins',
    `${fmtNum(l.ok)} ok, ${fmtNum(l.failed)} failed in ${l.seconds.toFixed(2)} s = ${fmtNum(l.perSec)} logins/s` + (mechs ? ` (${mechs})` : ''),
  ]);
  rows.push(['login time', latencyRow(l.latency) + (l.over1s ? `  (${fmtNum(l.over1s)} over 1 s)` : '')]);
  if (l.scram && l.scram.derived + l.scram.reused > 0) {
    rows.push(['tool SCRAM keys', `${fmtNum(l.scram.derived)} derived (PBKDF2), ${fmtNum(l.scram.reused)} reused from the per-account cache`]);
  }
  if (r.setup) {
    const s = r.setup;
    rows.push(['rosters', `${fmtNum(s.complete)} complete; ${fmtNum(s.confirmed)}/${fmtNum(s.wanted)} subscriptions confirmed in ${s.seconds.toFixed(1)} s`]);
  }
  if (r.run) {
    const u = r.run;
    const what = r.scenario === 'presence' ? 'deliveries' : 'messages';
    rows.push(['throughput', `${fmtNum(u.perSec)} ${what}/s delivered (${fmtNum(u.deliveredInWindow)} in ${u.seconds} s)`]);
    rows.push(['latency', latencyRow(u.latency)]);
    rows.push([
      'delivery',
      `sent ${fmtNum(u.sent)}, expected ${fmtNum(u.expected)}, delivered ${fmtNum(u.delivered)}, lost ${fmtNum(u.lost)}` +
        ` (completeness ${(u.completeness * 100).toFixed(2)} %)` +
        (u.skipped ? `, ${fmtNum(u.skipped)} not sent (client socket backpressure)` : ''),
    ]);
  }
  if (r.memory) {
    const m = r.memory;
    rows.push(['server memory', `RSS ${fmtBytes(m.rssBeforeBytes)} → ${fmtBytes(m.rssAfterBytes)} = ${fmtBytes(m.perSessionBytes)} per session`]);
  }
  const c = r.cpu;
  const per = r.scenario === 'login' || r.scenario === 'idle' ? 'login' : r.scenario === 'presence' ? 'delivery' : 'message';
  rows.push([
    'cpu',
    `tool ${c.toolPct.toFixed(0)} % = ${fmtNum(c.toolUs / Math.max(1, opsOf(r)), 1)} µs per ${per}` +
      (Number.isFinite(c.serverUs)
        ? `, server ${c.serverPct.toFixed(0)} % = ${fmtNum(c.serverUsPerOp, 1)} µs per ${per}` +
          (Number.isFinite(c.serverSysUsPerOp) ? ` (${fmtNum(c.serverSysUsPerOp, 1)} µs of it in the kernel)` : '')
        : ', server – (no --server-pid)') +
      ` over ${c.seconds.toFixed(1)} s`,
  ]);
  if (Number.isFinite(c.toolLoopDelayMaxUs)) {
    // Latency the generators add themselves: if this is near the measured tail, the tail is ours.
    rows.push(['tool loop delay', `p99 ${fmtUs(c.toolLoopDelayP99Us)}  max ${fmtUs(c.toolLoopDelayMaxUs)} (worst generator, during the run)`]);
  }
  rows.push(['drops', `${fmtNum(r.drops)} sessions lost after login`]);
  for (const [k, v] of Object.entries(r.errors)) rows.push(['error', `${fmtNum(v)} × ${k}`]);
  return rows;
}

/** Operations the CPU figures are divided by: logins, or deliveries in the run window. */
function opsOf(r: BenchResult): number {
  return r.run ? r.run.deliveredInWindow : r.login.ok;
}

export function textTable(r: BenchResult): string {
  const rows = resultRows(r);
  const w = Math.max(...rows.map(([k]) => k.length));
  return rows.map(([k, v]) => `${k.padEnd(w)}  ${v}`).join('\n');
}

// ---- HTML ----

function esc(s: string): string {
  return s.replace(/[&<>"]/g, (c) => ({ '&': '&amp;', '<': '&lt;', '>': '&gt;', '"': '&quot;' })[c] as string);
}

const W = 720;
const H = 260;
const M = { l: 64, r: 16, t: 16, b: 36 };

function logTicks(lo: number, hi: number): number[] {
  const out: number[] = [];
  for (let e = Math.floor(Math.log10(lo)); e <= Math.ceil(Math.log10(hi)); e++) out.push(10 ** e);
  return out;
}

/** Latency (log scale) per second: p50, p99 and max lines. */
export function latencySvg(rows: BenchResult['timeline']): string {
  const pts = rows.filter((r) => r.n > 0);
  if (pts.length === 0) return '<p>No samples.</p>';
  const t0 = rows[0].t;
  const t1 = Math.max(rows[rows.length - 1].t, t0 + 1);
  const vals = pts.flatMap((r) => [r.p50, r.p99, r.max]).filter((v) => v > 0);
  const lo = Math.max(1, Math.min(...vals));
  const hi = Math.max(...vals) * 1.1;
  const x = (t: number): number => M.l + ((t - t0) / (t1 - t0)) * (W - M.l - M.r);
  const ly = (v: number): number => H - M.b - ((Math.log10(Math.max(v, lo)) - Math.log10(lo)) / (Math.log10(hi) - Math.log10(lo) || 1)) * (H - M.t - M.b);
  const line = (key: 'p50' | 'p99' | 'max', color: string): string =>
    `<polyline fill="none" stroke="${color}" stroke-width="1.5" points="${pts.map((r) => `${x(r.t).toFixed(1)},${ly(r[key]).toFixed(1)}`).join(' ')}"/>`;
  const yt = logTicks(lo, hi)
    .filter((v) => v >= lo / 1.01 && v <= hi)
    .map((v) => `<line x1="${M.l}" x2="${W - M.r}" y1="${ly(v)}" y2="${ly(v)}" stroke="#ddd"/><text x="${M.l - 6}" y="${ly(v) + 4}" text-anchor="end">${esc(fmtUs(v))}</text>`)
    .join('');
  const step = Math.max(1, Math.ceil((t1 - t0) / 10));
  let xt = '';
  for (let t = t0; t <= t1; t += step) xt += `<text x="${x(t)}" y="${H - M.b + 16}" text-anchor="middle">${t}s</text>`;
  const legend = [
    ['p50', '#2b7'],
    ['p99', '#e80'],
    ['max', '#c33'],
  ]
    .map(([k, c], i) => `<text x="${M.l + 10 + i * 60}" y="${M.t + 10}" fill="${c}">${k}</text>`)
    .join('');
  return svg(`${yt}${xt}${line('p50', '#2b7')}${line('p99', '#e80')}${line('max', '#c33')}${legend}`, 'latency over time');
}

/** Deliveries per second. */
export function rateSvg(rows: BenchResult['timeline']): string {
  if (rows.length === 0) return '<p>No samples.</p>';
  const t0 = rows[0].t;
  const t1 = Math.max(rows[rows.length - 1].t, t0 + 1);
  const hi = Math.max(1, ...rows.map((r) => r.n)) * 1.1;
  const x = (t: number): number => M.l + ((t - t0) / (t1 - t0)) * (W - M.l - M.r);
  const y = (v: number): number => H - M.b - (v / hi) * (H - M.t - M.b);
  let yt = '';
  // Round tick step: 1, 2 or 5 × a power of ten, about four ticks up the axis.
  const raw = hi / 1.1 / 4;
  const mag = 10 ** Math.floor(Math.log10(raw));
  const step = [1, 2, 5, 10].map((m) => m * mag).find((x) => x >= raw) ?? raw;
  for (let v = 0; v <= hi; v += step) {
    yt += `<line x1="${M.l}" x2="${W - M.r}" y1="${y(v)}" y2="${y(v)}" stroke="#ddd"/><text x="${M.l - 6}" y="${y(v) + 4}" text-anchor="end">${fmtNum(v)}</text>`;
  }
  const pts = rows.map((r) => `${x(r.t).toFixed(1)},${y(r.n).toFixed(1)}`).join(' ');
  return svg(`${yt}<polyline fill="none" stroke="#36c" stroke-width="1.5" points="${pts}"/>`, 'deliveries per second');
}

/** Histogram on a log latency axis: bars per bucket, regrouped into ~60 bins. */
export function histogramSvg(h: HistogramJSON): string {
  if (h.n === 0) return '<p>No samples.</p>';
  const lo = Math.max(1, h.min);
  const hi = Math.max(lo * 2, h.max);
  const BINS = 60;
  const llo = Math.log10(lo);
  const span = Math.log10(hi) - llo || 1;
  const bins = new Array<number>(BINS).fill(0);
  for (const [b, c] of h.buckets) {
    const mid = Math.max(lo, Math.min(hi, (bucketLow(b) + Math.min(bucketHigh(b), hi)) / 2));
    bins[Math.min(BINS - 1, Math.max(0, Math.floor(((Math.log10(mid) - llo) / span) * BINS)))] += c;
  }
  const top = Math.max(...bins);
  const bw = (W - M.l - M.r) / BINS;
  const bars = bins
    .map((c, i) => {
      const bh = (c / top) * (H - M.t - M.b);
      return c ? `<rect x="${(M.l + i * bw).toFixed(1)}" y="${(H - M.b - bh).toFixed(1)}" width="${Math.max(1, bw - 1).toFixed(1)}" height="${bh.toFixed(1)}" fill="#36c"><title>${c}</title></rect>` : '';
    })
    .join('');
  const x = (v: number): number => M.l + ((Math.log10(v) - llo) / span) * (W - M.l - M.r);
  const xt = logTicks(lo, hi)
    .filter((v) => v >= lo && v <= hi)
    .map((v) => `<text x="${x(v)}" y="${H - M.b + 16}" text-anchor="middle">${esc(fmtUs(v))}</text>`)
    .join('');
  return svg(`${bars}${xt}<text x="${M.l}" y="${M.t + 10}">peak bin ${fmtNum(top)} samples</text>`, 'latency histogram');
}

function svg(body: string, title: string): string {
  return (
    `<svg xmlns="http://www.w3.org/2000/svg" width="${W}" height="${H}" viewBox="0 0 ${W} ${H}" font-family="sans-serif" font-size="11" role="img" aria-label="${esc(title)}">` +
    `<rect width="${W}" height="${H}" fill="#fff"/>` +
    `<line x1="${M.l}" y1="${H - M.b}" x2="${W - M.r}" y2="${H - M.b}" stroke="#333"/><line x1="${M.l}" y1="${M.t}" x2="${M.l}" y2="${H - M.b}" stroke="#333"/>` +
    `${body}</svg>`
  );
}

export function htmlReport(results: { label: string; result: BenchResult }[], command: string): string {
  const sections = results
    .map(({ label, result }) => {
      const table = resultRows(result)
        .map(([k, v]) => `<tr><th>${esc(k)}</th><td>${esc(v)}</td></tr>`)
        .join('');
      const plots =
        result.timeline.length > 0
          ? `<h3>Latency over time</h3>${latencySvg(result.timeline)}<h3>Delivered per second</h3>${rateSvg(result.timeline)}`
          : '';
      return `<section><h2>${esc(label)}</h2><table>${table}</table>${plots}<h3>${result.run ? 'Latency' : 'Login time'} histogram</h3>${histogramSvg(result.histogram)}</section>`;
    })
    .join('');
  return `<!doctype html><html><head><meta charset="utf-8"><title>hermod bench</title><style>
body{font-family:sans-serif;margin:2em;max-width:800px}th{text-align:left;padding-right:1em;vertical-align:top}td{font-family:monospace}
section{margin-bottom:3em}code{background:#f4f4f4;padding:2px 4px}</style></head><body>
<h1>hermod bench</h1><p><code>${esc(command)}</code><br>${esc(new Date().toISOString())}</p>${sections}</body></html>\n`;
}

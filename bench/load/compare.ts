/**
 * `npm run bench:compare`: the same scenarios, one server at a time, against private loopback
 * instances of ejabberd, Prosody and Hermod started with equal settings (servers.ts), then one
 * side-by-side table with ratios against ejabberd. Installs nothing: a server that is not
 * installed (or, for Hermod, not built or not starting) gets a column saying why.
 */
import { writeFileSync } from 'node:fs';
import { parseArgs } from 'node:util';
import { progressPrinter } from './cli.js';
import { fmtBytes, fmtNum, fmtUs, htmlReport } from './report.js';
import { DEFAULTS, runBench, type BenchOptions, type BenchResult } from './run.js';
import { freePort, SERVERS, type RunningServer } from './servers.js';

type CaseName = 'login' | 'idle' | 'messages' | 'messages-open' | 'presence';
const ALL_CASES: CaseName[] = ['login', 'idle', 'messages', 'messages-open', 'presence'];

interface Sizes {
  clients: number;
  idleClients: number;
  presenceClients: number;
  durationS: number;
  loginRate: number;
  window: number;
  msgRate: number;
  contacts: number;
  presenceRate: number;
  procs: number;
  sasl: BenchOptions['sasl'];
  relogin: boolean;
  pipeline: boolean;
}

function caseOptions(c: CaseName, z: Sizes): Partial<BenchOptions> {
  switch (c) {
    case 'login':
      return { scenario: 'login', clients: z.clients, rate: z.loginRate, relogin: z.relogin };
    case 'idle':
      return { scenario: 'idle', clients: z.idleClients, rate: z.loginRate, holdS: 5 };
    case 'messages':
      return { scenario: 'messages', clients: z.clients, mode: 'closed', window: z.window, durationS: z.durationS };
    case 'messages-open':
      return { scenario: 'messages', clients: z.clients, mode: 'open', msgRate: z.msgRate, durationS: z.durationS };
    case 'presence':
      return {
        scenario: 'presence',
        clients: z.presenceClients,
        contacts: z.contacts,
        presenceRate: z.presenceRate,
        durationS: z.durationS,
        setupTimeoutS: 240,
      };
  }
}

/** One comparison row: how to read it from a result, how to print it, which way is better. */
interface Metric {
  c: CaseName;
  label: string;
  get: (r: BenchResult) => number;
  fmt: (v: number) => string;
  higherIsBetter: boolean;
}

const num0 = (v: number): string => fmtNum(v);
const METRICS: Metric[] = [
  { c: 'login', label: 'logins/s', get: (r) => r.login.perSec, fmt: num0, higherIsBetter: true },
  { c: 'login', label: 'login time p99', get: (r) => r.login.latency.p99, fmt: fmtUs, higherIsBetter: false },
  { c: 'login', label: 'server CPU per login', get: (r) => r.cpu.serverUsPerOp, fmt: fmtUs, higherIsBetter: false },
  { c: 'login', label: 'tool CPU per login', get: (r) => r.cpu.toolUs / r.login.ok, fmt: fmtUs, higherIsBetter: false },
  // What a run achieves per CPU-second it got, tool and server together: on a box shared with
  // other jobs the steadiest reading of logins/s (docs/benchmarks.md, "Logins, fourth pass").
  {
    c: 'login',
    label: 'logins per CPU-second',
    get: (r) => r.login.ok / ((r.cpu.toolUs + r.cpu.serverUs) / 1e6),
    fmt: num0,
    higherIsBetter: true,
  },
  { c: 'login', label: 'first logins/s', get: (r) => r.firstLogin?.perSec ?? NaN, fmt: num0, higherIsBetter: true },
  { c: 'login', label: 'server CPU per first login', get: (r) => r.firstLogin?.serverUsPerLogin ?? NaN, fmt: fmtUs, higherIsBetter: false },
  { c: 'login', label: 'server CPU per logout', get: (r) => r.logout?.serverUsPerLogout ?? NaN, fmt: fmtUs, higherIsBetter: false },
  { c: 'idle', label: 'server RSS per idle session', get: (r) => r.memory?.perSessionBytes ?? NaN, fmt: fmtBytes, higherIsBetter: false },
  { c: 'messages', label: 'messages/s (closed loop)', get: (r) => r.run?.perSec ?? NaN, fmt: num0, higherIsBetter: true },
  { c: 'messages', label: 'latency p50', get: (r) => r.run?.latency.p50 ?? NaN, fmt: fmtUs, higherIsBetter: false },
  { c: 'messages', label: 'latency p99', get: (r) => r.run?.latency.p99 ?? NaN, fmt: fmtUs, higherIsBetter: false },
  { c: 'messages', label: 'server CPU per message', get: (r) => r.cpu.serverUsPerOp, fmt: fmtUs, higherIsBetter: false },
  { c: 'messages', label: 'lost', get: (r) => r.run?.lost ?? NaN, fmt: num0, higherIsBetter: false },
  { c: 'messages-open', label: 'messages/s (open loop)', get: (r) => r.run?.perSec ?? NaN, fmt: num0, higherIsBetter: true },
  { c: 'messages-open', label: 'latency p50', get: (r) => r.run?.latency.p50 ?? NaN, fmt: fmtUs, higherIsBetter: false },
  { c: 'messages-open', label: 'latency p99', get: (r) => r.run?.latency.p99 ?? NaN, fmt: fmtUs, higherIsBetter: false },
  { c: 'messages-open', label: 'latency p99.9', get: (r) => r.run?.latency.p999 ?? NaN, fmt: fmtUs, higherIsBetter: false },
  { c: 'messages-open', label: 'server CPU per message', get: (r) => r.cpu.serverUsPerOp, fmt: fmtUs, higherIsBetter: false },
  { c: 'presence', label: 'roster setup', get: (r) => r.setup?.seconds ?? NaN, fmt: (v) => `${v.toFixed(1)} s`, higherIsBetter: false },
  { c: 'presence', label: 'deliveries/s', get: (r) => r.run?.perSec ?? NaN, fmt: num0, higherIsBetter: true },
  { c: 'presence', label: 'latency p99', get: (r) => r.run?.latency.p99 ?? NaN, fmt: fmtUs, higherIsBetter: false },
  { c: 'presence', label: 'completeness', get: (r) => r.run?.completeness ?? NaN, fmt: (v) => `${(v * 100).toFixed(2)} %`, higherIsBetter: true },
  { c: 'presence', label: 'server CPU per delivery', get: (r) => r.cpu.serverUsPerOp, fmt: fmtUs, higherIsBetter: false },
];

type Outcome = { result: BenchResult } | { error: string };
type ServerOutcome = { name: string; skipped?: string; cases: Partial<Record<CaseName, Outcome>> };

export function sideBySide(outcomes: ServerOutcome[], cases: CaseName[]): string {
  const names = outcomes.map((o) => o.name);
  const base = outcomes.find((o) => o.name === 'ejabberd' && !o.skipped);
  const rows: string[][] = [['', ...names]];
  for (const o of outcomes) if (o.skipped) rows.push([`(${o.name} skipped)`, ...names.map((n) => (n === o.name ? o.skipped! : ''))]);
  for (const c of cases) {
    rows.push([`[${c}]`, ...names.map(() => '')]);
    for (const m of METRICS.filter((x) => x.c === c)) {
      const cells = outcomes.map((o) => {
        const out = o.cases[c];
        if (!out) return '–';
        if ('error' in out) return 'failed';
        const v = m.get(out.result);
        let cell = Number.isFinite(v) ? m.fmt(v) : '–';
        const b = base?.cases[c];
        if (base && o !== base && b && 'result' in b && Number.isFinite(v)) {
          const bv = m.get(b.result);
          // Ratio in the "better" direction: 5.0× means five times better than ejabberd.
          const ratio = m.higherIsBetter ? v / bv : bv / v;
          if (Number.isFinite(ratio) && ratio > 0) cell += ` (${ratio.toFixed(ratio < 10 ? 2 : 0)}×)`;
        }
        return cell;
      });
      rows.push([`  ${m.label}${m.higherIsBetter ? ' ↑' : ' ↓'}`, ...cells]);
    }
  }
  const widths = rows[0].map((_, i) => Math.max(...rows.map((r) => (r[i] ?? '').length)));
  return rows.map((r) => r.map((cell, i) => (i === 0 ? cell.padEnd(widths[i]) : cell.padStart(widths[i]))).join('  ')).join('\n');
}

export async function main(argv: string[]): Promise<number> {
  const { values } = parseArgs({
    args: argv,
    options: {
      servers: { type: 'string' },
      scenarios: { type: 'string' },
      clients: { type: 'string' },
      'idle-clients': { type: 'string' },
      'presence-clients': { type: 'string' },
      duration: { type: 'string' },
      'login-rate': { type: 'string' },
      window: { type: 'string' },
      'msg-rate': { type: 'string' },
      contacts: { type: 'string' },
      'presence-rate': { type: 'string' },
      procs: { type: 'string' },
      mech: { type: 'string' },
      'first-login': { type: 'boolean' },
      pipeline: { type: 'boolean' },
      json: { type: 'boolean' },
      html: { type: 'string' },
      quiet: { type: 'boolean' },
      help: { type: 'boolean', short: 'h' },
    },
  });
  if (values.help) {
    process.stdout.write(`Usage: npm run bench:compare -- [options]
  --servers a,b       among ejabberd,prosody,hermod (default: all; missing ones are skipped)
  --scenarios a,b     among ${ALL_CASES.join(',')} (default: all)
  --clients N         sessions per scenario (default 2000); --idle-clients N (default = clients)
  --presence-clients N  users in the presence run (default min(clients, 1000))
  --duration S        seconds per messages/presence run (default 20)
  --login-rate R      logins/s offered (default 5000, above what the servers sustain); --window W closed-loop window (default 1)
  --msg-rate R        open-loop messages per client per second (default 2)
  --contacts K        presence roster size (default 10); --presence-rate R per client/s (default 1)
  --procs P           generator processes (default: 1 per 18000 clients)
  --mech M            SASL mechanism: auto (default: the strongest offered, as real clients
                      choose) | plain | scram-sha-1 | scram-sha-256
  --first-login       login case measures first logins instead of reconnecting clients
  --pipeline          clients send restart and bind behind their last SASL message
  --json | --html FILE | --quiet
`);
    return 0;
  }
  const n = (v: string | undefined, d: number): number => (v === undefined ? d : Number(v));
  const clients = n(values.clients, 2000);
  const z: Sizes = {
    clients,
    idleClients: n(values['idle-clients'], clients),
    presenceClients: n(values['presence-clients'], Math.min(clients, 1000)),
    durationS: n(values.duration, 20),
    loginRate: n(values['login-rate'], 5000),
    window: n(values.window, 1),
    msgRate: n(values['msg-rate'], 2),
    contacts: n(values.contacts, 10),
    presenceRate: n(values['presence-rate'], 1),
    procs: n(values.procs, -1),
    sasl: (values.mech ?? 'auto') as BenchOptions['sasl'],
    relogin: !values['first-login'],
    pipeline: values.pipeline ?? false,
  };
  if (!['auto', 'plain', 'scram-sha-1', 'scram-sha-256'].includes(z.sasl)) throw new Error(`--mech: unknown mechanism '${z.sasl}'`);
  const wanted = (values.servers ?? 'ejabberd,prosody,hermod').split(',');
  const cases = (values.scenarios ?? ALL_CASES.join(',')).split(',') as CaseName[];
  for (const c of cases) if (!ALL_CASES.includes(c)) throw new Error(`unknown scenario '${c}'`);
  const say = values.quiet ? undefined : progressPrinter();
  const log = (s: string): void => say?.(s, true);

  const outcomes: ServerOutcome[] = [];
  for (const kind of SERVERS.filter((k) => wanted.includes(k.name))) {
    const o: ServerOutcome = { name: kind.name, cases: {} };
    outcomes.push(o);
    const why = kind.unavailable();
    if (why) {
      o.skipped = why;
      log(`${kind.name}: skipped — ${why}`);
      continue;
    }
    let server: RunningServer;
    try {
      server = await kind.start(await freePort());
    } catch (e) {
      o.skipped = `did not start: ${(e as Error).message.split('\n')[0]}`;
      log(`${kind.name}: skipped — ${o.skipped}`);
      continue;
    }
    log(`${kind.name}: listening on 127.0.0.1:${server.port} (pid ${server.pid})`);
    try {
      for (const c of cases) {
        const opts: BenchOptions = {
          ...DEFAULTS,
          scenario: 'login',
          ...caseOptions(c, z),
          port: server.port,
          serverPid: server.pid,
          procs: z.procs,
          sasl: z.sasl,
          pipeline: z.pipeline,
          // Fresh accounts per case, registered in-band before the measured phases: what one case
          // leaves behind (offline messages, rosters) must not load the next one.
          prefix: `hb${c.replace(/[^a-z]/g, '')}`,
          register: true,
          progress: say ? (line, final) => say(`${kind.name} ${c}: ${line}`, final) : undefined,
        };
        try {
          o.cases[c] = { result: await runBench(opts) };
        } catch (e) {
          o.cases[c] = { error: (e as Error).message };
          log(`${kind.name} ${c}: failed — ${(e as Error).message}`);
        }
        // Let the server settle (closing sessions, TIME_WAIT) before the next case.
        await new Promise((r) => setTimeout(r, 2000));
      }
    } finally {
      await server.stop();
    }
  }

  const table = sideBySide(outcomes, cases);
  if (values.json) process.stdout.write(JSON.stringify({ sizes: z, table, outcomes }, null, 2) + '\n');
  else process.stdout.write(`\n${table}\n\n↑ higher is better, ↓ lower is better; (n×) = how many times better than ejabberd\n`);
  if (values.html) {
    const sections = outcomes.flatMap((o) =>
      Object.entries(o.cases).flatMap(([c, out]) => (out && 'result' in out ? [{ label: `${o.name} · ${c}`, result: out.result }] : [])),
    );
    writeFileSync(values.html, htmlReport(sections, `npm run bench:compare -- ${argv.join(' ')}`).replace('<h1>hermod bench</h1>', `<h1>hermod bench:compare</h1><pre>${escapeHtml(table)}</pre>`));
  }
  return 0;
}

function escapeHtml(s: string): string {
  return s.replace(/[&<>]/g, (c) => ({ '&': '&amp;', '<': '&lt;', '>': '&gt;' })[c] as string);
}

// Run when executed directly (node dist/bench/load/compare.js), not when imported.
if (process.argv[1] && import.meta.url.endsWith(process.argv[1].replace(/^.*\//, '/'))) {
  main(process.argv.slice(2)).then(
    (code) => (process.exitCode = code),
    (e: Error) => {
      process.stderr.write(`bench:compare: ${e.message}\n`);
      process.exitCode = 1;
    },
  );
}

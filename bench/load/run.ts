/**
 * The orchestrator: splits the swarm over generator processes, walks them through a scenario's
 * phases in lock-step, watches the server through /proc, and folds everything into one result.
 * Every phase has a time bound, and a watchdog ends the whole run if a phase ever hangs.
 */
import { fork, type ChildProcess } from 'node:child_process';
import { existsSync } from 'node:fs';
import { availableParallelism } from 'node:os';
import { fileURLToPath } from 'node:url';
import type { SaslChoice } from './client.js';
import { Generator, type GenCommand, type GenConfig, type GenReport, type GenStats } from './generator.js';
import { cpuMicros, cpuTimes, rssBytes } from './proc.js';
import { Histogram, nowUs, summarize, Timeline, type HistogramJSON, type LatencySummary } from './stats.js';

export type Scenario = 'login' | 'messages' | 'presence' | 'idle';

export interface BenchOptions {
  scenario: Scenario;
  host: string;
  port: number;
  domain: string;
  prefix: string;
  password: string;
  resource: string;
  sasl: SaslChoice;
  starttls: boolean;
  clients: number;
  /** Generator processes; 0 runs the swarm inside this process. */
  procs: number;
  /** Register the accounts in-band (XEP-0077) first; otherwise they must exist. */
  register: boolean;
  registerConcurrency: number;
  /** Logins per second over the whole swarm; 0 connects everyone at once (reconnect storm). */
  rate: number;
  /**
   * Login scenario: log every account in once first (its first login: the client derives its
   * SCRAM keys, the server fills its caches), end those sessions, then measure the second round
   * — reconnecting clients, which is what a login storm consists of. False measures first logins.
   */
  relogin: boolean;
  /** Clients send the restart and bind behind their last SASL message (not what most clients do). */
  pipeline: boolean;
  /** Send initial presence after login (always on for presence; on for messages to bare JIDs). */
  presence: boolean;
  loginTimeoutS: number;
  durationS: number;
  drainS: number;
  mode: 'closed' | 'open';
  window: number;
  /** Messages or presence changes per client per second (open loop). */
  msgRate: number;
  size: number;
  to: 'full' | 'bare';
  contacts: number;
  presenceRate: number;
  setupRate: number;
  setupTimeoutS: number;
  holdS: number;
  serverPid?: number;
  /** Called with a one-line status about once a second. */
  progress?: (line: string, final: boolean) => void;
}

export const DEFAULTS: Omit<BenchOptions, 'scenario'> = {
  host: '127.0.0.1',
  port: 5222,
  domain: 'localhost',
  prefix: 'bench',
  password: 'bench-secret',
  resource: 'hb',
  sasl: 'auto',
  starttls: false,
  clients: 1000,
  procs: -1,
  register: false,
  registerConcurrency: 100,
  rate: 500,
  relogin: true,
  pipeline: false,
  presence: false,
  loginTimeoutS: 60,
  durationS: 20,
  drainS: 5,
  mode: 'closed',
  window: 1,
  msgRate: 1,
  size: 0,
  to: 'full',
  contacts: 10,
  presenceRate: 0.2,
  setupRate: 5000,
  setupTimeoutS: 120,
  holdS: 10,
};

/** File descriptors one generator may hold: the box's hard limit is 20000 per process. */
export const CLIENTS_PER_PROC = 18000;

export interface BenchResult {
  scenario: Scenario;
  clients: number;
  procs: number;
  registration?: { created: number; existed: number; failed: number; seconds: number };
  login: LoginRound & {
    /** SASL mechanisms the clients used (auto picks the strongest offered). */
    mechanisms: Record<string, number>;
    /** Whether this round is of reconnecting clients (an earlier round logged them in once). */
    reconnect: boolean;
    /** SCRAM key derivations (PBKDF2) the tool ran over the whole run, and reuses of cached keys. */
    scram: { derived: number; reused: number };
  };
  /** The unmeasured-by-default first round of a reconnect run, with its own CPU figures. */
  firstLogin?: LoginRound & { serverUsPerLogin: number; toolUsPerLogin: number };
  /**
   * The end of the first round's sessions (a reconnect run): each client closes its stream
   * (RFC 6120 §4.4), CPU per closed session over the close and a 1 s settling pause.
   */
  logout?: { sessions: number; serverUsPerLogout: number; toolUsPerLogout: number };
  setup?: { seconds: number; complete: number; approved: number; confirmed: number; wanted: number };
  run?: {
    seconds: number;
    sent: number;
    delivered: number;
    deliveredInWindow: number;
    expected: number;
    lost: number;
    skipped: number;
    perSec: number;
    completeness: number;
    latency: LatencySummary;
  };
  memory?: { rssBeforeBytes: number; rssAfterBytes: number; perSessionBytes: number };
  cpu: {
    seconds: number;
    toolUs: number;
    toolPct: number;
    serverUs: number;
    serverPct: number;
    serverUsPerOp: number;
    /** The kernel's part of serverUsPerOp (system time: syscalls, the loopback network stack). */
    serverSysUsPerOp: number;
    /** Worst generator's event-loop delay over the run phase (messages, presence). */
    toolLoopDelayP99Us: number;
    toolLoopDelayMaxUs: number;
  };
  drops: number;
  errors: Record<string, number>;
  timeline: { t: number; n: number; p50: number; p99: number; max: number }[];
  histogram: HistogramJSON;
}

export interface LoginRound {
  ok: number;
  failed: number;
  seconds: number;
  perSec: number;
  latency: LatencySummary;
  over1s: number;
}

interface Handle {
  call<T = unknown>(c: GenCommand): Promise<T>;
  kill(): void;
}

function inlineHandle(cfg: GenConfig): Handle {
  const g = new Generator(cfg);
  return { call: (c) => g.call(c) as Promise<any>, kill: () => void g.call({ cmd: 'close' }) };
}

function forkHandle(cfg: GenConfig, workerPath: string): Promise<Handle> {
  const child: ChildProcess = fork(workerPath, [], { serialization: 'advanced', stdio: ['ignore', 'inherit', 'inherit', 'ipc'] });
  let seq = 0;
  const waiting = new Map<number, { resolve: (v: any) => void; reject: (e: Error) => void }>();
  child.on('message', (m: { id: number; result: unknown; error?: string }) => {
    const w = waiting.get(m.id);
    if (!w) return;
    waiting.delete(m.id);
    if (m.error) w.reject(new Error(m.error));
    else w.resolve(m.result);
  });
  child.on('exit', (code) => {
    for (const w of waiting.values()) w.reject(new Error(`generator process exited (${code})`));
    waiting.clear();
  });
  const send = (msg: object): Promise<any> =>
    new Promise((resolve, reject) => {
      const id = ++seq;
      waiting.set(id, { resolve, reject });
      child.send({ id, ...msg });
    });
  return send({ init: cfg }).then(() => ({
    call: (c: GenCommand) => send({ command: c }),
    kill: () => child.kill('SIGKILL'),
  }));
}

/** Generator processes for this option set (auto: one per CLIENTS_PER_PROC clients). */
export function procCount(o: Pick<BenchOptions, 'procs' | 'clients'>): number {
  if (o.procs >= 0) return o.procs;
  // Two generators from a few hundred clients on: one Node thread tops out near the cost of a
  // lean server per message (measured ~12 µs per sent+received message against floor-server).
  const floor = o.clients >= 200 && availableParallelism() >= 2 ? 2 : 1;
  return Math.max(floor, Math.ceil(o.clients / CLIENTS_PER_PROC));
}

const sleep = (ms: number): Promise<void> => new Promise((r) => setTimeout(r, ms));

function assertLoopback(host: string, allowRemote: boolean): void {
  if (allowRemote) return;
  if (!/^(127\.\d+\.\d+\.\d+|::1|localhost)$/.test(host)) {
    throw new Error(`refusing to load ${host}: the bench drives loopback servers only (pass --allow-remote to override)`);
  }
}

export async function runBench(opts: BenchOptions, allowRemote = false): Promise<BenchResult> {
  assertLoopback(opts.host, allowRemote);
  if (opts.scenario === 'presence') {
    if (opts.contacts % 2 !== 0 || opts.contacts < 2) throw new Error('--contacts must be an even number ≥ 2 (ring neighbours ±1…±K/2)');
    if (opts.contacts >= opts.clients) throw new Error('--contacts must be smaller than --clients');
  }
  const procs = procCount(opts);
  if (procs === 0 && opts.clients > CLIENTS_PER_PROC) throw new Error(`--procs 0 holds at most ${CLIENTS_PER_PROC} clients`);
  const workerJs = fileURLToPath(new URL('./worker.js', import.meta.url));
  if (procs > 0 && !existsSync(workerJs)) throw new Error(`${workerJs} missing: run 'npm run build' (or use --procs 0)`);

  const base: Omit<GenConfig, 'lo' | 'hi'> = {
    host: opts.host,
    port: opts.port,
    domain: opts.domain,
    prefix: opts.prefix,
    password: opts.password,
    resource: opts.resource,
    sasl: opts.sasl,
    starttls: opts.starttls,
    timeoutMs: opts.loginTimeoutS * 1000,
    pipeline: opts.pipeline,
    total: opts.clients,
  };
  const parts = Math.max(1, procs);
  const cfgs = Array.from({ length: parts }, (_, g) => ({
    ...base,
    lo: Math.floor((g * opts.clients) / parts),
    hi: Math.floor(((g + 1) * opts.clients) / parts),
  }));
  const gens: Handle[] = procs === 0 ? [inlineHandle(cfgs[0])] : await Promise.all(cfgs.map((c) => forkHandle(c, workerJs)));

  // Watchdog: the longest the phases may take together, plus slack; then everything is torn down.
  const budgetS =
    (opts.register ? opts.loginTimeoutS + opts.clients / 50 : 0) +
    (opts.loginTimeoutS + (opts.rate > 0 ? opts.clients / opts.rate : 0)) * (reconnectRun(opts) ? 2 : 1) +
    (reconnectRun(opts) ? 5 : 0) +
    (opts.scenario === 'presence' ? opts.setupTimeoutS : 0) +
    (opts.scenario === 'idle' ? opts.holdS : opts.durationS) +
    opts.drainS +
    30;
  let watchdog: NodeJS.Timeout | undefined;
  const expired = new Promise<never>((_, reject) => {
    watchdog = setTimeout(() => reject(new Error(`run exceeded its ${Math.round(budgetS)} s budget`)), budgetS * 1000);
  });
  try {
    return await Promise.race([drive(opts, gens, procs), expired]);
  } finally {
    clearTimeout(watchdog);
    // Bounded goodbye: the timer is unref'd so a quick close does not hold the process 5 s.
    await Promise.race([
      Promise.allSettled(gens.map((g) => g.call({ cmd: 'close' }))),
      new Promise<void>((r) => setTimeout(r, 5000).unref()),
    ]);
    for (const g of gens) g.kill();
  }
}

/** Whether this run measures a second, reconnecting round of logins. */
function reconnectRun(o: Pick<BenchOptions, 'scenario' | 'relogin'>): boolean {
  return o.scenario === 'login' && o.relogin;
}

function sumStats(all: GenStats[]): GenStats {
  const t: GenStats = { ready: 0, failed: 0, sent: 0, received: 0, expected: 0, skipped: 0, drops: 0, cpuUs: 0 };
  for (const s of all) for (const k of Object.keys(t) as (keyof GenStats)[]) t[k] += s[k];
  return t;
}

async function drive(opts: BenchOptions, gens: Handle[], procs: number): Promise<BenchResult> {
  const P = gens.length;
  const all = <T>(c: GenCommand): Promise<T[]> => Promise.all(gens.map((g) => g.call<T>(c)));
  const stats = async (): Promise<GenStats> => sumStats(await all<GenStats>({ cmd: 'stats' }));
  const pid = opts.serverPid;
  const say = (line: string, final = false): void => opts.progress?.(line, final);
  const selfCpu = (): number => {
    const u = process.cpuUsage();
    return u.user + u.system;
  };

  // Live line: rates since the previous tick, plus the server's CPU and memory when known.
  let ticker: NodeJS.Timeout | undefined;
  const startTicker = (phase: string): void => {
    clearInterval(ticker);
    if (!opts.progress) return;
    const t0 = nowUs();
    let prev = { at: t0, recv: 0, sent: 0, ready: 0, cpu: pid ? cpuMicros(pid) : NaN };
    // Rates are per phase: start from the counters as this phase finds them.
    let busy = true;
    void stats().then(
      (s) => {
        prev = { ...prev, recv: s.received, sent: s.sent, ready: s.ready };
        busy = false;
      },
      () => (busy = false),
    );
    ticker = setInterval(() => {
      if (busy) return;
      busy = true;
      void stats().then(
        (s) => {
          busy = false;
          const at = nowUs();
          const dt = (at - prev.at) / 1e6;
          const cpu = pid ? cpuMicros(pid) : NaN;
          const srv = pid ? ` server ${(((cpu - prev.cpu) / 1e6 / dt) * 100).toFixed(0)}% cpu ${(rssBytes(pid) / 2 ** 20).toFixed(0)} MiB` : '';
          say(
            `[${phase} ${((at - t0) / 1e6).toFixed(0)}s] ready ${s.ready} failed ${s.failed} sent ${s.sent} recv ${s.received}` +
              ` (${((s.received - prev.recv) / dt).toFixed(0)}/s) logins ${((s.ready - prev.ready) / dt).toFixed(0)}/s${srv}`,
          );
          prev = { at, recv: s.received, sent: s.sent, ready: s.ready, cpu };
        },
        () => (busy = false),
      );
    }, 1000);
  };

  try {
    const result: Partial<BenchResult> = { scenario: opts.scenario, clients: opts.clients, procs };

    if (opts.register) {
      startTicker('register');
      const t = nowUs();
      const per = Math.max(1, Math.ceil(opts.registerConcurrency / P));
      const regs = await all<{ created: number; existed: number; failed: number }>({ cmd: 'register', concurrency: per });
      const r = { created: 0, existed: 0, failed: 0, seconds: (nowUs() - t) / 1e6 };
      for (const x of regs) (r.created += x.created), (r.existed += x.existed), (r.failed += x.failed);
      result.registration = r;
      say(`registered: ${r.created} created, ${r.existed} existed, ${r.failed} failed in ${r.seconds.toFixed(1)} s`, true);
    }

    const presence = opts.presence || opts.scenario === 'presence' || opts.to === 'bare';
    const serverNow = (): { server: number; serverSys: number } => {
      const t = pid ? cpuTimes(pid) : { user: NaN, system: NaN };
      return { server: t.user + t.system, serverSys: t.system };
    };
    const cpuNow = async (): Promise<{ at: number; tool: number; server: number; serverSys: number }> => ({
      at: nowUs(),
      tool: (await stats()).cpuUs + (procs > 0 ? selfCpu() : 0),
      ...serverNow(),
    });
    const loginRound = async (label: string): Promise<{ ok: number; seconds: number; logins: Histogram }> => {
      startTicker(label);
      const conns = await all<{ ok: number; failed: number; firstUs: number; lastUs: number }>({
        cmd: 'connect',
        rate: opts.rate / P,
        presence,
        roster: opts.scenario === 'presence',
      });
      const first = Math.min(...conns.map((c) => c.firstUs));
      const last = Math.max(...conns.map((c) => c.lastUs));
      const ok = conns.reduce((a, c) => a + c.ok, 0);
      const reports = await all<GenReport>({ cmd: 'report' });
      if (ok === 0) {
        const why = Object.entries(reports.reduce((a, r) => Object.assign(a, r.errors), {} as Record<string, number>));
        throw new Error(`no client logged in (${why.map(([k, v]) => `${v} × ${k}`).join('; ') || 'no error reported'})`);
      }
      const logins = new Histogram();
      for (const r of reports) logins.merge(Histogram.fromJSON(r.logins));
      return { ok, seconds: (last - first) / 1e6, logins };
    };
    const roundOf = (r: { ok: number; seconds: number; logins: Histogram }): LoginRound => ({
      ok: r.ok,
      failed: opts.clients - r.ok,
      seconds: r.seconds,
      perSec: r.seconds > 0 ? r.ok / r.seconds : NaN,
      latency: summarize(r.logins),
      // A login over 1 s usually means a dropped SYN retransmitted (listen backlog overflow).
      over1s: r.logins.countAtLeast(1e6),
    });

    if (reconnectRun(opts)) {
      const c0 = await cpuNow();
      const r1 = await loginRound(opts.rate > 0 ? 'first login' : 'first storm');
      const c1 = await cpuNow();
      result.firstLogin = {
        ...roundOf(r1),
        serverUsPerLogin: (c1.server - c0.server) / r1.ok,
        toolUsPerLogin: (c1.tool - c0.tool) / r1.ok,
      };
      say(`first logins: ${r1.ok}/${opts.clients} in ${r1.seconds.toFixed(2)} s; reconnecting`, true);
      await all({ cmd: 'disconnect' });
      // Let the server finish closing those sessions before the measured round.
      await sleep(1000);
      const c2 = await cpuNow();
      result.logout = { sessions: r1.ok, serverUsPerLogout: (c2.server - c1.server) / r1.ok, toolUsPerLogout: (c2.tool - c1.tool) / r1.ok };
    }

    const rssBefore = pid ? rssBytes(pid) : NaN;
    let cpu0 = await cpuNow();
    const round = await loginRound(opts.rate > 0 ? 'login' : 'storm');
    const ok = round.ok;
    const loginSeconds = round.seconds;
    let cpu1 = await cpuNow();
    let ops = ok;
    say(`logged in: ${ok}/${opts.clients} in ${loginSeconds.toFixed(2)} s`, true);

    if (opts.scenario === 'login' || opts.scenario === 'idle') {
      const hold = opts.scenario === 'idle' ? opts.holdS : 1;
      startTicker('hold');
      await sleep(hold * 1000);
      const rssAfter = pid ? rssBytes(pid) : NaN;
      result.memory = { rssBeforeBytes: rssBefore, rssAfterBytes: rssAfter, perSessionBytes: ok ? (rssAfter - rssBefore) / ok : NaN };
    }

    if (opts.scenario === 'presence') {
      startTicker('subscribe');
      const t = nowUs();
      const subs = await all<{ complete: number; approved: number; confirmed: number }>({
        cmd: 'subscribe',
        contacts: opts.contacts,
        rate: opts.setupRate / P,
        timeoutMs: opts.setupTimeoutS * 1000,
      });
      const s = { seconds: (nowUs() - t) / 1e6, complete: 0, approved: 0, confirmed: 0, wanted: ok * opts.contacts };
      for (const x of subs) (s.complete += x.complete), (s.approved += x.approved), (s.confirmed += x.confirmed);
      result.setup = s;
      say(`rosters: ${s.complete}/${ok} complete, ${s.confirmed}/${s.wanted} subscriptions confirmed in ${s.seconds.toFixed(1)} s`, true);
      // Let the initial-presence exchange that follows each approval settle.
      await sleep(1000);
    }

    if (opts.scenario === 'messages' || opts.scenario === 'presence') {
      const before = await stats();
      const t0 = nowUs();
      cpu0 = { at: t0, tool: before.cpuUs + (procs > 0 ? selfCpu() : 0), ...serverNow() };
      startTicker(opts.scenario);
      const durationMs = opts.durationS * 1000;
      const cmd: GenCommand =
        opts.scenario === 'messages'
          ? { cmd: 'messages', t0, durationMs, mode: opts.mode, window: opts.window, rate: opts.msgRate, size: opts.size, to: opts.to }
          : { cmd: 'presence', t0, durationMs, rate: opts.presenceRate };
      await all(cmd);
      const mid = await stats();
      cpu1 = { at: nowUs(), tool: mid.cpuUs + (procs > 0 ? selfCpu() : 0), ...serverNow() };
      // Drain: wait for stanzas in flight, up to drainS, to tell late from lost.
      startTicker('drain');
      const drainEnd = nowUs() + opts.drainS * 1e6;
      let s = mid;
      const target = (x: GenStats): number => (opts.scenario === 'messages' ? x.sent : x.expected);
      while (nowUs() < drainEnd && s.received < target(s)) {
        await sleep(100);
        s = await stats();
      }
      const reports = await all<GenReport>({ cmd: 'report' });
      const lat = new Histogram();
      const tl = new Timeline();
      for (const r of reports) {
        lat.merge(Histogram.fromJSON(r.latency));
        tl.merge(Timeline.fromJSON(r.timeline));
      }
      let inWindow = 0;
      for (const [sec, h] of tl.seconds) if (sec >= 0 && sec < opts.durationS) inWindow += h.n;
      const sent = s.sent - before.sent;
      const expected = opts.scenario === 'messages' ? sent : s.expected - before.expected;
      const delivered = s.received - before.received;
      ops = inWindow;
      result.run = {
        seconds: opts.durationS,
        sent,
        delivered,
        deliveredInWindow: inWindow,
        expected,
        lost: Math.max(0, expected - delivered),
        skipped: s.skipped - before.skipped,
        perSec: inWindow / opts.durationS,
        completeness: expected ? delivered / expected : NaN,
        latency: summarize(lat),
      };
      result.timeline = tl.rows();
      result.histogram = lat.toJSON();
    }

    const reports = await all<GenReport>({ cmd: 'report' });
    const errors: Record<string, number> = {};
    const mechanisms: Record<string, number> = {};
    const scram = { derived: 0, reused: 0 };
    let drops = 0;
    for (const r of reports) {
      drops += r.drops;
      for (const [k, v] of Object.entries(r.errors)) errors[k] = (errors[k] ?? 0) + v;
      for (const [k, v] of Object.entries(r.mechanisms)) mechanisms[k] = (mechanisms[k] ?? 0) + v;
      scram.derived += r.scram.derived;
      scram.reused += r.scram.reused;
    }
    result.login = { ...roundOf(round), mechanisms, reconnect: reconnectRun(opts), scram };
    const seconds = (cpu1.at - cpu0.at) / 1e6;
    const serverUs = cpu1.server - cpu0.server;
    result.cpu = {
      seconds,
      toolUs: cpu1.tool - cpu0.tool,
      toolPct: ((cpu1.tool - cpu0.tool) / 1e6 / seconds) * 100,
      serverUs,
      serverPct: (serverUs / 1e6 / seconds) * 100,
      serverUsPerOp: ops > 0 ? serverUs / ops : NaN,
      serverSysUsPerOp: ops > 0 ? (cpu1.serverSys - cpu0.serverSys) / ops : NaN,
      toolLoopDelayP99Us: Math.max(...reports.map((r) => r.loopDelayP99Us)),
      toolLoopDelayMaxUs: Math.max(...reports.map((r) => r.loopDelayMaxUs)),
    };
    result.drops = drops;
    result.errors = errors;
    result.timeline ??= [];
    result.histogram ??= opts.scenario === 'login' ? round.logins.toJSON() : new Histogram().toJSON();
    return result as BenchResult;
  } finally {
    clearInterval(ticker);
  }
}


/**
 * `hermod bench <scenario> [options]`: the client swarm users point at any XMPP server.
 */
import { writeFileSync } from 'node:fs';
import { parseArgs } from 'node:util';
import { DEFAULTS, runBench, type BenchOptions, type Scenario } from './run.js';
import { htmlReport, textTable } from './report.js';

const SCENARIOS: Scenario[] = ['login', 'messages', 'presence', 'idle'];

export const USAGE = `Usage: hermod bench <login|messages|presence|idle> [options]

Drives an XMPP server on loopback with a swarm of lean c2s clients (plain TCP by default).

Connection and accounts:
  --host H            server address (default 127.0.0.1; loopback only unless --allow-remote)
  --port P            c2s port (default 5222)
  --domain D          XMPP domain (default localhost)
  --prefix S          account names are S0, S1, … (default bench)
  --password S        shared password (default bench-secret)
  --register          create the accounts first by in-band registration (XEP-0077)
  --sasl M, --mech M  auto | plain | scram-sha-1 | scram-sha-256 (default auto: the strongest
                      offered, SCRAM-SHA-256 > SCRAM-SHA-1 > PLAIN, as real clients choose)
  --starttls          negotiate STARTTLS when offered (default off for loopback runs)
  --pipeline          send the stream restart and bind right behind the last SASL message,
                      before <success/> (two round trips fewer; most clients wait instead)
  --clients N         sessions (default 1000)
  --rate R            logins per second (default 500)
  --storm             connect all clients at once (reconnect storm; same as --rate 0)
  --first-login       login scenario: measure the accounts' first login; by default every
                      account logs in once, disconnects, and the reconnect round is measured
                      (clients keep SCRAM keys per account as real clients do)
  --procs P           generator processes (default: 2 from 200 clients, one per 18000
                      clients beyond; 0 = in this process)
  --login-timeout S   per-login limit in seconds (default 60)

Scenarios:
  login               log N clients in; logins/s, login time, server RSS per session, and
                      (reconnect run) server and tool CPU per login and per logout
  idle                hold N sessions for --hold S seconds (default 10); server RSS per session
  messages            1:1 chat to random peers for --duration S (default 20), then --drain S (5)
    --mode closed     closed loop: N × --window W messages circulate (default, W = 1)
    --mode open       open loop: --msg-rate R messages per client per second
    --size B          body padding in bytes;  --to full|bare  (default full JID)
  presence            K mutual contacts per user (--contacts K, default 10) built with real
                      subscribe/subscribed, then --presence-rate R changes per client per second
                      (default 0.2); --setup-rate R subscription requests/s (default 5000),
                      --setup-timeout S for the roster build (default 120)
  --presence          send initial presence after login in every scenario

Server and output:
  --server-pid PID    read the server's RSS and CPU time from /proc/PID
  --json              print the result as JSON
  --html FILE         write a self-contained HTML report with plots
  --quiet             no live progress line
  --allow-remote      allow a non-loopback --host (off: the bench is meant for loopback)
`;

function num(v: string | undefined, name: string, fallback: number): number {
  if (v === undefined) return fallback;
  const n = Number(v);
  if (!Number.isFinite(n) || n < 0) throw new Error(`--${name} wants a non-negative number, got '${v}'`);
  return n;
}

export function parseBenchArgs(argv: string[]): { opts: BenchOptions; json: boolean; html?: string; quiet: boolean; allowRemote: boolean } {
  const { values, positionals } = parseArgs({
    args: argv,
    allowPositionals: true,
    options: {
      host: { type: 'string' },
      port: { type: 'string' },
      domain: { type: 'string' },
      prefix: { type: 'string' },
      password: { type: 'string' },
      register: { type: 'boolean' },
      sasl: { type: 'string' },
      mech: { type: 'string' },
      starttls: { type: 'boolean' },
      pipeline: { type: 'boolean' },
      clients: { type: 'string' },
      rate: { type: 'string' },
      storm: { type: 'boolean' },
      'first-login': { type: 'boolean' },
      procs: { type: 'string' },
      'login-timeout': { type: 'string' },
      hold: { type: 'string' },
      duration: { type: 'string' },
      drain: { type: 'string' },
      mode: { type: 'string' },
      window: { type: 'string' },
      'msg-rate': { type: 'string' },
      size: { type: 'string' },
      to: { type: 'string' },
      contacts: { type: 'string' },
      'presence-rate': { type: 'string' },
      'setup-rate': { type: 'string' },
      'setup-timeout': { type: 'string' },
      presence: { type: 'boolean' },
      'server-pid': { type: 'string' },
      json: { type: 'boolean' },
      html: { type: 'string' },
      quiet: { type: 'boolean' },
      'allow-remote': { type: 'boolean' },
    },
  });
  const scenario = positionals[0] as Scenario;
  if (!SCENARIOS.includes(scenario)) throw new Error(`unknown scenario '${positionals[0] ?? ''}'\n\n${USAGE}`);
  const d = DEFAULTS;
  const sasl = (values.mech ?? values.sasl ?? d.sasl) as BenchOptions['sasl'];
  if (!['auto', 'plain', 'scram-sha-1', 'scram-sha-256'].includes(sasl)) throw new Error(`--sasl: unknown mechanism '${sasl}'`);
  const mode = (values.mode ?? d.mode) as BenchOptions['mode'];
  if (mode !== 'closed' && mode !== 'open') throw new Error(`--mode is closed or open, got '${mode}'`);
  const to = (values.to ?? d.to) as BenchOptions['to'];
  if (to !== 'full' && to !== 'bare') throw new Error(`--to is full or bare, got '${to}'`);
  const opts: BenchOptions = {
    scenario,
    host: values.host ?? d.host,
    port: num(values.port, 'port', d.port),
    domain: values.domain ?? d.domain,
    prefix: values.prefix ?? d.prefix,
    password: values.password ?? d.password,
    resource: d.resource,
    sasl,
    starttls: values.starttls ?? d.starttls,
    clients: num(values.clients, 'clients', d.clients),
    procs: values.procs === undefined ? d.procs : num(values.procs, 'procs', 0),
    register: values.register ?? d.register,
    registerConcurrency: d.registerConcurrency,
    rate: values.storm ? 0 : num(values.rate, 'rate', d.rate),
    relogin: values['first-login'] ? false : d.relogin,
    pipeline: values.pipeline ?? d.pipeline,
    presence: values.presence ?? d.presence,
    loginTimeoutS: num(values['login-timeout'], 'login-timeout', d.loginTimeoutS),
    durationS: num(values.duration, 'duration', d.durationS),
    drainS: num(values.drain, 'drain', d.drainS),
    mode,
    window: num(values.window, 'window', d.window),
    msgRate: num(values['msg-rate'], 'msg-rate', d.msgRate),
    size: num(values.size, 'size', d.size),
    to,
    contacts: num(values.contacts, 'contacts', d.contacts),
    presenceRate: num(values['presence-rate'], 'presence-rate', d.presenceRate),
    setupRate: num(values['setup-rate'], 'setup-rate', d.setupRate),
    setupTimeoutS: num(values['setup-timeout'], 'setup-timeout', d.setupTimeoutS),
    holdS: num(values.hold, 'hold', d.holdS),
    serverPid: values['server-pid'] ? num(values['server-pid'], 'server-pid', 0) : undefined,
  };
  return { opts, json: values.json ?? false, html: values.html, quiet: values.quiet ?? false, allowRemote: values['allow-remote'] ?? false };
}

/** A progress printer: rewrites one line on a terminal, prints every 5th line otherwise. */
export function progressPrinter(stream: NodeJS.WriteStream = process.stderr): (line: string, final: boolean) => void {
  let n = 0;
  return (line, final) => {
    if (stream.isTTY) stream.write(`\r\x1b[K${line}${final ? '\n' : ''}`);
    else if (final || n++ % 5 === 0) stream.write(line + '\n');
  };
}

export async function main(argv: string[]): Promise<number> {
  if (argv.length === 0 || argv.includes('--help') || argv.includes('-h')) {
    process.stdout.write(USAGE);
    return argv.length === 0 ? 64 : 0;
  }
  let parsed;
  try {
    parsed = parseBenchArgs(argv);
  } catch (e) {
    process.stderr.write(`hermod bench: ${(e as Error).message}\n`);
    return 64;
  }
  const { opts, json, html, quiet, allowRemote } = parsed;
  if (!quiet) opts.progress = progressPrinter();
  const result = await runBench(opts, allowRemote);
  if (process.stderr.isTTY && !quiet) process.stderr.write('\r\x1b[K');
  if (json) process.stdout.write(JSON.stringify(result, null, 2) + '\n');
  else process.stdout.write(textTable(result) + '\n');
  if (html) {
    writeFileSync(html, htmlReport([{ label: `${opts.scenario} @ ${opts.host}:${opts.port}`, result }], `hermod bench ${argv.join(' ')}`));
    if (!json) process.stdout.write(`report written to ${html}\n`);
  }
  return result.login.ok === 0 ? 1 : 0;
}

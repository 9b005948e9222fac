/**
 * The decision benchmark for `--workers`: the same `hermod bench` scenario against
 * `hermod serve --workers N` for each N, in alternating rounds (the box's load drifts), on this
 * box's cores shared with the load generator — as in production benchmarks here.
 *
 *   node dist/bench/core/shard-serve.js [--workers 0,1,2] [--rounds 2] [--scenario messages]
 *        [--serve 'FLAGS|FLAGS'] [--json] [-- extra hermod bench flags, e.g. --clients 1000 --window 50]
 *
 * --serve compares server settings as well: each '|'-separated group of `hermod serve` flags is a
 * case of its own, e.g. --serve '--set mam.default=never|--set mam.default=always'.
 */
import { type ChildProcess, spawn } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { report, round, type Row } from './shard-common.js';

const CLI = resolve(fileURLToPath(import.meta.url), '../../../src/cli.js');

interface Result {
  run?: { perSec: number; latency: { p50: number; p99: number }; completeness: number };
  login: { perSec: number };
  cpu: { serverPct: number; serverUsPerOp: number; toolPct: number };
}

function arg(name: string, fallback: string): string {
  const argv = process.argv.slice(2);
  const i = argv.indexOf(`--${name}`);
  return i >= 0 && argv[i + 1] !== undefined ? argv[i + 1]! : fallback;
}

async function startServer(workers: number, dataDir: string, serveFlags: string[]): Promise<{ proc: ChildProcess; port: number }> {
  const proc = spawn(
    process.execPath,
    [CLI, 'serve', '--workers', String(workers), '--port', '0', '--tls-port', '0', '--data', dataDir, '--tls', 'optional', '--registration', 'open', ...serveFlags],
    { stdio: ['ignore', 'pipe', 'pipe'] },
  );
  let out = '';
  const port = await new Promise<number>((ok, fail) => {
    const timer = setTimeout(() => fail(new Error(`server did not start: ${out}`)), 60_000);
    const onData = (d: Buffer): void => {
      out += d.toString();
      const m = /listening on 127\.0\.0\.1:(\d+) \(c2s/.exec(out);
      if (m) {
        clearTimeout(timer);
        ok(Number(m[1]));
      }
    };
    proc.stdout!.on('data', onData);
    proc.stderr!.on('data', onData);
    proc.once('exit', (code) => fail(new Error(`server exited (${code}): ${out}`)));
  });
  return { proc, port };
}

function runBench(scenario: string, port: number, pid: number, extra: string[]): Promise<Result> {
  const bench = spawn(process.execPath, [CLI, 'bench', scenario, '--port', String(port), '--register', '--json', '--quiet', '--server-pid', String(pid), ...extra], {
    stdio: ['ignore', 'pipe', 'inherit'],
  });
  let out = '';
  bench.stdout!.on('data', (d: Buffer) => (out += d.toString()));
  return new Promise((ok, fail) =>
    bench.once('exit', (code) => {
      if (code !== 0) return fail(new Error(`hermod bench exited ${code}: ${out}`));
      ok(JSON.parse(out) as Result);
    }),
  );
}

async function main(): Promise<void> {
  const workersList = arg('workers', '0,1,2').split(',').map(Number);
  const rounds = Number(arg('rounds', '2'));
  const scenario = arg('scenario', 'messages');
  const dash = process.argv.indexOf('--');
  const extra = dash >= 0 ? process.argv.slice(dash + 1) : ['--clients', '1000', '--window', '50', '--duration', '10', '--drain', '2', '--procs', '2'];
  const variants = arg('serve', '')
    .split('|')
    .map((v) => v.trim().split(/\s+/).filter(Boolean));
  const cases = workersList.flatMap((workers) => variants.map((flags) => ({ workers, flags })));
  const rows: Row[] = [];
  for (let r = 0; r < rounds; r++) {
    const order = r % 2 === 0 ? cases : [...cases].reverse();
    for (const { workers, flags } of order) {
      const dataDir = mkdtempSync(join(tmpdir(), 'hermod-shard-serve-'));
      const { proc, port } = await startServer(workers, dataDir, flags);
      try {
        const res = await runBench(scenario, port, proc.pid!, extra);
        rows.push({
          case: `--workers ${workers}${flags.length > 0 ? ` ${flags.join(' ')}` : ''} (round ${r + 1})`,
          'ops/s': Math.round(res.run?.perSec ?? res.login.perSec),
          'server µs/op': round(res.cpu.serverUsPerOp),
          'server CPU %': Math.round(res.cpu.serverPct),
          'tool CPU %': Math.round(res.cpu.toolPct),
          'p50 ms': res.run ? round(res.run.latency.p50 / 1000, 1) : '',
          'p99 ms': res.run ? round(res.run.latency.p99 / 1000, 1) : '',
        });
      } finally {
        const exited = new Promise((ok) => proc.once('exit', ok));
        proc.kill('SIGTERM');
        await exited;
        rmSync(dataDir, { recursive: true, force: true });
      }
    }
  }
  report(`hermod bench ${scenario} ${extra.join(' ')} against serve --workers N`, rows);
}

await main();

/**
 * Memory a connection that never authenticates costs the server: spawn `hermod serve` (dist/),
 * open N connections that send a stream header and nothing else, and compare the server
 * process's resident set (/proc/PID/status VmRSS, Linux) before and after.
 *
 *   node dist/bench/hostile/preauth-memory.js [connections=3000] [workers=0]
 *
 * Raise `ulimit -n` above the connection count first. Prints one line, or JSON with --json.
 */
import { spawn } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { connect, type Socket } from 'node:net';
import { tmpdir } from 'node:os';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';

const HEADER =
  "<?xml version='1.0'?><stream:stream xmlns='jabber:client' xmlns:stream='http://etherx.jabber.org/streams' to='localhost' version='1.0'>";

const args = process.argv.slice(2).filter((a) => a !== '--json');
const json = process.argv.includes('--json');
const count = Number(args[0] ?? 3000);
const workers = Number(args[1] ?? 0);
const cli = resolve(dirname(fileURLToPath(import.meta.url)), '../../src/cli.js');
const dataDir = mkdtempSync(join(tmpdir(), 'hermod-preauth-'));
const server = spawn(process.execPath, [cli, 'serve', '--port', '0', '--tls-port', 'off', '--tls', 'optional', '--data', dataDir, '--workers', String(workers)], {
  stdio: ['ignore', 'pipe', 'inherit'],
});
let output = '';
server.stdout!.on('data', (d: Buffer) => (output += d.toString()));
const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));
try {
  while (!/listening on 127\.0\.0\.1:\d+/.test(output)) {
    if (server.exitCode !== null) throw new Error(`hermod serve exited: ${output}`);
    await sleep(50);
  }
  const port = Number(/listening on 127\.0\.0\.1:(\d+)/.exec(output)![1]);
  const rssKiB = () => Number(/VmRSS:\s+(\d+)/.exec(readFileSync(`/proc/${server.pid}/status`, 'utf8'))![1]);
  await sleep(500);
  const before = rssKiB();
  const sockets: Socket[] = [];
  for (let i = 0; i < count; i++) {
    const s = connect(port, '127.0.0.1');
    s.on('error', () => {});
    s.on('data', () => {});
    await new Promise((r) => s.once('connect', r));
    s.write(HEADER);
    sockets.push(s);
  }
  await sleep(1500);
  const after = rssKiB();
  const perConnection = (after - before) / count;
  if (json) console.log(JSON.stringify({ workers, connections: count, rssBeforeKiB: before, rssAfterKiB: after, perConnectionKiB: perConnection }));
  else console.log(`--workers ${workers}: ${count} header-only connections: RSS ${before} → ${after} KiB, ${perConnection.toFixed(1)} KiB per connection`);
  for (const s of sockets) s.destroy();
} finally {
  server.kill('SIGKILL');
  rmSync(dataDir, { recursive: true, force: true });
}

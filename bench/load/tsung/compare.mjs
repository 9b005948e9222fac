#!/usr/bin/env node
/**
 * Runs bench/load/tsung/hermod.xml with Tsung against each server that is installed here —
 * ejabberd, Prosody (private loopback instances with the settings of `hermod bench`'s
 * comparison: plain TCP, no shaper, open registration) and Hermod — one after another, and
 * prints Tsung's own figures for each side by side.
 *
 * Accounts tsung1..tsungN (password pwN, Tsung's naming) are created by in-band registration
 * (XEP-0077) before each run. Needs `npm run build` (it uses dist/bench/load/servers.js) and
 * Debian's tsung. Usage: node bench/load/tsung/compare.mjs [--servers hermod,prosody,ejabberd]
 * [--users 300] [--keep-logs]
 */
import { spawnSync } from 'node:child_process';
import { existsSync, mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import net from 'node:net';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { parseArgs } from 'node:util';

const here = dirname(fileURLToPath(import.meta.url));
const root = join(here, '../../..');
const serversJs = join(root, 'dist/bench/load/servers.js');
if (!existsSync(serversJs)) {
  console.error('dist/bench/load/servers.js missing: run npm run build');
  process.exit(1);
}
if (spawnSync('sh', ['-c', 'command -v tsung']).status !== 0) {
  console.error('tsung is not installed (apt-get install tsung)');
  process.exit(1);
}
const { SERVERS, freePort } = await import(serversJs);

const { values } = parseArgs({
  options: {
    servers: { type: 'string', default: 'ejabberd,prosody,hermod' },
    users: { type: 'string', default: '300' },
    'keep-logs': { type: 'boolean', default: false },
  },
});
const USERS = Number(values.users);

/** XEP-0077 §3.1 registration of one account on a fresh plain-TCP stream. */
function register(port, user, password) {
  return new Promise((resolve, reject) => {
    const socket = net.connect({ host: '127.0.0.1', port });
    let text = '';
    let sent = false;
    const timer = setTimeout(() => {
      socket.destroy();
      reject(new Error(`registering ${user}: no answer; got ${text.slice(-300)}`));
    }, 20_000);
    socket.setEncoding('utf8');
    socket.on('error', (e) => {
      clearTimeout(timer);
      reject(e);
    });
    socket.on('connect', () =>
      socket.write(
        "<?xml version='1.0'?><stream:stream xmlns='jabber:client' xmlns:stream='http://etherx.jabber.org/streams' to='localhost' version='1.0'>",
      ),
    );
    socket.on('data', (d) => {
      text += d;
      if (!sent && text.includes('</stream:features>')) {
        sent = true;
        socket.write(
          `<iq type='set' id='reg1'><query xmlns='jabber:iq:register'><username>${user}</username><password>${password}</password></query></iq>`,
        );
      }
      const answer = /<iq[^>]*id=['"]reg1['"][^>]*>/.exec(text);
      if (answer) {
        clearTimeout(timer);
        socket.end('</stream:stream>');
        // An account left over from an earlier run answers conflict: it is there all the same.
        if (/type=['"]result['"]/.test(answer[0]) || text.includes('<conflict')) resolve();
        else reject(new Error(`registering ${user}: ${text.slice(text.indexOf(answer[0]), text.indexOf(answer[0]) + 400)}`));
      }
    });
  });
}

async function registerAll(port) {
  let next = 1;
  const worker = async () => {
    while (next <= USERS) {
      const i = next++;
      await register(port, `tsung${i}`, `pw${i}`);
    }
  };
  await Promise.all(Array.from({ length: 10 }, worker));
}

function cpuSeconds(pid) {
  // utime + stime of the whole process group leader and its children (Erlang forks none here).
  try {
    const f = readFileSync(`/proc/${pid}/stat`, 'utf8').split(') ')[1].split(' ');
    return (Number(f[11]) + Number(f[12])) / 100;
  } catch {
    return NaN;
  }
}

/** "Name | ... | Mean | Count" rows of Tsung's report.html, keyed by name. */
function reportTables(html) {
  const rows = {};
  for (const row of html.match(/<tr[\s\S]*?<\/tr>/g) ?? []) {
    const cells = [...row.matchAll(/<t[dh][^>]*>([\s\S]*?)<\/t[dh]>/g)].map((m) => m[1].replace(/<[^>]+>/g, '').trim());
    if (cells.length >= 2 && !(cells[0] in rows)) rows[cells[0]] = cells.slice(1);
  }
  return rows;
}

async function runOne(kind) {
  const port = await freePort();
  const server = await kind.start(port);
  try {
    await registerAll(port);
    const logDir = mkdtempSync(join(tmpdir(), `tsung-${kind.name}-`));
    const config = join(logDir, 'scenario.xml');
    writeFileSync(
      config,
      readFileSync(join(here, 'hermod.xml'), 'utf8')
        .replace('port="15222"', `port="${port}"`)
        .replace('maxnumber="300"', `maxnumber="${USERS}"`)
        .replace(/name="(global_number|userid_max)" value="300"/g, `name="$1" value="${USERS}"`),
    );
    const cpu0 = cpuSeconds(server.pid);
    const run = spawnSync('tsung', ['-f', config, '-l', logDir, 'start'], { cwd: logDir, encoding: 'utf8', timeout: 180_000 });
    const cpu1 = cpuSeconds(server.pid);
    const runDir = readdirSync(logDir).map((d) => join(logDir, d)).find((d) => existsSync(join(d, 'tsung.log')));
    if (!runDir) throw new Error(`${kind.name}: tsung wrote no log\n${run.stdout}\n${run.stderr}`);
    spawnSync('/usr/lib/x86_64-linux-gnu/tsung/bin/tsung_stats.pl', ['--stats', 'tsung.log'], { cwd: runDir, encoding: 'utf8' });
    const log = readFileSync(join(runDir, 'tsung.log'), 'utf8');
    const last = (name) => {
      const lines = log.split('\n').filter((l) => l.startsWith(`stats: ${name} `));
      return lines.length ? lines[lines.length - 1].split(' ') : null;
    };
    const errors = {};
    for (const line of log.split('\n')) {
      const m = /^stats: (error_\S+) \S+ (\d+)/.exec(line);
      if (m) errors[m[1]] = Number(m[2]);
    }
    const report = existsSync(join(runDir, 'report.html')) ? reportTables(readFileSync(join(runDir, 'report.html'), 'utf8')) : {};
    const mean = (name) => report[name]?.[4] ?? '—';
    const count = (name) => report[name]?.[5] ?? '—';
    const result = {
      server: kind.name,
      users: last('users_count')?.[3] ?? '—',
      authenticate: mean('tr_authenticate'),
      roster_get: mean('tr_roster_get'),
      chats_sent: count('tr_chat_online'),
      latencies: count('xmpp_msg_latency'),
      latency_mean: mean('xmpp_msg_latency'),
      latency_worst10s: report.xmpp_msg_latency?.[0] ?? '—',
      errors: Object.entries(errors).map(([k, v]) => `${k}=${v}`).join(' ') || '0',
      server_cpu_s: (cpu1 - cpu0).toFixed(1),
      logs: runDir,
    };
    if (!values['keep-logs']) rmSync(logDir, { recursive: true, force: true });
    return result;
  } finally {
    await server.stop();
  }
}

const wanted = values.servers.split(',');
const results = [];
for (const kind of SERVERS.filter((s) => wanted.includes(s.name))) {
  const why = kind.unavailable();
  if (why) {
    console.log(`${kind.name}: skipped, ${why}`);
    continue;
  }
  console.error(`${kind.name}: registering ${USERS} accounts, then Tsung (≤60 s)…`);
  results.push(await runOne(kind));
}
const cols = ['server', 'users', 'authenticate', 'roster_get', 'chats_sent', 'latencies', 'latency_mean', 'latency_worst10s', 'errors', 'server_cpu_s'];
console.log(`| ${cols.join(' | ')} |`);
console.log(`| ${cols.map(() => '---').join(' | ')} |`);
for (const r of results) console.log(`| ${cols.map((c) => r[c]).join(' | ')} |`);
if (values['keep-logs']) for (const r of results) console.log(`${r.server}: ${r.logs}`);

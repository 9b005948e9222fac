/**
 * CPU time per stanza through the whole in-process path of `--workers 0` without sockets:
 * C2SStream.feed → WASM core → router → splice → the recipients' output queues → one gathered
 * write per stream per turn (into a transport that only counts bytes). The figures of
 * docs/router.md come from this file.
 *
 * Cases, each over memory storage and SQLite (default roster cache, and `rosterCache 0`):
 * - chat message to a full JID, to a bare JID (RFC 6121 §8.5.2.1.1 highest priority);
 * - a ping to the server (IQ cold path: parsed with ltx, answered by the ping module);
 * - a presence update fanned out to the sender's 20 available contacts and its own session.
 *
 *   npm run build && node dist/bench/core/router-path.js [--users 1000] [--contacts 20] [--stanzas 20000]
 *       [--stores sqlite,memory,sqlite-nocache] [--json]
 */
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { loadCore } from '../../src/core/parser.js';
import { createRouter } from '../../src/router/index.js';
import { createMemoryStorage } from '../../src/storage/memory.js';
import { openSqliteStorage } from '../../src/storage/sqlite.js';
import type { Storage } from '../../src/storage/types.js';
import { SaslProvider } from '../../src/stream/sasl/index.js';
import { DOMAIN, login, PER_TURN, ringName, seedRing, turn, type PathSession } from './c2s-path.js';
import { numArg, report, round, type Row } from './shard-common.js';

const users = numArg('users', 1000);
const contacts = numArg('contacts', 20);
const stanzas = numArg('stanzas', 20_000);
const name = ringName(users);

async function measure(label: string, storage: Storage, rows: Row[]): Promise<void> {
  const core = loadCore();
  const router = createRouter({ domain: DOMAIN, storage });
  const sasl = new SaslProvider({ users: storage.users, domain: DOMAIN });
  const sessions: PathSession[] = [];
  for (let i = 0; i < users; i++) {
    // Roster get first: an interested resource receives presence (RFC 6121 §2.1.3, §3.1.5).
    const after = `<iq type='set' id='b'><bind xmlns='urn:ietf:params:xml:ns:xmpp-bind'><resource>r</resource></bind></iq><iq type='get' id='r'><query xmlns='jabber:iq:roster'/></iq><presence/>`;
    sessions.push(await login({ core, router, sasl }, name(i), after));
  }
  await turn();
  await turn();
  for (const s of sessions) {
    if (!s.transport.text.includes('<jid>')) throw new Error(`session ${s.transport.text.slice(-200)} did not bind`);
    s.transport.keepText = false;
  }
  const body = 'x'.repeat(100);
  const cases: [string, (i: number) => string, number][] = [
    ['chat message → full JID', (i) => `<message to='${name(i + 1)}@${DOMAIN}/r' type='chat' id='m${i}'><body>${body}</body></message>`, 1],
    ['chat message → bare JID', (i) => `<message to='${name(i + 1)}@${DOMAIN}' type='chat' id='m${i}'><body>${body}</body></message>`, 1],
    ['ping → server (IQ cold path)', (i) => `<iq type='get' id='p${i}' to='${DOMAIN}'><ping xmlns='urn:xmpp:ping'/></iq>`, 1],
    [`presence update → ${contacts} contacts + self`, (i) => `<presence><show>away</show><status>s${i}</status></presence>`, contacts + 1],
  ];
  for (const [what, stanza, fanout] of cases) {
    // Warm-up pass (JIT, caches), then the measured one.
    for (const [pass, n] of [Math.min(10_000, stanzas), stanzas].entries()) {
      const before = sessions.reduce((a, s) => a + s.transport.bytes, 0);
      const cpu0 = process.cpuUsage();
      for (let i = 0; i < n; ) {
        for (let k = 0; k < PER_TURN && i < n; k++, i++) sessions[(i * 7) % users]!.stream.feed(Buffer.from(stanza(i)));
        await turn();
      }
      const cpu = process.cpuUsage(cpu0);
      if (pass === 0) continue;
      const written = sessions.reduce((a, s) => a + s.transport.bytes, 0) - before;
      const us = (cpu.user + cpu.system) / n;
      rows.push({ case: `${what}, ${label}`, 'CPU µs/stanza': round(us), 'CPU µs/delivery': round(us / fanout), 'bytes out/stanza': Math.round(written / n) });
    }
  }
  for (const s of sessions) s.stream.close();
}

const rows: Row[] = [];
const dirs: string[] = [];
const argv = process.argv.slice(2);
/** Which stores, in which order (a store measured first also pays the JIT's first compiles). */
const order = (argv.includes('--stores') ? argv[argv.indexOf('--stores') + 1]! : 'sqlite,memory,sqlite-nocache').split(',');
try {
  for (const store of order) {
    if (store === 'memory') {
      const memory = createMemoryStorage({ iterations: 16 });
      seedRing(memory, users, contacts);
      await measure('memory', memory, rows);
      continue;
    }
    if (store !== 'sqlite' && store !== 'sqlite-nocache') throw new Error(`--stores: unknown store '${store}'`);
    const dataDir = mkdtempSync(join(tmpdir(), 'hermod-router-path-'));
    dirs.push(dataDir);
    const sqlite = openSqliteStorage({ dataDir, iterations: 16, ...(store === 'sqlite-nocache' ? { rosterCache: 0 } : {}) });
    seedRing(sqlite, users, contacts);
    await measure(store === 'sqlite-nocache' ? 'SQLite, rosterCache 0' : 'SQLite', sqlite, rows);
    sqlite.close();
  }
} finally {
  for (const d of dirs) rmSync(d, { recursive: true, force: true });
}
report(`router path, ${users} bound sessions, ${contacts} contacts each, ${stanzas} stanzas per case`, rows);

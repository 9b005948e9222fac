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
import { C2SStream, type C2SOptions, type StreamTransport } from '../../src/stream/c2s.js';
import { SaslProvider } from '../../src/stream/sasl/index.js';
import { numArg, report, round, type Row } from './shard-common.js';

const users = numArg('users', 1000);
const contacts = numArg('contacts', 20);
const stanzas = numArg('stanzas', 20_000);
const DOMAIN = 'localhost';
const PASSWORD = 'bench';
/** Stanzas fed per event-loop turn: the streams flush once per turn, as over real sockets. */
const PER_TURN = 100;

const HEADER = `<?xml version='1.0'?><stream:stream xmlns='jabber:client' xmlns:stream='http://etherx.jabber.org/streams' to='${DOMAIN}' version='1.0'>`;
const OPTIONS: C2SOptions = {
  domain: DOMAIN,
  tls: 'optional',
  registration: 'closed',
  preAuthMaxStanzaBytes: 65536,
  maxStanzaBytes: 262144,
  saslMaxAttempts: 3,
};

/** Writes go nowhere; the bytes are counted so the work cannot be skipped. */
class CountingTransport implements StreamTransport {
  readonly secure = true;
  readonly canStartTls = false;
  bytes = 0;
  text = '';
  keepText = true;
  write(chunks: (string | Uint8Array)[]): void {
    for (const c of chunks) {
      this.bytes += typeof c === 'string' ? c.length : c.byteLength;
      if (this.keepText) this.text += typeof c === 'string' ? c : Buffer.from(c).toString('utf8');
    }
  }
  startTls(): void {}
  end(): void {}
}

const turn = (): Promise<void> => new Promise((r) => setImmediate(r));
const name = (i: number): string => `u${((i % users) + users) % users}`;

/** Contacts are ring neighbours (i±1 … i±contacts/2), subscribed both ways. */
function seed(storage: Storage): void {
  for (let i = 0; i < users; i++) {
    storage.users.create(`${name(i)}@${DOMAIN}`, PASSWORD);
    for (let d = 1; d <= contacts / 2; d++) {
      for (const j of [i - d, i + d]) {
        storage.rosters.set(`${name(i)}@${DOMAIN}`, {
          jid: `${name(j)}@${DOMAIN}`,
          name: null,
          groups: [],
          subscription: 'both',
          ask: null,
          approved: false,
        });
      }
    }
  }
}

async function measure(label: string, storage: Storage, rows: Row[]): Promise<void> {
  const core = loadCore();
  const router = createRouter({ domain: DOMAIN, storage });
  const sasl = new SaslProvider({ users: storage.users, domain: DOMAIN });
  const sessions: { stream: C2SStream; transport: CountingTransport }[] = [];
  for (let i = 0; i < users; i++) {
    const transport = new CountingTransport();
    const stream = new C2SStream(transport, OPTIONS, { core, router, sasl });
    const feed = (xml: string) => stream.feed(Buffer.from(xml));
    feed(HEADER);
    feed(`<auth xmlns='urn:ietf:params:xml:ns:xmpp-sasl' mechanism='PLAIN'>${Buffer.from(`\0${name(i)}\0${PASSWORD}`).toString('base64')}</auth>`);
    while (!transport.text.includes('<success')) await turn();
    feed(HEADER);
    // Roster get first: an interested resource receives presence (RFC 6121 §2.1.3, §3.1.5).
    feed(`<iq type='set' id='b'><bind xmlns='urn:ietf:params:xml:ns:xmpp-bind'><resource>r</resource></bind></iq><iq type='get' id='r'><query xmlns='jabber:iq:roster'/></iq><presence/>`);
    sessions.push({ stream, transport });
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
      seed(memory);
      await measure('memory', memory, rows);
      continue;
    }
    if (store !== 'sqlite' && store !== 'sqlite-nocache') throw new Error(`--stores: unknown store '${store}'`);
    const dataDir = mkdtempSync(join(tmpdir(), 'hermod-router-path-'));
    dirs.push(dataDir);
    const sqlite = openSqliteStorage({ dataDir, iterations: 16, ...(store === 'sqlite-nocache' ? { rosterCache: 0 } : {}) });
    seed(sqlite);
    await measure(store === 'sqlite-nocache' ? 'SQLite, rosterCache 0' : 'SQLite', sqlite, rows);
    sqlite.close();
  }
} finally {
  for (const d of dirs) rmSync(d, { recursive: true, force: true });
}
report(`router path, ${users} bound sessions, ${contacts} contacts each, ${stanzas} stanzas per case`, rows);

/**
 * What XEP-0163 PEP costs on the in-process path of `--workers 0` (C2SStream → WASM core →
 * router → modules → the recipients' output queues), CPU per stanza:
 * - a presence update carrying unchanged XEP-0115 caps, fanned out to the sender's contacts,
 *   on two servers, without and with the pep module, measured in alternating pairs: the price
 *   of the 'presence/available' hook;
 * - a PEP publish (XEP-0084 avatar metadata) whose event goes to every contact and own resource
 *   that announced +notify (XEP-0163 §4.2), per publish and per event delivered.
 * Every session announces caps and the server resolves them through its disco#info query, as
 * with real clients.
 *
 *   npm run build && node dist/bench/core/pep.js [--users 200] [--contacts 20] [--stanzas 5000]
 *       [--pairs 4] [--stores memory,sqlite] [--json]
 */
import { createHash } from 'node:crypto';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { loadCore } from '../../src/core/parser.js';
import { defaultModules } from '../../src/modules/index.js';
import { createRouter } from '../../src/router/index.js';
import { createMemoryStorage } from '../../src/storage/memory.js';
import { openSqliteStorage } from '../../src/storage/sqlite.js';
import type { Storage } from '../../src/storage/types.js';
import { SaslProvider } from '../../src/stream/sasl/index.js';
import { DOMAIN, login, PER_TURN, ringName, seedRing, turn, type PathSession } from './c2s-path.js';
import { numArg, report, round, type Row } from './shard-common.js';

const users = numArg('users', 200);
const contacts = numArg('contacts', 20);
const stanzas = numArg('stanzas', 5000);
const pairs = numArg('pairs', 4);
const NODE = 'urn:xmpp:avatar:metadata';
const name = ringName(users);

/** One client's XEP-0115 caps: a real hash over its identity and +notify feature. */
const IDENTITY = `<identity category='client' type='pc' name='Bench'/>`;
const FEATURES = ['http://jabber.org/protocol/disco#info', `${NODE}+notify`];
const VER = createHash('sha1').update(`client/pc//Bench<${FEATURES.sort().map((f) => `${f}<`).join('')}`).digest('base64');
const CAPS = `<c xmlns='http://jabber.org/protocol/caps' hash='sha-1' node='https://example.org/bench' ver='${VER}'/>`;

async function connect(storage: Storage, withPep: boolean): Promise<PathSession[]> {
  const core = loadCore();
  const modules = defaultModules().filter((m) => withPep || m.name !== 'pep');
  const router = createRouter({ domain: DOMAIN, storage, modules });
  const sasl = new SaslProvider({ users: storage.users, domain: DOMAIN });
  const sessions: PathSession[] = [];
  for (let i = 0; i < users; i++) {
    const after = `<iq type='set' id='b'><bind xmlns='urn:ietf:params:xml:ns:xmpp-bind'><resource>r</resource></bind></iq><iq type='get' id='r'><query xmlns='jabber:iq:roster'/></iq><presence>${CAPS}</presence>`;
    sessions.push(await login({ core, router, sasl }, name(i), after));
  }
  // Answer the server's caps queries (XEP-0115 §6.2) until none is left unanswered.
  const answered = new Set<string>();
  for (let round = 0; round < 20; round++) {
    await turn();
    let asked = 0;
    for (const s of sessions) {
      for (const m of s.transport.text.matchAll(/id='(pep-caps-\d+)'/g)) {
        if (answered.has(m[1]!)) continue;
        answered.add(m[1]!);
        asked++;
        const features = FEATURES.map((f) => `<feature var='${f}'/>`).join('');
        s.feed(`<iq type='result' id='${m[1]}' to='${DOMAIN}'><query xmlns='http://jabber.org/protocol/disco#info'>${IDENTITY}${features}</query></iq>`);
      }
    }
    if (asked === 0 && round > 0) break;
  }
  for (const s of sessions) s.transport.keepText = false;
  return sessions;
}

async function run(sessions: PathSession[], label: string, stanza: (i: number) => string, fanout: number, rows: Row[]): Promise<void> {
  for (const [pass, n] of [Math.min(2000, stanzas), stanzas].entries()) {
    const before = sessions.reduce((a, s) => a + s.transport.bytes, 0);
    const cpu0 = process.cpuUsage();
    for (let i = 0; i < n; ) {
      for (let k = 0; k < PER_TURN && i < n; k++, i++) sessions[(i * 7) % users]!.feed(stanza(i));
      await turn();
    }
    const cpu = process.cpuUsage(cpu0);
    if (pass === 0) continue;
    const us = (cpu.user + cpu.system) / n;
    const written = sessions.reduce((a, s) => a + s.transport.bytes, 0) - before;
    rows.push({ case: label, 'CPU µs/stanza': round(us), 'CPU µs/delivery': round(us / fanout), 'bytes out/stanza': Math.round(written / n) });
  }
}

async function measure(store: string, open: () => Storage, rows: Row[]): Promise<void> {
  const presence = (i: number) => `<presence><show>away</show><status>s${i}</status>${CAPS}</presence>`;
  // Side by side: two servers with the same accounts and sessions, without and with the pep
  // module, measured in turns (pairs), so that load on the box and the JIT hit both alike.
  const setups: { withPep: boolean; storage: Storage; sessions: PathSession[] }[] = [];
  for (const withPep of [false, true]) {
    const storage = open();
    seedRing(storage, users, contacts);
    setups.push({ withPep, storage, sessions: await connect(storage, withPep) });
  }
  for (let pair = 0; pair < pairs; pair++) {
    for (const { withPep, sessions } of setups) {
      await run(sessions, `presence+caps → ${contacts} contacts + self, pep ${withPep ? 'on' : 'off'}, ${store}`, presence, contacts + 1, rows);
    }
  }
  const publish = (i: number) =>
    `<iq type='set' id='p${i}'><pubsub xmlns='http://jabber.org/protocol/pubsub'><publish node='${NODE}'><item id='a${i}'>` +
    `<metadata xmlns='${NODE}'><info id='a${i}' bytes='1234' type='image/png' width='64' height='64'/></metadata></item></publish></pubsub></iq>`;
  // One result to the publisher plus an event to each contact and to the publisher's resource.
  await run(setups[1]!.sessions, `PEP publish → ${contacts} contacts + self (+notify), ${store}`, publish, contacts + 2, rows);
  for (const { storage, sessions } of setups) {
    for (const s of sessions) s.stream.close();
    storage.close();
  }
}

const rows: Row[] = [];
const dirs: string[] = [];
const argv = process.argv.slice(2);
const order = (argv.includes('--stores') ? argv[argv.indexOf('--stores') + 1]! : 'memory,sqlite').split(',');
try {
  for (const store of order) {
    if (store === 'memory') await measure('memory', () => createMemoryStorage({ iterations: 1 }), rows);
    else if (store === 'sqlite') {
      await measure('sqlite', () => {
        const dir = mkdtempSync(join(tmpdir(), 'hermod-bench-pep-'));
        dirs.push(dir);
        return openSqliteStorage({ dataDir: dir, iterations: 1 });
      }, rows);
    } else throw new Error(`unknown store ${store}`);
  }
} finally {
  for (const d of dirs) rmSync(d, { recursive: true, force: true });
}
report(`PEP path, ${users} bound sessions with caps, ${contacts} contacts each, ${stanzas} stanzas per case`, rows);

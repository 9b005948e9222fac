/**
 * CPU time per XEP-0045 groupchat message through the whole in-process path of `--workers 0`
 * without sockets (C2SStream.feed → WASM core → router → 'stanza/remote' → ltx parse → room →
 * one reflected copy per occupant → gathered writes), for rooms of 10 and 100 occupants; a chat
 * message to one full JID over the same sessions is measured in the same run as the yardstick.
 * A second room of the same occupants archives (XEP-0313 §5: one SQLite archive row per message
 * through the archive's writer thread, whose CPU process.cpuUsage() counts; the queue is flushed
 * before each reading), measured beside the one that does not.
 *
 *   npm run build && node dist/bench/core/muc.js [--stanzas 5000] [--sizes 10,100] [--json]
 */
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { loadCore } from '../../src/core/parser.js';
import { muc } from '../../src/muc/service.js';
import { createRouter } from '../../src/router/index.js';
import { createMemoryStorage } from '../../src/storage/memory.js';
import { openSqliteStorage } from '../../src/storage/sqlite.js';
import { SaslProvider } from '../../src/stream/sasl/index.js';
import { DOMAIN, login, PASSWORD, PER_TURN, turn, type PathSession } from './c2s-path.js';
import { numArg, report, round, type Row } from './shard-common.js';

const stanzas = numArg('stanzas', 5000);
const argv = process.argv.slice(2);
const sizes = (argv.includes('--sizes') ? argv[argv.indexOf('--sizes') + 1]! : '10,100').split(',').map(Number);
const ROOM = `bench@conference.${DOMAIN}`;
const ARCHIVING = `archive@conference.${DOMAIN}`;

async function measure(occupants: number, rows: Row[]): Promise<void> {
  // Memory storage as before, but for the archive: SQLite with its writer thread, as served.
  const dir = mkdtempSync(join(tmpdir(), 'hermod-bench-muc-'));
  const sqlite = openSqliteStorage({ dataDir: dir, iterations: 1 });
  const storage = { ...createMemoryStorage({ iterations: 16 }), mam: sqlite.mam };
  const core = loadCore();
  const router = createRouter({ domain: DOMAIN, storage });
  const settings = { maxRooms: 10, maxOccupants: occupants, historySize: 20, maxMessageBytes: 16 * 1024, archive: true, archiveDefault: false };
  muc({ domain: `conference.${DOMAIN}`, ...settings }).install(router);
  const sasl = new SaslProvider({ users: storage.users, domain: DOMAIN });
  const sessions: PathSession[] = [];
  for (let i = 0; i < occupants; i++) {
    const user = `m${i}`;
    storage.users.create(`${user}@${DOMAIN}`, PASSWORD);
    // The first joiner creates the room; a join without the MUC <x/> gets an instant room (§10.1.1).
    const join = (room: string) =>
      i === 0 ? `<presence to='${room}/n${i}'/>` : `<presence to='${room}/n${i}'><x xmlns='http://jabber.org/protocol/muc'><history maxstanzas='0'/></x></presence>`;
    // The second room's creator turns archiving on (muc#roomconfig_enablearchiving).
    const archiveOn =
      i === 0
        ? `<iq type='set' id='a' to='${ARCHIVING}'><query xmlns='http://jabber.org/protocol/muc#owner'><x xmlns='jabber:x:data' type='submit'>` +
          `<field var='muc#roomconfig_enablearchiving'><value>1</value></field></x></query></iq>`
        : '';
    const after = `<iq type='set' id='b'><bind xmlns='urn:ietf:params:xml:ns:xmpp-bind'><resource>r</resource></bind></iq><presence/>${join(ROOM)}${join(ARCHIVING)}${archiveOn}`;
    sessions.push(await login({ core, router, sasl }, user, after));
    await turn();
  }
  await turn();
  for (const s of sessions) {
    if (!s.transport.text.includes("status code='110'")) throw new Error(`session did not join: ${s.transport.text.slice(-300)}`);
    s.transport.keepText = false;
  }
  const body = 'x'.repeat(100);
  const cases: [string, (i: number) => string, number][] = [
    [`groupchat → room of ${occupants}`, (i) => `<message to='${ROOM}' type='groupchat' id='g${i}'><body>${body}</body></message>`, occupants],
    [`groupchat → archiving room of ${occupants}`, (i) => `<message to='${ARCHIVING}' type='groupchat' id='a${i}'><body>${body}</body></message>`, occupants],
    [`chat → full JID (same ${occupants} sessions)`, (i) => `<message to='m${(i + 1) % occupants}@${DOMAIN}/r' type='chat' id='c${i}'><body>${body}</body></message>`, 1],
  ];
  for (const [what, stanza, fanout] of cases) {
    // Warm-up pass (JIT), then the measured one.
    for (const [pass, n] of [Math.min(2000, stanzas), stanzas].entries()) {
      const before = sessions.reduce((a, s) => a + s.transport.bytes, 0);
      const cpu0 = process.cpuUsage();
      for (let i = 0; i < n; ) {
        for (let k = 0; k < PER_TURN && i < n; k++, i++) sessions[(i * 7) % occupants]!.stream.feed(Buffer.from(stanza(i)));
        await turn();
      }
      storage.mam.flush();
      const cpu = process.cpuUsage(cpu0);
      if (pass === 0) continue;
      const written = sessions.reduce((a, s) => a + s.transport.bytes, 0) - before;
      const us = (cpu.user + cpu.system) / n;
      rows.push({ case: what, 'CPU µs/stanza': round(us), 'CPU µs/delivery': round(us / fanout), 'bytes out/stanza': Math.round(written / n) });
    }
  }
  // Before the sessions end: the temporary room's archive goes with its last occupant.
  const archived = sqlite.mam.query(ARCHIVING, { max: 0 }).count;
  if (archived !== Math.min(2000, stanzas) + stanzas) throw new Error(`${archived} messages archived`);
  for (const s of sessions) s.stream.close();
  sqlite.close();
  rmSync(dir, { recursive: true, force: true });
}

const rows: Row[] = [];
for (const n of sizes) await measure(n, rows);
report(`XEP-0045 groupchat path, ${stanzas} stanzas per case, memory storage`, rows);

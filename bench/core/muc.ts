/**
 * CPU time per XEP-0045 groupchat message through the whole in-process path of `--workers 0`
 * without sockets (C2SStream.feed → WASM core → router → 'stanza/remote' → ltx parse → room →
 * one reflected copy per occupant → gathered writes), for rooms of 10 and 100 occupants; a chat
 * message to one full JID over the same sessions is measured in the same run as the yardstick.
 *
 *   npm run build && node dist/bench/core/muc.js [--stanzas 5000] [--sizes 10,100] [--json]
 */
import { loadCore } from '../../src/core/parser.js';
import { muc } from '../../src/muc/service.js';
import { createRouter } from '../../src/router/index.js';
import { createMemoryStorage } from '../../src/storage/memory.js';
import { SaslProvider } from '../../src/stream/sasl/index.js';
import { DOMAIN, login, PASSWORD, PER_TURN, turn, type PathSession } from './c2s-path.js';
import { numArg, report, round, type Row } from './shard-common.js';

const stanzas = numArg('stanzas', 5000);
const argv = process.argv.slice(2);
const sizes = (argv.includes('--sizes') ? argv[argv.indexOf('--sizes') + 1]! : '10,100').split(',').map(Number);
const ROOM = `bench@conference.${DOMAIN}`;

async function measure(occupants: number, rows: Row[]): Promise<void> {
  const storage = createMemoryStorage({ iterations: 16 });
  const core = loadCore();
  const router = createRouter({ domain: DOMAIN, storage });
  muc({ domain: `conference.${DOMAIN}`, maxRooms: 10, maxOccupants: occupants, historySize: 20, maxMessageBytes: 16 * 1024 }).install(router);
  const sasl = new SaslProvider({ users: storage.users, domain: DOMAIN });
  const sessions: PathSession[] = [];
  for (let i = 0; i < occupants; i++) {
    const user = `m${i}`;
    storage.users.create(`${user}@${DOMAIN}`, PASSWORD);
    // The first joiner creates the room; a join without the MUC <x/> gets an instant room (§10.1.1).
    const join = i === 0 ? `<presence to='${ROOM}/n${i}'/>` : `<presence to='${ROOM}/n${i}'><x xmlns='http://jabber.org/protocol/muc'><history maxstanzas='0'/></x></presence>`;
    const after = `<iq type='set' id='b'><bind xmlns='urn:ietf:params:xml:ns:xmpp-bind'><resource>r</resource></bind></iq><presence/>${join}`;
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
      const cpu = process.cpuUsage(cpu0);
      if (pass === 0) continue;
      const written = sessions.reduce((a, s) => a + s.transport.bytes, 0) - before;
      const us = (cpu.user + cpu.system) / n;
      rows.push({ case: what, 'CPU µs/stanza': round(us), 'CPU µs/delivery': round(us / fanout), 'bytes out/stanza': Math.round(written / n) });
    }
  }
  for (const s of sessions) s.stream.close();
}

const rows: Row[] = [];
for (const n of sizes) await measure(n, rows);
report(`XEP-0045 groupchat path, ${stanzas} stanzas per case, memory storage`, rows);

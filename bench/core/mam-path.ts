/**
 * What XEP-0313 archiving costs a routed chat message, in one process: the real WASM core and
 * router, SQLite storage, `--users` bound sessions, each message from a random user to another
 * one's full JID; the same traffic with `mam.default` never, roster (no roster entries: nothing archived, the roster asked per message) and always, rounds alternating. The
 * time includes writing the archive (closing the storage waits for its writer thread), and
 * splits CPU (process.cpuUsage: user + system, every thread of the process) from wall time.
 *
 *   node dist/bench/core/mam-path.js [--users 1000] [--messages 50000] [--rounds 2] [--turn 200] [--json]
 */
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { DEFAULT_LIMITS, type StanzaView } from '../../src/core/api.js';
import { loadCore } from '../../src/core/parser.js';
import { Jid } from '../../src/jid.js';
import type { MamSettings } from '../../src/modules/mam.js';
import { createRouter } from '../../src/router/index.js';
import type { ClientSession } from '../../src/router/types.js';
import { openSqliteStorage } from '../../src/storage/sqlite.js';
import { numArg, report, round, type Row } from './shard-common.js';

const users = numArg('users', 1000);
const messages = numArg('messages', 50_000);
const rounds = numArg('rounds', 2);
/** Messages routed per event-loop turn. */
const TURN = numArg('turn', 200);
const HEADER = "<stream:stream xmlns='jabber:client' xmlns:stream='http://etherx.jabber.org/streams' to='localhost' version='1.0'>";

class Sink implements ClientSession {
  static next = 1;
  readonly id = Sink.next++;
  jid: Jid | null = null;
  bytes = 0;
  constructor(readonly account: Jid) {}
  send(data: Uint8Array | string): void {
    this.bytes += data.length;
  }
  close(): void {}
}

const core = await loadCore();

async function measure(policy: MamSettings['default']): Promise<Row> {
  const dataDir = mkdtempSync(join(tmpdir(), 'hermod-mam-path-'));
  const storage = openSqliteStorage({ dataDir, iterations: 1 });
  try {
    for (let u = 0; u < users; u++) storage.users.create(`u${u}@localhost`, 'pw');
    const router = createRouter({ domain: 'localhost', storage, mam: { default: policy, maxAge: 0, maxPerUser: 0, purgeInterval: 0 } });
    const sessions: Sink[] = [];
    for (let u = 0; u < users; u++) {
      const s = new Sink(Jid.parse(`u${u}@localhost`));
      s.jid = router.bind(s, 'r');
      sessions.push(s);
    }
    let current: Sink = sessions[0]!;
    const parser = core.createParser(
      {
        onStreamOpen() {},
        onStanza: (view: StanzaView) => router.route(current, view),
        onStreamClose() {},
        onError(e) {
          throw new Error(`${e.condition}: ${e.message}`);
        },
      },
      DEFAULT_LIMITS,
    );
    parser.feed(Buffer.from(HEADER));
    // Pre-built stanzas, so the loop measures routing rather than string building.
    const body = 'x'.repeat(100);
    const plan = Array.from({ length: messages }, (_, i) => {
      const from = (i * 7919) % users;
      const to = (from + 1 + ((i * 104729) % (users - 1))) % users;
      return { from, bytes: Buffer.from(`<message to='u${to}@localhost/r' type='chat' id='m${i}'><body>${body}</body></message>`) };
    });
    const cpu0 = process.cpuUsage();
    const wall0 = performance.now();
    for (let i = 0; i < plan.length; i++) {
      const { from, bytes } = plan[i]!;
      current = sessions[from]!;
      parser.feed(bytes);
      // Event-loop turns, as a server has between socket reads (the archive's timers run there).
      if (i % TURN === TURN - 1) await new Promise((r) => setImmediate(r));
    }
    // Closing waits for the archive writer to finish: its work is part of the cost.
    storage.close();
    const cpu = process.cpuUsage(cpu0);
    const wallUs = (performance.now() - wall0) * 1000;
    const check = openSqliteStorage({ dataDir, iterations: 1 });
    const archived = check.mam.query('u0@localhost', { max: 0 }).count ?? 'over 10000';
    check.close();
    return {
      case: `mam.default=${policy}`,
      'CPU µs/msg': round((cpu.user + cpu.system) / messages),
      'wall µs/msg': round(wallUs / messages),
      'u0 archive': archived,
    };
  } finally {
    storage.close();
    rmSync(dataDir, { recursive: true, force: true });
  }
}

const rows: Row[] = [];
for (let r = 0; r < rounds; r++) {
  for (const policy of r % 2 === 0 ? (['never', 'roster', 'always'] as const) : (['always', 'roster', 'never'] as const)) {
    rows.push({ ...(await measure(policy)), case: `mam.default=${policy} (round ${r + 1})` });
  }
}
report(`${messages} chat messages among ${users} bound sessions, SQLite storage, one thread`, rows);

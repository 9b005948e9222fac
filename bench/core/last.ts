/**
 * What XEP-0012 last activity costs at logout: CPU per session cycle (bind, available presence,
 * unavailable presence with a status, unbind) on the router with the real WASM core, SQLite or memory
 * storage, on two routers over the same kind of store, without and with the `last` module, measured in
 * alternating pairs. The difference is the module's price per logout: the 'presence/unavailable'
 * and 'session/unbound' hooks and the one SQLite write of the record.
 *
 *   npm run build && node dist/bench/core/last.js [--users 1000] [--contacts 20] [--pairs 4]
 *       [--stores sqlite,memory] [--json]
 */
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { StanzaView } from '../../src/core/api.js';
import { loadCore } from '../../src/core/parser.js';
import { Jid } from '../../src/jid.js';
import { defaultModules } from '../../src/modules/index.js';
import { createRouter } from '../../src/router/index.js';
import type { ClientSession } from '../../src/router/types.js';
import { createMemoryStorage } from '../../src/storage/memory.js';
import { openSqliteStorage } from '../../src/storage/sqlite.js';
import { DOMAIN, HEADER, ringName, seedRing } from './c2s-path.js';
import { numArg, report, round, type Row } from './shard-common.js';

const users = numArg('users', 1000);
const contacts = numArg('contacts', 20);
const pairs = numArg('pairs', 4);
const name = ringName(users);

type Cycle = () => void;

/** A router on its own store (SQLite in `dir`, or memory); one logout cycle per account, in turn. */
function server(dir: string | null, withLast: boolean): { cycle: Cycle; close(): void } {
  const storage = dir === null ? createMemoryStorage({ iterations: 16 }) : openSqliteStorage({ dataDir: dir, iterations: 16 });
  seedRing(storage, users, contacts);
  const modules = defaultModules().filter((m) => withLast || m.name !== 'last');
  const router = createRouter({ domain: DOMAIN, storage, modules });
  const core = loadCore();
  let current: ClientSession | null = null;
  const parser = core.createParser({
    onStreamOpen() {},
    onStanza: (view: StanzaView) => router.route(current!, view),
    onStreamClose() {},
    onError(e) {
      throw new Error(`${e.condition}: ${e.message}`);
    },
  });
  parser.feed(Buffer.from(HEADER));
  const available = Buffer.from('<presence/>');
  const unavailable = Buffer.from("<presence type='unavailable'><status>Gone home</status></presence>");
  let i = 0;
  let id = 1;
  return {
    cycle() {
      const account = Jid.parse(`${name(i++ % users)}@${DOMAIN}`);
      const s: ClientSession = { id: id++, account, jid: null, send() {}, close() {} };
      current = s;
      router.bind(s, 'r');
      parser.feed(available);
      parser.feed(unavailable);
      router.unbind(s);
    },
    close: () => storage.close(),
  };
}

function cpuPerCycle(cycle: Cycle, n: number): number {
  const cpu0 = process.cpuUsage();
  for (let k = 0; k < n; k++) cycle();
  const cpu = process.cpuUsage(cpu0);
  return (cpu.user + cpu.system) / n;
}

const argv = process.argv.slice(2);
const stores = (argv.includes('--stores') ? argv[argv.indexOf('--stores') + 1]! : 'sqlite,memory').split(',');
const dirs: string[] = [];
try {
  const rows: Row[] = [];
  for (const store of stores) {
    if (store !== 'sqlite' && store !== 'memory') throw new Error(`--stores: unknown store '${store}'`);
    const dir = () => (store === 'memory' ? null : dirs[dirs.push(mkdtempSync(join(tmpdir(), 'hermod-last-bench-'))) - 1]!);
    const without = server(dir(), false);
    const withLast = server(dir(), true);
    // Warm-up (JIT, page cache), then alternating pairs so that load on the box hits both.
    cpuPerCycle(without.cycle, users);
    cpuPerCycle(withLast.cycle, users);
    for (let p = 0; p < pairs; p++) {
      const a = cpuPerCycle(without.cycle, users);
      const b = cpuPerCycle(withLast.cycle, users);
      rows.push({ case: `${store}, pair ${p + 1}`, 'without last µs/cycle': round(a), 'with last µs/cycle': round(b), 'last µs/logout': round(b - a), ratio: round(b / a) });
    }
    without.close();
    withLast.close();
  }
  report(`logout cycle (bind, presence, unavailable + status, unbind), ${users} accounts, ${contacts} contacts`, rows);
} finally {
  for (const d of dirs) rmSync(d, { recursive: true, force: true });
}

/**
 * The two caches of the fast path, each against its own switch turned off, in one run:
 * - a presence broadcast's roster read (20 items) from SQLite with `rosterCache: 0` and from
 *   the cache (src/storage/roster-cache.ts): list() copies, peek() (what presence uses) does not;
 * - a SASL PLAIN verification (4096 PBKDF2 iterations) with `plainCacheSize: 0` and with
 *   remembered logins (src/stream/sasl/plain-cache.ts), the same account logging in again.
 *
 *   node dist/bench/core/fast-path.js [--owners 1000] [--items 20] [--logins 200] [--json]
 */
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { startExchange, type SaslContext } from '../../src/stream/sasl/index.js';
import { openSqliteStorage } from '../../src/storage/sqlite.js';
import { nowNs, report, round, type Row } from './shard-common.js';

function arg(name: string, fallback: number): number {
  const argv = process.argv.slice(2);
  const i = argv.indexOf(`--${name}`);
  return i >= 0 ? Number(argv[i + 1]) : fallback;
}

const owners = arg('owners', 1000);
const items = arg('items', 20);
const logins = arg('logins', 200);
const dataDir = mkdtempSync(join(tmpdir(), 'hermod-fastpath-'));
const rows: Row[] = [];

try {
  const setup = openSqliteStorage({ dataDir, iterations: 4096 });
  for (let o = 0; o < owners; o++) {
    for (let c = 0; c < items; c++) {
      setup.rosters.set(`u${o}@localhost`, {
        jid: `u${(o + c + 1) % owners}@localhost`,
        name: null,
        groups: ['Friends'],
        subscription: 'both',
        ask: null,
        approved: false,
      });
    }
  }
  setup.users.create('alice@localhost', 'secret');
  setup.close();

  for (const rosterCache of [0, 50_000]) {
    const s = openSqliteStorage({ dataDir, rosterCache });
    for (let o = 0; o < owners; o++) s.rosters.list(`u${o}@localhost`); // warm up (fills the cache)
    const rounds = 20;
    const t0 = nowNs();
    let n = 0;
    for (let r = 0; r < rounds; r++) for (let o = 0; o < owners; o++, n++) s.rosters.list(`u${(o * 7919) % owners}@localhost`);
    const us = Number(nowNs() - t0) / 1000 / n;
    rows.push({ case: `roster list (${items} items), ${rosterCache ? 'cached' : 'SQLite (rosterCache 0)'}`, 'µs/op': round(us), 'ops/s': Math.round(1e6 / us) });
    if (rosterCache) {
      const t1 = nowNs();
      for (let r = 0; r < rounds; r++) for (let o = 0; o < owners; o++) s.rosters.peek!(`u${(o * 7919) % owners}@localhost`);
      const peekUs = Number(nowNs() - t1) / 1000 / n;
      rows.push({ case: `roster peek (${items} items, no copy), cached`, 'µs/op': round(peekUs), 'ops/s': Math.round(1e6 / peekUs) });
    }
    s.close();
  }

  const message = Buffer.from('\u0000alice\u0000secret');
  for (const plainCacheSize of [0, 10_000]) {
    const s = openSqliteStorage({ dataDir });
    const context: SaslContext = { domain: 'localhost', users: s.users, plainCacheSize };
    await startExchange('PLAIN', context).step(message); // a first login (remembered when on)
    const cpu0 = process.cpuUsage();
    const t0 = nowNs();
    for (let i = 0; i < logins; i++) {
      const step = await startExchange('PLAIN', context).step(message);
      if (!step.done) throw new Error('login failed');
    }
    const us = Number(nowNs() - t0) / 1000 / logins;
    const cpu = process.cpuUsage(cpu0);
    rows.push({
      case: `PLAIN verify, ${plainCacheSize ? 'remembered login' : 'PBKDF2 (plainCacheSize 0)'}`,
      'µs/op': round(us),
      'ops/s': Math.round(1e6 / us),
      'CPU µs/op': round((cpu.user + cpu.system) / logins),
    });
    s.close();
  }
} finally {
  rmSync(dataDir, { recursive: true, force: true });
}
report('fast path caches', rows);

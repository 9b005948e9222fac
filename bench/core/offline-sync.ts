/**
 * What `synchronous: 'FULL'` costs over the default NORMAL (WAL mode) when the server stores an
 * offline message (one IMMEDIATE transaction per message), side by side in one run, rounds
 * alternating so that disk and load changes hit both alike. The figure of docs/storage.md
 * ("Durability") comes from this file; it depends on the disk's fsync latency.
 *
 *   npm run build && node dist/bench/core/offline-sync.js [--messages 2000] [--rounds 3] [--dir PATH] [--json]
 *
 * --dir: where the database files go (default: the OS temporary directory, which may be a tmpfs
 * where fsync is free; point it at the data directory's disk to measure that disk).
 */
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { openSqliteStorage } from '../../src/storage/sqlite.js';
import { nowNs, numArg, report, round, type Row } from './shard-common.js';

const messages = numArg('messages', 2000);
const rounds = numArg('rounds', 3);
const argv = process.argv.slice(2);
const base = argv.includes('--dir') ? argv[argv.indexOf('--dir') + 1]! : tmpdir();
const stanza = `<message to='bob@localhost' from='alice@localhost/r' type='chat' id='x'><body>${'x'.repeat(100)}</body></message>`;

const totals: Record<'NORMAL' | 'FULL', { us: number; cpuUs: number; n: number }> = {
  NORMAL: { us: 0, cpuUs: 0, n: 0 },
  FULL: { us: 0, cpuUs: 0, n: 0 },
};
for (let r = 0; r < rounds; r++) {
  for (const synchronous of ['NORMAL', 'FULL'] as const) {
    const dataDir = mkdtempSync(join(base, 'hermod-offline-sync-'));
    try {
      const s = openSqliteStorage({ dataDir, synchronous, offlineLimit: messages + 1 });
      const t0 = nowNs();
      const cpu0 = process.cpuUsage();
      for (let i = 0; i < messages; i++) {
        // One recipient per message: the queue-limit check reads only that account's rows.
        if (!s.offline.push(`u${i}@localhost`, stanza)) throw new Error('offline push refused');
      }
      const cpu = process.cpuUsage(cpu0);
      totals[synchronous].us += Number(nowNs() - t0) / 1000;
      totals[synchronous].cpuUs += cpu.user + cpu.system;
      totals[synchronous].n += messages;
      s.close();
    } finally {
      rmSync(dataDir, { recursive: true, force: true });
    }
  }
}
const rows: Row[] = (['NORMAL', 'FULL'] as const).map((mode) => {
  const t = totals[mode];
  return { case: `offline push, synchronous=${mode}`, 'µs/message': round(t.us / t.n), 'CPU µs/message': round(t.cpuUs / t.n) };
});
rows.push({ case: 'FULL / NORMAL (wall time)', 'µs/message': round(totals.FULL.us / totals.NORMAL.us) });
report(`offline message store, ${messages} messages × ${rounds} rounds, files under ${base}`, rows);

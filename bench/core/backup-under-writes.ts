/**
 * How the two online backup methods of docs/operations.md ("Backup") behave while another
 * connection keeps writing, as a busy server does: `VACUUM INTO` (one read transaction, a
 * snapshot) against the online backup API (better-sqlite3's db.backup(), what `.backup` in the
 * sqlite3 shell uses), which restarts its copy whenever another connection changes the source.
 *
 * A worker thread commits small inserts continuously for --busy seconds on its own connection
 * (WAL mode, as Hermod opens the file); the main thread backs up with each method while it
 * runs. Reported: the writer's commit rate and how long each backup took; a backup that only
 * finishes once the writer stops shows a time close to --busy.
 *
 *   npm run build && node dist/bench/core/backup-under-writes.js [--rows 200000] [--busy 5] [--json]
 */
import { mkdtempSync, rmSync, statSync } from 'node:fs';
import { createRequire } from 'node:module';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Worker } from 'node:worker_threads';
import Database from 'better-sqlite3';
import { nowNs, numArg, report, round, type Row } from './shard-common.js';

const rowsToSeed = numArg('rows', 200_000);
const busySeconds = numArg('busy', 5);
const dir = mkdtempSync(join(tmpdir(), 'hermod-backup-'));
const file = join(dir, 'hermod.sqlite');

/** The writer: its own connection, one small transaction after another until told to stop. */
const WRITER = `
const { parentPort, workerData } = require('node:worker_threads');
const Database = require(workerData.module);
const db = new Database(workerData.file);
db.pragma('journal_mode = WAL');
db.pragma('synchronous = NORMAL');
db.pragma('busy_timeout = 5000');
const insert = db.prepare('INSERT INTO offline (owner, stanza) VALUES (?, ?)');
const stopAt = Date.now() + workerData.busyMs;
let n = 0;
while (Date.now() < stopAt) { insert.run('u' + (n % 1000), '<message><body>busy</body></message>'); n++; }
db.close();
parentPort.postMessage(n);
`;

const rows: Row[] = [];
try {
  const db = new Database(file);
  db.pragma('journal_mode = WAL');
  db.exec('CREATE TABLE offline (id INTEGER PRIMARY KEY, owner TEXT NOT NULL, stanza TEXT NOT NULL)');
  const seed = db.prepare('INSERT INTO offline (owner, stanza) VALUES (?, ?)');
  db.transaction(() => {
    for (let i = 0; i < rowsToSeed; i++) seed.run(`u${i % 1000}`, `<message id='${i}'><body>${'x'.repeat(100)}</body></message>`);
  })();
  db.pragma('wal_checkpoint(TRUNCATE)');
  const sizeMiB = statSync(file).size / 2 ** 20;

  for (const method of ['VACUUM INTO', 'online backup API'] as const) {
    const target = join(dir, `copy-${method === 'VACUUM INTO' ? 'vacuum' : 'backup'}.sqlite`);
    const writer = new Worker(WRITER, {
      eval: true,
      workerData: { file, busyMs: busySeconds * 1000, module: createRequire(import.meta.url).resolve('better-sqlite3') },
    });
    const commits = new Promise<number>((resolve) => writer.once('message', resolve));
    // Let the writer get going first.
    await new Promise((r) => setTimeout(r, 200));
    const t0 = nowNs();
    if (method === 'VACUUM INTO') db.prepare('VACUUM INTO ?').run(target);
    else await db.backup(target);
    const seconds = Number(nowNs() - t0) / 1e9;
    const n = await commits;
    const copy = new Database(target, { readonly: true });
    const check = copy.pragma('integrity_check', { simple: true });
    copy.close();
    rows.push({
      case: method,
      'backup s': round(seconds, 3),
      'writer commits/s': Math.round(n / busySeconds),
      'database MiB': round(sizeMiB, 1),
      integrity: String(check),
    });
  }
  db.close();
} finally {
  rmSync(dir, { recursive: true, force: true });
}
report(`backup while another connection writes for ${busySeconds} s`, rows);

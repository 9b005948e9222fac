/**
 * The XEP-0313 archive in SQLite (tables `mam`, `mam_prefs`, schema 6; column `real_jid`, schema 8).
 *
 * User archives and room archives (XEP-0313 §5, src/muc/archive.ts) share the table: the owner
 * is the account's or the room's bare JID (rooms live on their own subdomain, so the two never
 * meet), and one writer thread, one retention pass and one set of statements serve both. A room
 * row's `with_full` is the sender's occupant JID and `real_jid` the sender's real JID; two
 * partial indexes over room rows only (real_jid IS NOT NULL: user rows never enter them, so the
 * user message path pays nothing) serve room queries filtered by sender, which otherwise read
 * the whole room (200,000 messages: 55–280 ms, on the main thread with --workers N; indexed
 * 0.2–7 ms). Their price, on the writer thread: a room row costs 9.6–15 µs CPU to insert in
 * batches of 5000, 7.7–10.4 µs without them (10 and 1000 rooms, two runs each).
 *
 * One row per archived copy, in a rowid table (rows are appended, so the table itself grows at
 * its end), and one index, (owner, id): ids sort by time (archive.ts), so that index pages, seeks
 * by id and start/end all at once. Filters on 'with' read the owner's rows in id order.
 *
 * Appends are batched and written off the event loop. A commit writes every index page it
 * touched to the WAL, and with messages to many accounts that is about one page per row; measured
 * (docs/benchmarks.md, "Message archive"): ~12 µs CPU per row in batches of 200, ~5 µs in
 * batches of 5000, and on this machine's disk about as much again waiting for writes. So the
 * router's appends are queued and handed, FLUSH_MS after the first of them (or at once past
 * MAX_QUEUE), to a writer thread with its own connection to the same file, which inserts each
 * batch in one transaction. Until the writer confirms a batch, the entries stay here: a query
 * or metadata request for an account first inserts that account's unconfirmed entries itself
 * (INSERT OR IGNORE: the writer's copy of a row is then ignored, and the other way round), so a
 * client always finds its latest messages; close() inserts all of them. A crash of the process
 * loses at most the unconfirmed batches (a fraction of a second of archive writes); those
 * messages were delivered live or are in offline storage, which is written at once.
 * Without a thread (option `thread: false`, or if the thread cannot start) the batches are
 * written on the event loop.
 */
import type Database from 'better-sqlite3';
import { createRequire } from 'node:module';
import { Worker } from 'node:worker_threads';
import {
  type ArchiveEntry,
  type ArchivePrefs,
  type ArchiveQuery,
  type ArchiveStore,
  type ArchivedMessage,
  archiveIdFloor,
  bareOf,
  cleanPrefs,
  UnknownArchiveId,
} from './archive.js';

/** Created by the schema and by the upgrade from schema 5. */
export const ARCHIVE_SCHEMA = `
CREATE TABLE IF NOT EXISTS mam (
  owner TEXT NOT NULL,
  id TEXT NOT NULL,
  stamp INTEGER NOT NULL,
  with_bare TEXT NOT NULL,
  with_full TEXT NOT NULL,
  stanza TEXT NOT NULL,
  real_jid TEXT
);
CREATE UNIQUE INDEX IF NOT EXISTS mam_by_id ON mam (owner, id);
CREATE INDEX IF NOT EXISTS mam_room_by_sender ON mam (owner, with_full, id) WHERE real_jid IS NOT NULL;
CREATE INDEX IF NOT EXISTS mam_room_by_real ON mam (owner, real_jid, id) WHERE real_jid IS NOT NULL;
CREATE TABLE IF NOT EXISTS mam_prefs (
  owner TEXT PRIMARY KEY,
  policy TEXT NOT NULL,
  always TEXT NOT NULL,
  never TEXT NOT NULL
) WITHOUT ROWID;
`;

/**
 * The upgrade from schema 7 to 8: room archives' real JIDs. A file older than schema 6 has no
 * archive table yet when this runs (the schema text creates tables after the upgrades): the
 * schema text then makes it whole. ADD COLUMN of a nullable column rewrites no row.
 */
export function upgradeArchiveTo8(db: Database.Database): void {
  const columns = db.prepare("SELECT name FROM pragma_table_info('mam')").pluck().all() as string[];
  if (columns.length > 0 && !columns.includes('real_jid')) db.exec('ALTER TABLE mam ADD COLUMN real_jid TEXT');
}

/**
 * Matching messages counted at most for a query's XEP-0059 <count/>; past it the count is left
 * out (XEP-0313 'Requesting pages': optional). Counting reads every matching index entry: a
 * 200,000-message archive took ~22 ms per query to count, paid by every client's sync query
 * (and, for room archives with --workers N, by the main thread that carries all sockets);
 * 10,000 bound it to ~1 ms.
 */
export const COUNT_CAP = 10_000;

/** How long appends wait for company before they are written (ms). */
export const FLUSH_MS = 250;
/** Rows past the first young one that retention still looks at (appended out of time order). */
const OUT_OF_ORDER_ROWS = 10_000;
/** Queued appends handed over at once without waiting for the timer. */
const MAX_QUEUE = 20_000;
/**
 * Entries the writer may hold unconfirmed. Past this (a disk slower than the message rate), batches
 * are written on the event loop: the router slows down to the disk's pace instead of the queue
 * growing without bound.
 */
const MAX_INFLIGHT = 200_000;

interface MessageRow {
  id: string;
  stamp: number;
  with_full: string;
  stanza: string;
  real_jid: string | null;
}

const INSERT_SQL = 'INSERT OR IGNORE INTO mam (owner, id, stamp, with_bare, with_full, stanza, real_jid) VALUES (?, ?, ?, ?, ?, ?, ?)';
const FIELDS = 7;
const toRow = (e: ArchiveEntry): [string, string, number, string, string, string, string | null] => [
  e.owner,
  e.id,
  e.stamp.getTime(),
  bareOf(e.with),
  e.with,
  e.stanza,
  e.real ?? null,
];
const COLUMNS = 'id, stamp, with_full, stanza, real_jid';

const toMessage = (r: MessageRow): ArchivedMessage => {
  const m: ArchivedMessage = { id: r.id, stamp: new Date(r.stamp), with: r.with_full, stanza: r.stanza };
  if (r.real_jid !== null) m.real = r.real_jid;
  return m;
};

/** The writer thread (CommonJS, evaluated: it runs the same from src/ under vitest and from dist/). */
const WRITER = `
const { parentPort, workerData } = require('node:worker_threads');
const Database = require(workerData.sqlite);
const db = new Database(workerData.file, { timeout: 5000 });
db.pragma('synchronous = ' + workerData.synchronous);
const insert = db.prepare(${JSON.stringify(INSERT_SQL)});
const remove = db.prepare('DELETE FROM mam WHERE owner = ?');
// One string per batch, fields separated by NUL (which neither XML nor a JID can contain); an
// empty real JID is a row without one (user archives).
const write = db.transaction((flat, count) => {
  const f = flat.split('\\0');
  if (f.length !== ${FIELDS} * count) throw new Error('batch does not split into its rows');
  for (let i = 0; i + ${FIELDS} <= f.length; i += ${FIELDS}) {
    insert.run(f[i], f[i + 1], Number(f[i + 2]), f[i + 3], f[i + 4], f[i + 5], f[i + 6] === '' ? null : f[i + 6]);
  }
});
parentPort.on('message', (m) => {
  if (m.close) {
    db.close();
    Atomics.store(workerData.closed, 0, 1);
    Atomics.notify(workerData.closed, 0);
    parentPort.close();
    return;
  }
  try {
    if (m.rows !== undefined) write.immediate(m.rows, m.count);
    if (m.deleteOwner !== undefined) remove.run(m.deleteOwner);
    parentPort.postMessage({ done: m.n });
  } catch (err) {
    Atomics.add(workerData.closed, 1, 1);
    parentPort.postMessage({ failed: m.n, error: String((err && err.message) || err) });
  }
});
`;

export interface SqliteArchiveOptions {
  /** The database file, for the writer thread's own connection; without it, no thread. */
  file?: string;
  /** Write batches on a thread (default, when `file` is given) or on the event loop. */
  thread?: boolean;
  synchronous?: 'NORMAL' | 'FULL';
}

export interface SqliteArchive extends ArchiveStore {
  /** Remove an account's archive and preferences (inside the caller's transaction). */
  deleteOwner(owner: string): void;
  /** Write everything pending and stop the writer thread (before the connection closes). */
  close(): void;
}

export function openSqliteArchive(db: Database.Database, options: SqliteArchiveOptions = {}): SqliteArchive {
  const q = {
    insert: db.prepare(INSERT_SQL),
    has: db.prepare('SELECT 1 FROM mam WHERE owner = ? AND id = ?').pluck(),
    first: db.prepare(`SELECT ${COLUMNS} FROM mam WHERE owner = ? ORDER BY id LIMIT 1`),
    last: db.prepare(`SELECT ${COLUMNS} FROM mam WHERE owner = ? ORDER BY id DESC LIMIT 1`),
    prefsGet: db.prepare('SELECT policy, always, never FROM mam_prefs WHERE owner = ?'),
    prefsSet: db.prepare('INSERT OR REPLACE INTO mam_prefs (owner, policy, always, never) VALUES (?, ?, ?, ?)'),
    deleteAll: db.prepare('DELETE FROM mam WHERE owner = ?'),
    prefsDelete: db.prepare('DELETE FROM mam_prefs WHERE owner = ?'),
    // The (owner, id) index answers it with one seek.
    nextOwner: db.prepare('SELECT min(owner) FROM mam WHERE owner > ?').pluck(),
    rowBounds: db.prepare('SELECT min(rowid) AS lo, max(rowid) AS hi FROM mam'),
    stampAt: db.prepare('SELECT stamp FROM mam WHERE rowid >= ? ORDER BY rowid LIMIT 1').pluck(),
    deleteOlder: db.prepare('DELETE FROM mam WHERE rowid < ? AND stamp < ?'),
    overCap: db.prepare('SELECT owner FROM mam GROUP BY owner HAVING count(*) > ?').pluck(),
    trim: db.prepare(
      'DELETE FROM mam WHERE owner = ? AND id <= (SELECT id FROM mam WHERE owner = ? ORDER BY id DESC LIMIT 1 OFFSET ?)',
    ),
  };
  /** Query statements by their SQL text (one per combination of filters used). */
  const prepared = new Map<string, Database.Statement>();
  const stmt = (sql: string): Database.Statement => {
    let s = prepared.get(sql);
    if (!s) prepared.set(sql, (s = db.prepare(sql)));
    return s;
  };

  let queue: ArchiveEntry[] = [];
  let timer: NodeJS.Timeout | null = null;
  /** Batches handed to the writer thread and not yet confirmed, by number. */
  const inflight = new Map<number, ArchiveEntry[]>();
  let batchNo = 0;
  let useThread = options.thread ?? options.file !== undefined;
  let worker: Worker | null = null;
  /**
   * [0]: set to 1 by the writer once it has handled everything sent before 'close' and let go of
   * the file; [1]: batches it failed to write (their entries are then written here).
   */
  const closed = new Int32Array(new SharedArrayBuffer(8));

  const writeAll = db.transaction((entries: ArchiveEntry[]) => {
    for (const e of entries) q.insert.run(toRow(e));
  });
  /** Insert on this connection, now (what the writer inserts later is then ignored). */
  const writeNow = (entries: ArchiveEntry[]): void => {
    if (entries.length > 0) writeAll.immediate(entries);
  };
  /** Write here, now; on failure (SQLITE_BUSY past the timeout, a full disk) keep them for the next attempt. */
  const writeOrKeep = (entries: ArchiveEntry[]): void => {
    try {
      writeNow(entries);
    } catch (err) {
      queue = entries.concat(queue);
      throw err;
    }
  };
  /** The writer failed or went away: its unconfirmed batches are written here. */
  const takeBack = (n?: number): void => {
    for (const [k, batch] of inflight) {
      if (n !== undefined && k !== n) continue;
      inflight.delete(k);
      queue = batch.concat(queue);
    }
    schedule();
  };
  const startWorker = (): Worker | null => {
    if (worker !== null || !useThread) return worker;
    try {
      worker = new Worker(WRITER, {
        eval: true,
        workerData: {
          file: options.file,
          sqlite: createRequire(import.meta.url).resolve('better-sqlite3'),
          synchronous: options.synchronous ?? 'NORMAL',
          closed,
        },
      });
    } catch (err) {
      process.emitWarning(`message archive writer thread did not start, writing on the event loop: ${(err as Error).message}`);
      useThread = false;
      return null;
    }
    worker.unref();
    worker.on('message', (m: { done?: number; failed?: number; error?: string }) => {
      if (m.done !== undefined) inflight.delete(m.done);
      else if (m.failed !== undefined) {
        process.emitWarning(`message archive writer failed, writing here: ${m.error}`);
        takeBack(m.failed);
      }
    });
    const gone = (why: string) => {
      if (worker === null) return;
      worker = null;
      useThread = false;
      if (db.open) {
        process.emitWarning(`message archive writer thread ${why}, writing on the event loop`);
        takeBack();
      }
    };
    worker.on('error', (err) => gone(`failed (${err.message})`));
    worker.on('exit', () => gone('exited'));
    return worker;
  };

  /** Hand the queue over (thread) or write it (no thread). */
  const ship = (): void => {
    if (timer !== null) clearTimeout(timer), (timer = null);
    if (queue.length === 0) return;
    const batch = queue;
    queue = [];
    let held = 0;
    for (const b of inflight.values()) held += b.length;
    const w = held < MAX_INFLIGHT ? startWorker() : null;
    if (w !== null) {
      const n = ++batchNo;
      inflight.set(n, batch);
      const fields: (string | number | null)[] = [];
      for (const e of batch) fields.push(...toRow(e));
      w.postMessage({ n, count: batch.length, rows: fields.join('\0') });
      return;
    }
    writeOrKeep(batch);
  };
  const onTimer = (): void => {
    timer = null;
    if (!db.open) return;
    try {
      ship();
    } catch (err) {
      process.emitWarning(`message archive write failed, retrying: ${(err as Error).message}`);
      if (timer === null) timer = setTimeout(onTimer, 4 * FLUSH_MS);
    }
  };
  function schedule(): void {
    if (timer !== null || queue.length === 0) return;
    timer = setTimeout(onTimer, FLUSH_MS);
    // Pending writes do not keep a process alive; close() writes them.
    timer.unref();
  }
  /** Make every entry of `owner` (all when omitted) durable on this connection before a read. */
  const settle = (owner?: string): void => {
    const out: ArchiveEntry[] = [];
    // Taken out of the queue and of the unconfirmed batches, so that no later read writes them
    // again (a row deleted in between must stay deleted).
    const take = (list: ArchiveEntry[]): ArchiveEntry[] => {
      const keep: ArchiveEntry[] = [];
      for (const e of list) (owner === undefined || e.owner === owner ? out : keep).push(e);
      return keep;
    };
    queue = take(queue);
    for (const [n, batch] of inflight) inflight.set(n, take(batch));
    writeOrKeep(out);
  };
  const flush = (): void => {
    if (timer !== null) clearTimeout(timer), (timer = null);
    settle();
  };

  const known = (owner: string, id: string): string => {
    if (q.has.get(owner, id) === undefined) throw new UnknownArchiveId(id);
    return id;
  };

  /**
   * About the first rowid stamped at or after `ms`. Rows are appended in time order (give or
   * take one batch of another shard), so a binary search over rowids finds it without a stamp
   * index.
   */
  const firstRowAt = (ms: number): number => {
    const { lo, hi } = q.rowBounds.get() as { lo: number | null; hi: number | null };
    if (lo === null || hi === null) return 0;
    let [a, b] = [lo, hi + 1];
    while (a < b) {
      const mid = Math.floor((a + b) / 2);
      const stamp = q.stampAt.get(mid) as number | undefined;
      if (stamp === undefined || stamp >= ms) b = mid;
      else a = mid + 1;
    }
    return a;
  };

  return {
    append(entry) {
      if (!db.open) throw new Error('storage is closed');
      queue.push(entry);
      if (queue.length >= MAX_QUEUE) ship();
      else schedule();
    },
    query(owner, query: ArchiveQuery) {
      settle(owner);
      const where = ['owner = ?'];
      const params: (string | number)[] = [owner];
      // Room rows (and only they) carry a real JID, and have indexes of their own by sender: a
      // filter on the occupant JID or the real JID reads that sender's rows only. Named, because
      // left to itself the planner took the real-JID index for an occupant-JID count (scanning
      // the whole room through it, 6x slower than without the indexes).
      let from = 'mam';
      if (query.room === true && (query.with !== undefined || query.real !== undefined)) {
        from = `mam INDEXED BY ${query.with !== undefined ? 'mam_room_by_sender' : 'mam_room_by_real'}`;
        where.push('real_jid IS NOT NULL');
      }
      if (query.with !== undefined) {
        where.push(query.with.includes('/') ? 'with_full = ?' : 'with_bare = ?');
        params.push(query.with);
      }
      // Ids begin with their time: the id bound seeks, the stamp keeps the bound exact.
      if (query.start !== undefined) {
        where.push('id >= ?', 'stamp >= ?');
        params.push(archiveIdFloor(query.start.getTime()), query.start.getTime());
      }
      if (query.end !== undefined) {
        where.push('id < ?', 'stamp <= ?');
        params.push(archiveIdFloor(query.end.getTime() + 1), query.end.getTime());
      }
      if (query.afterId !== undefined) where.push('id > ?'), params.push(known(owner, query.afterId));
      if (query.beforeId !== undefined) where.push('id < ?'), params.push(known(owner, query.beforeId));
      if (query.real !== undefined) {
        if (query.real.includes('/')) where.push('real_jid = ?'), params.push(query.real);
        else {
          // One index range, [bare, bare0): the bare JID and its full JIDs ('/' + 1 = '0'), and
          // the few other JIDs that merely start with it (bare.org), which the last test drops.
          where.push("real_jid >= ? AND real_jid < ? AND (real_jid = ? OR substr(real_jid, length(?) + 1, 1) = '/')");
          params.push(query.real, `${query.real}0`, query.real, query.real);
        }
      }
      if (query.ids !== undefined) {
        if (query.ids.length === 0) where.push('0');
        else where.push(`id IN (${query.ids.map(() => '?').join(', ')})`), params.push(...query.ids);
      }
      const filter = where.join(' AND ');
      const counted = stmt(`SELECT count(*) FROM (SELECT 1 FROM ${from} WHERE ${filter} LIMIT ${COUNT_CAP})`).pluck().get(...params) as number;
      const count = counted < COUNT_CAP ? counted : undefined;
      const backwards = query.before !== undefined;
      const cut = backwards ? (query.before === '' ? null : query.before!) : (query.after ?? null);
      const pageParams = [...params];
      let pageFilter = filter;
      if (cut !== null) {
        pageFilter += backwards ? ' AND id < ?' : ' AND id > ?';
        pageParams.push(known(owner, cut));
      }
      // One row more than asked tells whether the page is the last one in this direction.
      const rows = stmt(
        `SELECT ${COLUMNS} FROM ${from} WHERE ${pageFilter} ORDER BY id ${backwards ? 'DESC' : 'ASC'} LIMIT ?`,
      ).all(...pageParams, query.max + 1) as MessageRow[];
      const complete = rows.length <= query.max;
      const page = rows.slice(0, query.max);
      if (backwards) page.reverse();
      return count === undefined ? { items: page.map(toMessage), complete } : { items: page.map(toMessage), complete, count };
    },
    bounds(owner) {
      settle(owner);
      const first = q.first.get(owner) as MessageRow | undefined;
      const last = q.last.get(owner) as MessageRow | undefined;
      return first && last ? { first: toMessage(first), last: toMessage(last) } : null;
    },
    prefs(owner) {
      const row = q.prefsGet.get(owner) as { policy: ArchivePrefs['default']; always: string; never: string } | undefined;
      return row ? { default: row.policy, always: JSON.parse(row.always) as string[], never: JSON.parse(row.never) as string[] } : null;
    },
    setPrefs(owner, prefs) {
      const p = cleanPrefs(prefs);
      q.prefsSet.run(owner, p.default, JSON.stringify(p.always), JSON.stringify(p.never));
    },
    purge({ before, maxPerUser = 0 }) {
      // At most a fraction of a second of traffic is pending: written first, so that the caps count it.
      settle();
      return db.transaction(() => {
        // The rowid bound keeps the scan to the expired rows plus a margin for rows a batch of
        // another shard appended out of time order; the stamp decides row by row.
        const cutoff = before?.getTime();
        let removed = cutoff === undefined ? 0 : q.deleteOlder.run(firstRowAt(cutoff) + OUT_OF_ORDER_ROWS, cutoff).changes;
        if (maxPerUser > 0) {
          for (const owner of q.overCap.all(maxPerUser) as string[]) removed += q.trim.run(owner, owner, maxPerUser).changes;
        }
        return removed;
      }).immediate();
    },
    flush,
    deleteOwner(owner) {
      // What is queued for the account is dropped; what the writer holds is deleted after it.
      const others = (list: ArchiveEntry[]) => list.filter((e) => e.owner !== owner);
      queue = others(queue);
      for (const [n, batch] of inflight) inflight.set(n, others(batch));
      if (inflight.size > 0 && worker !== null) worker.postMessage({ n: 0, deleteOwner: owner });
      q.deleteAll.run(owner);
      q.prefsDelete.run(owner);
    },
    nextOwner: (after) => (q.nextOwner.get(after) as string | null | undefined) ?? null,
    close() {
      if (timer !== null) clearTimeout(timer), (timer = null);
      const w = worker;
      worker = null;
      if (w !== null) {
        // The writer finishes what it was sent (batches, deletions) in order, then says so: wait
        // for it (bounded like the busy timeout), so nothing it does lands after this close.
        w.postMessage({ close: true });
        const finished = Atomics.wait(closed, 0, 0, 5000) !== 'timed-out';
        void w.terminate();
        // Every batch it was handed is written, unless it said it failed or did not finish.
        if (finished && Atomics.load(closed, 1) === 0) inflight.clear();
      }
      settle();
    },
  };
}

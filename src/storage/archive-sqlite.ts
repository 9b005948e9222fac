/**
 * The XEP-0313 archive in SQLite (tables `mam`, `mam_prefs`, schema 6).
 *
 * One row per archived copy, in a rowid table (rows are appended, so the table itself grows at
 * its end), and one index, (owner, id): ids sort by time (archive.ts), so that index pages, seeks
 * by id and start/end all at once. Filters on 'with' read the owner's rows in id order.
 *
 * Appends are batched: a transaction per message would put a commit on the path of every chat
 * message, and each commit writes every index page it touched to the WAL — with messages to many
 * accounts, one page per row. Measured (docs/benchmarks.md, "Message archive"): ~12 µs CPU per
 * row in batches of 200, ~5 µs in batches of 5000. So appends are queued and written in one
 * IMMEDIATE transaction FLUSH_MS after the first of them (or at once past MAX_QUEUE). Every read
 * (query, bounds, purge) and account deletion writes the queue first, so a client always finds
 * its latest messages, and close() writes it before the file closes. A crash of the process
 * loses at most the last FLUSH_MS of archive writes; those messages were delivered live or are
 * in offline storage, which is written at once.
 */
import type Database from 'better-sqlite3';
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
  stanza TEXT NOT NULL
);
CREATE UNIQUE INDEX IF NOT EXISTS mam_by_id ON mam (owner, id);
CREATE TABLE IF NOT EXISTS mam_prefs (
  owner TEXT PRIMARY KEY,
  policy TEXT NOT NULL,
  always TEXT NOT NULL,
  never TEXT NOT NULL
) WITHOUT ROWID;
`;

/** How long appends wait for company before they are written (ms). */
export const FLUSH_MS = 250;
/** Rows past the first young one that retention still looks at (appended out of time order). */
const OUT_OF_ORDER_ROWS = 10_000;
/** Queued appends written at once without waiting for the timer. */
const MAX_QUEUE = 5000;

interface MessageRow {
  id: string;
  stamp: number;
  with_full: string;
  stanza: string;
}

const toMessage = (r: MessageRow): ArchivedMessage => ({ id: r.id, stamp: new Date(r.stamp), with: r.with_full, stanza: r.stanza });

export interface SqliteArchive extends ArchiveStore {
  /** Remove an account's archive and preferences (inside the caller's transaction). */
  deleteOwner(owner: string): void;
}

export function openSqliteArchive(db: Database.Database): SqliteArchive {
  const q = {
    insert: db.prepare('INSERT OR IGNORE INTO mam (owner, id, stamp, with_bare, with_full, stanza) VALUES (?, ?, ?, ?, ?, ?)'),
    has: db.prepare('SELECT 1 FROM mam WHERE owner = ? AND id = ?').pluck(),
    first: db.prepare('SELECT id, stamp, with_full, stanza FROM mam WHERE owner = ? ORDER BY id LIMIT 1'),
    last: db.prepare('SELECT id, stamp, with_full, stanza FROM mam WHERE owner = ? ORDER BY id DESC LIMIT 1'),
    prefsGet: db.prepare('SELECT policy, always, never FROM mam_prefs WHERE owner = ?'),
    prefsSet: db.prepare('INSERT OR REPLACE INTO mam_prefs (owner, policy, always, never) VALUES (?, ?, ?, ?)'),
    deleteAll: db.prepare('DELETE FROM mam WHERE owner = ?'),
    prefsDelete: db.prepare('DELETE FROM mam_prefs WHERE owner = ?'),
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
  const writeAll = db.transaction((entries: ArchiveEntry[]) => {
    for (const e of entries) q.insert.run(e.owner, e.id, e.stamp.getTime(), bareOf(e.with), e.with, e.stanza);
  });
  const flush = (): void => {
    if (timer !== null) clearTimeout(timer), (timer = null);
    if (queue.length === 0) return;
    const batch = queue;
    queue = [];
    try {
      writeAll.immediate(batch);
    } catch (err) {
      // Keep them for the next attempt (SQLITE_BUSY past the timeout, a full disk that clears).
      queue = batch.concat(queue);
      throw err;
    }
  };
  const onTimer = (): void => {
    timer = null;
    if (!db.open) return;
    try {
      flush();
    } catch (err) {
      process.emitWarning(`message archive write failed, retrying: ${(err as Error).message}`);
      if (timer === null) timer = setTimeout(onTimer, 4 * FLUSH_MS);
    }
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
      if (queue.length >= MAX_QUEUE) flush();
      else if (timer === null) {
        timer = setTimeout(onTimer, FLUSH_MS);
        // Pending writes do not keep a process alive; close() writes them.
        timer.unref();
      }
    },
    query(owner, query: ArchiveQuery) {
      flush();
      const where = ['owner = ?'];
      const params: (string | number)[] = [owner];
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
      if (query.ids !== undefined) {
        if (query.ids.length === 0) where.push('0');
        else where.push(`id IN (${query.ids.map(() => '?').join(', ')})`), params.push(...query.ids);
      }
      const filter = where.join(' AND ');
      const count = stmt(`SELECT count(*) FROM mam WHERE ${filter}`).pluck().get(...params) as number;
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
        `SELECT id, stamp, with_full, stanza FROM mam WHERE ${pageFilter} ORDER BY id ${backwards ? 'DESC' : 'ASC'} LIMIT ?`,
      ).all(...pageParams, query.max + 1) as MessageRow[];
      const complete = rows.length <= query.max;
      const page = rows.slice(0, query.max);
      if (backwards) page.reverse();
      return { items: page.map(toMessage), complete, count };
    },
    bounds(owner) {
      flush();
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
      flush();
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
      flush();
      q.deleteAll.run(owner);
      q.prefsDelete.run(owner);
    },
  };
}

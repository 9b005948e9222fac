/**
 * The XEP-0313 archive in SQLite (tables `mam`, `mam_prefs`, schema 6).
 *
 * Appends are batched: the router hands one message at a time, and a transaction per message
 * would put a commit (a WAL append) on the path of every chat message. They are queued and
 * written in one IMMEDIATE transaction when the event-loop turn ends (setImmediate); every read
 * (query, bounds, purge) and account deletion writes the queue first, so a client never misses
 * its own message, and close() writes it before the file is closed. What a crash in between
 * loses is at most the last turn's messages, which were delivered live.
 */
import type Database from 'better-sqlite3';
import {
  type ArchiveEntry,
  type ArchivePrefs,
  type ArchiveQuery,
  type ArchiveStore,
  type ArchivedMessage,
  bareOf,
  cleanPrefs,
  UnknownArchiveId,
} from './archive.js';

/** Created by the schema and by the upgrade from schema 5. */
export const ARCHIVE_SCHEMA = `
CREATE TABLE IF NOT EXISTS mam (
  seq INTEGER PRIMARY KEY AUTOINCREMENT,
  owner TEXT NOT NULL,
  id TEXT NOT NULL,
  stamp INTEGER NOT NULL,
  with_bare TEXT NOT NULL,
  with_full TEXT NOT NULL,
  stanza TEXT NOT NULL
);
CREATE UNIQUE INDEX IF NOT EXISTS mam_by_id ON mam (owner, id);
CREATE INDEX IF NOT EXISTS mam_by_owner ON mam (owner);
CREATE INDEX IF NOT EXISTS mam_by_with ON mam (owner, with_bare);
CREATE INDEX IF NOT EXISTS mam_by_stamp ON mam (stamp);
CREATE TABLE IF NOT EXISTS mam_prefs (
  owner TEXT PRIMARY KEY,
  policy TEXT NOT NULL,
  always TEXT NOT NULL,
  never TEXT NOT NULL
) WITHOUT ROWID;
`;

/** Appends waiting longer than this many entries are written at once rather than at turn end. */
const MAX_QUEUE = 5000;

interface MessageRow {
  seq: number;
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
    seqOf: db.prepare('SELECT seq FROM mam WHERE owner = ? AND id = ?').pluck(),
    first: db.prepare('SELECT seq, id, stamp, with_full, stanza FROM mam WHERE owner = ? ORDER BY seq LIMIT 1'),
    last: db.prepare('SELECT seq, id, stamp, with_full, stanza FROM mam WHERE owner = ? ORDER BY seq DESC LIMIT 1'),
    prefsGet: db.prepare('SELECT policy, always, never FROM mam_prefs WHERE owner = ?'),
    prefsSet: db.prepare('INSERT OR REPLACE INTO mam_prefs (owner, policy, always, never) VALUES (?, ?, ?, ?)'),
    deleteAll: db.prepare('DELETE FROM mam WHERE owner = ?'),
    prefsDelete: db.prepare('DELETE FROM mam_prefs WHERE owner = ?'),
    purgeAge: db.prepare('DELETE FROM mam WHERE stamp < ?'),
    overCap: db.prepare('SELECT owner FROM mam GROUP BY owner HAVING count(*) > ?').pluck(),
    trim: db.prepare(
      'DELETE FROM mam WHERE owner = ? AND seq <= (SELECT seq FROM mam WHERE owner = ? ORDER BY seq DESC LIMIT 1 OFFSET ?)',
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
  let scheduled = false;
  const writeAll = db.transaction((entries: ArchiveEntry[]) => {
    for (const e of entries) q.insert.run(e.owner, e.id, e.stamp.getTime(), bareOf(e.with), e.with, e.stanza);
  });
  const flush = (): void => {
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
  const onTurnEnd = (): void => {
    scheduled = false;
    if (!db.open) return;
    try {
      flush();
    } catch (err) {
      process.emitWarning(`message archive write failed, retrying: ${(err as Error).message}`);
      setTimeout(() => {
        if (!scheduled && db.open && queue.length > 0) onTurnEnd();
      }, 1000).unref();
    }
  };

  const seqOf = (owner: string, id: string): number => {
    const s = q.seqOf.get(owner, id) as number | undefined;
    if (s === undefined) throw new UnknownArchiveId(id);
    return s;
  };

  return {
    append(entry) {
      if (!db.open) throw new Error('storage is closed');
      queue.push(entry);
      if (queue.length >= MAX_QUEUE) flush();
      else if (!scheduled) {
        scheduled = true;
        setImmediate(onTurnEnd);
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
      if (query.start !== undefined) where.push('stamp >= ?'), params.push(query.start.getTime());
      if (query.end !== undefined) where.push('stamp <= ?'), params.push(query.end.getTime());
      if (query.afterId !== undefined) where.push('seq > ?'), params.push(seqOf(owner, query.afterId));
      if (query.beforeId !== undefined) where.push('seq < ?'), params.push(seqOf(owner, query.beforeId));
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
        pageFilter += backwards ? ' AND seq < ?' : ' AND seq > ?';
        pageParams.push(seqOf(owner, cut));
      }
      // One row more than asked tells whether the page is the last one in this direction.
      const rows = stmt(
        `SELECT seq, id, stamp, with_full, stanza FROM mam WHERE ${pageFilter} ORDER BY seq ${backwards ? 'DESC' : 'ASC'} LIMIT ?`,
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
        let removed = before === undefined ? 0 : q.purgeAge.run(before.getTime()).changes;
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

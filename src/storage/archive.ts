/**
 * XEP-0313 message archives: the store contract, the query semantics every backend shares, the
 * archive ids, and the in-memory backend (unit tests; the SQLite one is archive-sqlite.ts).
 *
 * Archive ids sort by time: 9 base32hex characters of the millisecond, 3 of a per-process
 * counter, 8 random ones (40 bits: XEP-0313 wants them unpredictable). An archive is ordered by
 * id, so one index (owner, id) serves paging by id (XEP-0059 after/before, #extended
 * after-id/before-id), the unknown-id check, and start/end (an id range first, then the stamp).
 * Measured: every further index on the archive costs the message path about as much as the
 * whole routing of a message (docs/benchmarks.md, "Message archive").
 */
import { randomBytes } from 'node:crypto';

const B32 = '0123456789abcdefghijklmnopqrstuv';
const TIME_CHARS = 9;
const COUNTER_CHARS = 3;
const RANDOM_CHARS = 8;

function base32(n: number, width: number): string {
  let out = '';
  for (let i = 0; i < width; i++) {
    out = B32[n % 32]! + out;
    n = Math.floor(n / 32);
  }
  return out;
}

/** The smallest id of this millisecond: ids of messages stamped at `ms` or later sort at or after it. */
export function archiveIdFloor(ms: number): string {
  return base32(Math.max(0, Math.floor(ms)), TIME_CHARS);
}

/** The millisecond an archive id was made at (NaN for a string that is not one). */
export function archiveIdTime(id: string): number {
  if (id.length !== TIME_CHARS + COUNTER_CHARS + RANDOM_CHARS) return NaN;
  let ms = 0;
  for (let i = 0; i < TIME_CHARS; i++) {
    const d = B32.indexOf(id[i]!);
    if (d < 0) return NaN;
    ms = ms * 32 + d;
  }
  return ms;
}

let pool = Buffer.alloc(0);
let poolAt = 0;

function randomChars(): string {
  if (poolAt + RANDOM_CHARS > pool.length) {
    pool = randomBytes(RANDOM_CHARS * 256);
    poolAt = 0;
  }
  let out = '';
  for (let i = 0; i < RANDOM_CHARS; i++) out += B32[pool[poolAt++]! & 31];
  return out;
}

/**
 * A source of archive ids (one per router). Its ids never go backwards, even when the clock
 * does (the id's time is then the last one used): read the stamp back with archiveIdTime() so
 * that stamp and order agree.
 */
export function archiveIds(): (now: Date) => string {
  let lastMs = 0;
  let counter = 0;
  return (now) => {
    let ms = now.getTime();
    if (ms > lastMs) {
      lastMs = ms;
      counter = 0;
    } else {
      ms = lastMs;
      if (++counter >= 32 ** COUNTER_CHARS) {
        lastMs = ms = lastMs + 1;
        counter = 0;
      }
    }
    return base32(ms, TIME_CHARS) + base32(counter, COUNTER_CHARS) + randomChars();
  };
}

/** XEP-0441 (formerly XEP-0313 §5) default archiving policy of an account. */
export type ArchiveDefault = 'always' | 'never' | 'roster';
export const ARCHIVE_DEFAULTS: readonly ArchiveDefault[] = ['always', 'never', 'roster'];

/** An account's archiving preferences: the default and the JIDs always / never archived. */
export interface ArchivePrefs {
  default: ArchiveDefault;
  /** Prepared JIDs (bare or full), in the order the client gave them, without duplicates. */
  always: string[];
  never: string[];
}

/** One archived message as a query returns it. */
export interface ArchivedMessage {
  /** The server-assigned id from archiveIds() (also the XEP-0359 stanza-id of the delivered message). */
  id: string;
  /** When the server accepted it, archiveIdTime(id) (the XEP-0203 delay stamp of a result). */
  stamp: Date;
  /** The contact: 'to' of an outgoing message, 'from' of an incoming one (full or bare). */
  with: string;
  /** The message as routed (with the stamped 'from'), without this server's stanza-ids. */
  stanza: string;
  /**
   * Room archives (XEP-0313 §5 'MUC Archives'): the sender's real full JID, kept for those the
   * room lets see it at query time; absent in user archives.
   */
  real?: string;
}

export interface ArchiveEntry extends ArchivedMessage {
  /** The archive's account (prepared bare JID). */
  owner: string;
}

/** A query after its form and XEP-0059 set were read (all optional but max). */
export interface ArchiveQuery {
  /** A bare JID matches every resource of the contact, a full JID only that resource (XEP-0313 §4.1.1). */
  with?: string;
  /** Inclusive bounds on the stamp (XEP-0313 §4.1.2). */
  start?: Date;
  end?: Date;
  /** Only messages after / before the one with this id (urn:xmpp:mam:2#extended). */
  afterId?: string;
  beforeId?: string;
  /** Only these ids (urn:xmpp:mam:2#extended 'ids'). */
  ids?: string[];
  /** Room archives: only messages whose sender's real JID matches (bare: any resource), like `with`. */
  real?: string;
  /** The archive is a room's (every message has a real JID): a backend may use indexes of its own for rooms. */
  room?: boolean;
  /** XEP-0059 §2.2: the page after this id. */
  after?: string;
  /** XEP-0059 §2.3/§2.5: the page before this id; '' asks for the last page. */
  before?: string;
  /** Most items on the page (0: count only). */
  max: number;
}

export interface ArchivePage {
  /** Oldest first. */
  items: ArchivedMessage[];
  /** XEP-0313 <fin complete='true'/>: no further page in the direction of paging. */
  complete: boolean;
  /**
   * Messages matching the filters (XEP-0059 <count/>); absent when the backend stopped counting
   * (SQLite: past COUNT_CAP, archive-sqlite.ts). XEP-0313 lets a server leave it out.
   */
  count?: number;
}

/** An id named by a query (after-id, before-id, RSM after/before) is not in the archive. */
export class UnknownArchiveId extends Error {
  constructor(readonly id: string) {
    super(`no archived message with id '${id}'`);
    this.name = 'UnknownArchiveId';
  }
}

export interface ArchiveStore {
  /**
   * Add a message. A backend may batch appends and write them a little later (archive-sqlite.ts);
   * every read below sees it at once all the same.
   */
  append(entry: ArchiveEntry): void;
  /** Throws UnknownArchiveId for an id the owner's archive does not hold. */
  query(owner: string, q: ArchiveQuery): ArchivePage;
  /** Oldest and newest message (XEP-0313 §6.1 archive metadata); null when empty. */
  bounds(owner: string): { first: ArchivedMessage; last: ArchivedMessage } | null;
  prefs(owner: string): ArchivePrefs | null;
  setPrefs(owner: string, prefs: ArchivePrefs): void;
  /**
   * Retention: drop messages stamped before `before`, then keep only the newest `maxPerUser` of
   * each archive (0: no cap). Returns how many were removed.
   */
  purge(options: { before?: Date; maxPerUser?: number }): number;
  /** Write what is batched now (before shutdown; reads do it themselves). */
  flush(): void;
  /** Remove one archive and its preferences (a destroyed room; optional: added with schema 8). */
  deleteOwner?(owner: string): void;
  /**
   * The smallest owner of an archive greater than `after` ('' for the first), null after the
   * last: a walk over every archive's owner, one index seek each (optional: added with schema 8).
   */
  nextOwner?(after: string): string | null;
}

/** Defensive copy with lists de-duplicated: no caller may alias stored prefs. */
export function cleanPrefs(p: ArchivePrefs): ArchivePrefs {
  return { default: p.default, always: [...new Set(p.always)], never: [...new Set(p.never)] };
}

/** A query's 'with' matches a contact JID stored as `full` (XEP-0313 §4.1.1). */
export function withMatches(filter: string, contact: string): boolean {
  if (filter.includes('/')) return filter === contact;
  const slash = contact.indexOf('/');
  return (slash < 0 ? contact : contact.slice(0, slash)) === filter;
}

/** The bare part of a stored contact JID (what a bare 'with' filter compares with). */
export function bareOf(jid: string): string {
  const slash = jid.indexOf('/');
  return slash < 0 ? jid : jid.slice(0, slash);
}

/**
 * The paging rules over one archive's messages, filtered and ordered by id, for backends that
 * filter in memory. `exists(id)` says whether an id is in the whole archive (an id filtered out
 * still cuts the list where it would be).
 */
export function pageOf(rows: readonly ArchivedMessage[], q: ArchiveQuery, exists: (id: string) => boolean): ArchivePage {
  const known = (id: string): string => {
    if (!exists(id)) throw new UnknownArchiveId(id);
    return id;
  };
  let list = rows;
  if (q.afterId !== undefined) {
    const a = known(q.afterId);
    list = list.filter((r) => r.id > a);
  }
  if (q.beforeId !== undefined) {
    const b = known(q.beforeId);
    list = list.filter((r) => r.id < b);
  }
  const count = list.length;
  const copy = (r: ArchivedMessage): ArchivedMessage => ({ ...r, stamp: new Date(r.stamp) });
  if (q.before !== undefined) {
    // XEP-0059 §2.5: paging backwards; an empty <before/> is the last page.
    const b = q.before === '' ? null : known(q.before);
    const upTo = b === null ? list : list.filter((r) => r.id < b);
    const items = q.max === 0 ? [] : upTo.slice(Math.max(0, upTo.length - q.max));
    return { items: items.map(copy), complete: upTo.length <= q.max, count };
  }
  const a = q.after === undefined ? null : known(q.after);
  const from = a === null ? list : list.filter((r) => r.id > a);
  return { items: from.slice(0, q.max).map(copy), complete: from.length <= q.max, count };
}

/** Whether a message passes the filters other than ids and paging. */
export function matchesFilters(m: ArchivedMessage, q: ArchiveQuery): boolean {
  return (
    (q.with === undefined || withMatches(q.with, m.with)) &&
    (q.start === undefined || m.stamp.getTime() >= q.start.getTime()) &&
    (q.end === undefined || m.stamp.getTime() <= q.end.getTime()) &&
    (q.ids === undefined || q.ids.includes(m.id)) &&
    (q.real === undefined || (m.real !== undefined && withMatches(q.real, m.real)))
  );
}

/** The in-memory archive (every account's list in one Map, ordered by id); `open()` throws once closed. */
export function createMemoryArchive(open: () => void): ArchiveStore & { deleteOwner(owner: string): void } {
  const archives = new Map<string, ArchivedMessage[]>();
  const prefsByOwner = new Map<string, ArchivePrefs>();
  const copy = (r: ArchivedMessage): ArchivedMessage => ({ ...r, stamp: new Date(r.stamp) });
  return {
    append(e) {
      open();
      let list = archives.get(e.owner);
      if (!list) archives.set(e.owner, (list = []));
      if (list.some((r) => r.id === e.id)) return;
      const row: ArchivedMessage = { id: e.id, stamp: new Date(e.stamp), with: e.with, stanza: e.stanza };
      if (e.real !== undefined) row.real = e.real;
      let at = list.length;
      while (at > 0 && list[at - 1]!.id > e.id) at--;
      list.splice(at, 0, row);
    },
    query(owner, q) {
      open();
      const all = archives.get(owner) ?? [];
      return pageOf(
        all.filter((r) => matchesFilters(r, q)),
        q,
        (id) => all.some((r) => r.id === id),
      );
    },
    bounds(owner) {
      open();
      const all = archives.get(owner);
      if (!all || all.length === 0) return null;
      return { first: copy(all[0]!), last: copy(all[all.length - 1]!) };
    },
    prefs(owner) {
      open();
      const p = prefsByOwner.get(owner);
      return p ? cleanPrefs(p) : null;
    },
    setPrefs(owner, p) {
      open();
      prefsByOwner.set(owner, cleanPrefs(p));
    },
    purge({ before, maxPerUser = 0 }) {
      open();
      let removed = 0;
      for (const [owner, list] of archives) {
        let keep = before === undefined ? list : list.filter((r) => r.stamp.getTime() >= before.getTime());
        if (maxPerUser > 0 && keep.length > maxPerUser) keep = keep.slice(keep.length - maxPerUser);
        removed += list.length - keep.length;
        if (keep.length === 0) archives.delete(owner);
        else archives.set(owner, keep);
      }
      return removed;
    },
    flush() {
      open();
    },
    deleteOwner(owner) {
      archives.delete(owner);
      prefsByOwner.delete(owner);
    },
    nextOwner(after) {
      let best: string | null = null;
      for (const owner of archives.keys()) if (owner > after && (best === null || owner < best)) best = owner;
      return best;
    },
  };
}

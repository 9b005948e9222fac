/**
 * XEP-0313 message archives: the store contract, the query semantics every backend shares, and
 * the in-memory backend (unit tests; the SQLite one is archive-sqlite.ts).
 *
 * Each account's archive is one ordered list: the order is the order of appending (a store-wide
 * sequence), not the stamp, so that paging by id (XEP-0059 after/before, XEP-0313 after-id /
 * before-id) is well defined even when two messages share a millisecond.
 */

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
  /** The server-assigned id (also the XEP-0359 stanza-id given to the delivered message). */
  id: string;
  /** When the server accepted it (the XEP-0203 delay stamp of a result). */
  stamp: Date;
  /** The contact: 'to' of an outgoing message, 'from' of an incoming one (full or bare). */
  with: string;
  /** The message as routed (with the stamped 'from'), without this server's stanza-ids. */
  stanza: string;
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
  /** XEP-0313 §4.3 'complete': no further page in the direction of paging. */
  complete: boolean;
  /** Messages matching the filters (XEP-0059 <count/>). */
  count: number;
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
   * Add a message. A backend may batch appends and write them at the end of the event-loop turn
   * (archive-sqlite.ts); every read below sees it at once all the same.
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

interface Row extends ArchivedMessage {
  seq: number;
}

/**
 * The paging rules over rows already filtered and ordered oldest first, for backends that filter
 * in memory. `position(id)` gives an id's sequence number in the whole archive (undefined: not
 * there), so that after/before ids outside the filtered set still cut the list.
 */
export function pageOf(rows: readonly Row[], q: ArchiveQuery, position: (id: string) => number | undefined): ArchivePage {
  const seqOf = (id: string): number => {
    const s = position(id);
    if (s === undefined) throw new UnknownArchiveId(id);
    return s;
  };
  let list = rows;
  if (q.afterId !== undefined) {
    const s = seqOf(q.afterId);
    list = list.filter((r) => r.seq > s);
  }
  if (q.beforeId !== undefined) {
    const s = seqOf(q.beforeId);
    list = list.filter((r) => r.seq < s);
  }
  const count = list.length;
  const strip = (r: Row): ArchivedMessage => ({ id: r.id, stamp: new Date(r.stamp), with: r.with, stanza: r.stanza });
  if (q.before !== undefined) {
    // XEP-0059 §2.5: paging backwards; an empty <before/> is the last page.
    const limit = q.before === '' ? Infinity : seqOf(q.before);
    const upTo = list.filter((r) => r.seq < limit);
    const items = q.max === 0 ? [] : upTo.slice(Math.max(0, upTo.length - q.max));
    return { items: items.map(strip), complete: upTo.length <= q.max, count };
  }
  const start = q.after === undefined ? -Infinity : seqOf(q.after);
  const from = list.filter((r) => r.seq > start);
  return { items: from.slice(0, q.max).map(strip), complete: from.length <= q.max, count };
}

/** The in-memory archive (every account's list in one Map); `open()` throws once closed. */
export function createMemoryArchive(open: () => void): ArchiveStore & { deleteOwner(owner: string): void } {
  const archives = new Map<string, Row[]>();
  const prefsByOwner = new Map<string, ArchivePrefs>();
  let seq = 0;
  const matches = (r: Row, q: ArchiveQuery): boolean =>
    (q.with === undefined || withMatches(q.with, r.with)) &&
    (q.start === undefined || r.stamp.getTime() >= q.start.getTime()) &&
    (q.end === undefined || r.stamp.getTime() <= q.end.getTime()) &&
    (q.ids === undefined || q.ids.includes(r.id));
  return {
    append(e) {
      open();
      let list = archives.get(e.owner);
      if (!list) archives.set(e.owner, (list = []));
      if (list.some((r) => r.id === e.id)) return;
      list.push({ seq: ++seq, id: e.id, stamp: new Date(e.stamp), with: e.with, stanza: e.stanza });
    },
    query(owner, q) {
      open();
      const all = archives.get(owner) ?? [];
      return pageOf(
        all.filter((r) => matches(r, q)),
        q,
        (id) => all.find((r) => r.id === id)?.seq,
      );
    },
    bounds(owner) {
      open();
      const all = archives.get(owner);
      if (!all || all.length === 0) return null;
      const copy = (r: Row): ArchivedMessage => ({ id: r.id, stamp: new Date(r.stamp), with: r.with, stanza: r.stanza });
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
  };
}

/**
 * An in-process copy of recently read rosters, in front of a RosterStore.
 *
 * Why: every presence broadcast (RFC 6121 §4.2.2, §4.4.2, §4.5.2) reads the sender's whole
 * roster. From SQLite that is a query plus one object and one JSON.parse per item (~110 µs for
 * 20 items, measured), most of a broadcast's cost; from this cache it is a Map lookup.
 *
 * Correctness rests on two rules:
 * - every write that goes through this store (set, remove) drops the owner's copy, so the next
 *   read sees it; the owning storage also calls forget() for writes made around it (account
 *   deletion removes the roster in the same transaction as the account);
 * - writes made by anyone else are noticed through `changedElsewhere()`, asked before every
 *   read, and empty the whole cache. For SQLite (src/storage/sqlite.ts) that is a counter in
 *   shared memory bumped by every shard's cache on each write (exact, an atomic load per read),
 *   and a counter in the meta table at most every 250 ms for other processes (`hermod
 *   deluser` bumps it; a read costs microseconds, too much to ask per broadcast).
 *
 * list() and get() return copies, as the store itself does (RosterStore promises that a caller
 * editing a returned item changes nothing stored); peek() returns the cached items themselves,
 * for the presence path, which only reads them (copying 20 items costs 1–3 µs).
 */
import type { RosterItem, RosterStore } from './types.js';

export interface RosterCacheOptions {
  /** Rosters kept at most (least recently read evicted first); 0 disables the cache. */
  maxOwners: number;
  /** True when the store was written by someone else since the last call. */
  changedElsewhere: () => boolean;
  /** Told after each write through this store (to tell the other caches). */
  wrote?: () => void;
}

export interface CachedRosterStore extends RosterStore {
  /** Drop one owner's copy (a write made without going through this store). */
  forget(owner: string): void;
  /** Rosters currently held (for tests and metrics). */
  readonly size: number;
}

const copy = (item: RosterItem): RosterItem => ({ ...item, groups: item.groups.slice() });

export function cacheRosters(inner: RosterStore, opts: RosterCacheOptions): CachedRosterStore {
  const cache = new Map<string, readonly RosterItem[]>();
  const max = opts.maxOwners;

  const fresh = (): void => {
    if (opts.changedElsewhere()) cache.clear();
  };
  const cached = (owner: string): readonly RosterItem[] | undefined => {
    fresh();
    const items = cache.get(owner);
    if (items !== undefined) {
      // Least recently read goes first: re-inserting moves the owner to the end.
      cache.delete(owner);
      cache.set(owner, items);
    }
    return items;
  };

  return {
    get(owner, contact) {
      let items = cached(owner);
      if (items === undefined) {
        if (max <= 0) return inner.get(owner, contact);
        // Read the whole roster once: a per-message question (XEP-0313 'roster' preference,
        // is this contact in the roster?) would otherwise be a query every time.
        items = inner.list(owner).map(copy);
        if (cache.size >= max) cache.delete(cache.keys().next().value as string);
        cache.set(owner, items);
      }
      for (const item of items) if (item.jid === contact) return copy(item);
      return null;
    },
    list(owner) {
      const items = cached(owner);
      if (items !== undefined) return items.map(copy);
      const read = inner.list(owner);
      if (max > 0) {
        if (cache.size >= max) cache.delete(cache.keys().next().value as string);
        cache.set(owner, read.map(copy));
      }
      return read;
    },
    peek(owner) {
      const items = cached(owner);
      if (items !== undefined) return items;
      const read = inner.list(owner);
      if (max > 0) {
        if (cache.size >= max) cache.delete(cache.keys().next().value as string);
        cache.set(owner, read);
      }
      return read;
    },
    set(owner, item) {
      try {
        return inner.set(owner, item);
      } finally {
        cache.delete(owner);
        opts.wrote?.();
      }
    },
    remove(owner, contact) {
      try {
        return inner.remove(owner, contact);
      } finally {
        cache.delete(owner);
        opts.wrote?.();
      }
    },
    version: (owner) => inner.version(owner),
    changesSince: (owner, since) => inner.changesSince(owner, since),
    addPending: (owner, from, stanza) => inner.addPending(owner, from, stanza),
    removePending: (owner, from) => inner.removePending(owner, from),
    getPending: (owner, from) => inner.getPending(owner, from),
    listPending: (owner) => inner.listPending(owner),
    forget(owner) {
      cache.delete(owner);
      // A write made around this store (account deletion): the other shards drop their copies too.
      opts.wrote?.();
    },
    get size() {
      return cache.size;
    },
  };
}

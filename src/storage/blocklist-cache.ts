/**
 * An in-process copy of XEP-0191 blocklists, in front of a BlocklistStore.
 *
 * Why: blocking is checked on every stanza a client sends (two lists: the sender's and the
 * addressee's) and on every presence a broadcast fans out. A query per check is out of the
 * question, and a time-to-live is both a clock read per check and a window in which another
 * shard's block is not yet honoured. This cache is exact without either:
 * - every write through it (add, remove, clear) drops the owner's copy at once and tells the
 *   other shards (`wrote()`: a shared Int32 epoch), whose caches empty before their next read
 *   (`changedElsewhere()`: an atomic load, no clock);
 * - writes by other processes (`hermod deluser`) reach `changedElsewhere()` through the owning
 *   storage (src/storage/sqlite.ts polls a counter those processes bump, on a timer, not per read).
 *
 * Most accounts block nobody, and on many servers nobody blocks anybody: `anyBlocked()`
 * answers that with one query after each change, so the per-stanza check is an integer compare
 * until the first block exists; lists of accounts without a block share one empty Set.
 */
import type { BlocklistStore } from './types.js';

export interface BlocklistCacheOptions {
  /** Lists kept at most (the first read evicted first); 0 disables the per-owner copies. */
  maxOwners: number;
  /** True when the store was written by someone else since the last call. */
  changedElsewhere: () => boolean;
  /** Told after each write through this store (to tell the other caches). */
  wrote?: () => void;
  /** Whether any account blocks anything, asked of the store after each change (one query). */
  anyStored: () => boolean;
}

export interface CachedBlocklistStore extends BlocklistStore {
  peek(owner: string): ReadonlySet<string>;
  anyBlocked(): boolean;
  /** Drop one owner's copy (a write made without going through this store: account deletion). */
  forget(owner: string): void;
  /** Lists currently held (for tests and metrics). */
  readonly size: number;
}

const EMPTY: ReadonlySet<string> = new Set<string>();

export function cacheBlocklists(inner: BlocklistStore, opts: BlocklistCacheOptions): CachedBlocklistStore {
  const cache = new Map<string, ReadonlySet<string>>();
  const max = opts.maxOwners;
  /** null: not known since the last change. */
  let any: boolean | null = null;

  const fresh = (): void => {
    if (opts.changedElsewhere()) {
      cache.clear();
      any = null;
    }
  };
  const changed = (owner: string): void => {
    cache.delete(owner);
    any = null;
    opts.wrote?.();
  };
  const anyBlocked = (): boolean => {
    fresh();
    return (any ??= opts.anyStored());
  };

  return {
    list: (owner) => inner.list(owner),
    add(owner, jids) {
      try {
        return inner.add(owner, jids);
      } finally {
        changed(owner);
      }
    },
    remove(owner, jids) {
      try {
        return inner.remove(owner, jids);
      } finally {
        changed(owner);
      }
    },
    clear(owner) {
      try {
        return inner.clear(owner);
      } finally {
        changed(owner);
      }
    },
    anyBlocked,
    peek(owner) {
      if (!anyBlocked()) return EMPTY;
      let set = cache.get(owner);
      // A hit is returned as is: unlike the roster cache (read per broadcast), this one is read
      // twice per stanza, and moving the owner to the end of the Map for LRU order doubled the
      // cost of a check (bench/core/blocklist.ts). Eviction is oldest-read-first instead.
      if (set !== undefined) return set;
      const items = inner.list(owner);
      set = items.length === 0 ? EMPTY : new Set(items);
      if (max > 0) {
        if (cache.size >= max) cache.delete(cache.keys().next().value as string);
        cache.set(owner, set);
      }
      return set;
    },
    forget(owner) {
      // A write made around this store (account deletion) is news to the other shards as well.
      changed(owner);
    },
    get size() {
      return cache.size;
    },
  };
}

/**
 * An in-process copy of XEP-0441 archiving preferences, in front of an archive store.
 *
 * Why: the archive decision reads the preferences of the sender and of the recipient for every
 * chat message (src/modules/mam.ts 'message/stamp'), and most accounts never set any, so nearly
 * every read is a miss in SQLite. A time-to-live would let a change made on another shard go
 * unheeded for that long (a message archived after the user said 'never'). This copy is exact
 * in the way of the blocklist cache (blocklist-cache.ts):
 * - a write through it drops the owner's copy and tells the other shards (`wrote()`: the shared
 *   Int32 write epoch), whose copies empty before their next read (`changedElsewhere()`: an atomic
 *   load, no clock);
 * - writes by other processes reach `changedElsewhere()` through the owning storage.
 * Accounts without preferences are kept as well (as null): they are the common case.
 */
import type { ArchivePrefs, ArchiveStore } from './archive.js';

export interface PrefsCacheOptions {
  /** Owners kept at most (the first read evicted first); 0 disables the copies. */
  maxOwners: number;
  /** True when the store was written by someone else since the last call. */
  changedElsewhere: () => boolean;
  /** Told after each write through this store (to tell the other caches). */
  wrote?: () => void;
}

export type PrefsCached<S extends ArchiveStore> = S & {
  /** Drop one owner's copy (a write made around this store: account deletion). */
  forgetPrefs(owner: string): void;
  /** Owners currently held (tests). */
  readonly prefsCached: number;
};

/** The same store with prefs() answered from memory; the returned preferences are shared: read, never change them. */
export function cachePrefs<S extends ArchiveStore>(inner: S, opts: PrefsCacheOptions): PrefsCached<S> {
  const cache = new Map<string, ArchivePrefs | null>();
  const changed = (owner: string): void => {
    cache.delete(owner);
    opts.wrote?.();
  };
  const store = Object.create(inner) as PrefsCached<S>;
  Object.defineProperties(store, {
    prefs: {
      value(owner: string): ArchivePrefs | null {
        if (opts.changedElsewhere()) cache.clear();
        const hit = cache.get(owner);
        if (hit !== undefined) return hit;
        const prefs = inner.prefs(owner);
        if (opts.maxOwners > 0) {
          if (cache.size >= opts.maxOwners) cache.delete(cache.keys().next().value as string);
          cache.set(owner, prefs);
        }
        return prefs;
      },
    },
    setPrefs: {
      value(owner: string, prefs: ArchivePrefs): void {
        try {
          inner.setPrefs(owner, prefs);
        } finally {
          changed(owner);
        }
      },
    },
    deleteOwner: {
      value(owner: string): void {
        // Room archives have no preferences: their deletion is no news to other caches.
        const had = inner.prefs(owner) !== null;
        try {
          inner.deleteOwner?.(owner);
        } finally {
          cache.delete(owner);
          if (had) opts.wrote?.();
        }
      },
    },
    forgetPrefs: { value: changed },
    prefsCached: { get: () => cache.size },
  });
  return store;
}

/**
 * Writes to the per-account XML store that may wait for the end of the event-loop turn.
 *
 * Why: XEP-0012 records every logout (src/modules/last.ts). Written one statement at a time, a
 * reconnect storm paid a SQLite commit per closed stream (4.4 % of a login's server CPU in the
 * profile, docs/benchmarks.md "Logins, fourth pass"); gathered per turn, the logouts of one turn
 * share one transaction. What a caller must still be able to rely on:
 * - a read sees a deferred write at once (a jabber:iq:last query right after the logout);
 * - every other write, and account deletion, comes after the deferred ones (the store flushes
 *   them first), so the order of writes to a key is the order of the calls;
 * - close() writes them (a clean shutdown loses nothing). A crash loses at most the deferred
 *   writes of the turn it happened in, the same window as a write that had not run yet.
 */
import type { XmlStore } from './types.js';

export interface BatchedXmlStore extends XmlStore {
  setSoon(owner: string, key: string, xml: string): void;
  /** Write what is deferred now (before a delete, at close); throws what the write throws. */
  flush(): void;
  /** Deferred writes not yet written (tests, metrics). */
  readonly pending: number;
}

export type XmlRow = readonly [owner: string, key: string, xml: string];

/**
 * `writeAll` writes the rows in one transaction. `schedule` runs the end-of-turn flush
 * (setImmediate; tests may pass their own).
 */
export function batchXmlWrites(
  inner: XmlStore,
  writeAll: (rows: readonly XmlRow[]) => void,
  schedule: (run: () => void) => void = setImmediate,
): BatchedXmlStore {
  /** owner NUL key → row; a later write to the same key replaces the earlier one. */
  const deferred = new Map<string, XmlRow>();
  let scheduled = false;

  const flush = (): void => {
    if (deferred.size === 0) return;
    writeAll([...deferred.values()]);
    deferred.clear();
  };
  const flushAtTurnEnd = (): void => {
    scheduled = false;
    try {
      flush();
    } catch (err) {
      // Kept: reads still see the rows, and the next write or close() tries again.
      process.emitWarning(err as Error, 'HermodStorageWarning');
    }
  };
  const before = (): void => {
    if (deferred.size > 0) flush();
  };

  return {
    get(owner, key) {
      if (deferred.size > 0) {
        const row = deferred.get(owner + '\0' + key);
        if (row !== undefined) return row[2];
      }
      return inner.get(owner, key);
    },
    set(owner, key, xml) {
      before();
      inner.set(owner, key, xml);
    },
    remove(owner, key) {
      before();
      return inner.remove(owner, key);
    },
    count: inner.count
      ? (owner, prefix) => {
          before();
          return inner.count!(owner, prefix);
        }
      : undefined,
    setSoon(owner, key, xml) {
      deferred.set(owner + '\0' + key, [owner, key, xml]);
      if (!scheduled) {
        scheduled = true;
        schedule(flushAtTurnEnd);
      }
    },
    flush,
    get pending() {
      return deferred.size;
    },
  };
}

/**
 * What XEP-0191 blocking costs each stanza: the sender's and the addressee's blocklists looked
 * up and matched, as the 'stanza/pre-route' handler does, for
 * - the old per-module cache (a Set per owner trusted for 2 s: `Date.now()` per lookup and a
 *   SQLite query per owner every 2 s), re-created here for the comparison;
 * - the store's exact cache (src/storage/blocklist-cache.ts: `anyBlocked()`, then `peek()`),
 * with nobody blocking anything, and with 10 % of the accounts blocking 20 JIDs each.
 *
 *   node dist/bench/core/blocklist.js [--owners 1000] [--checks 2000000] [--json]
 */
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Jid } from '../../src/jid.js';
import { blockMatches } from '../../src/modules/blocking.js';
import { openSqliteStorage, type SqliteStorage } from '../../src/storage/sqlite.js';
import { nowNs, numArg, report, round, type Row } from './shard-common.js';

const owners = numArg('owners', 1000);
const checks = numArg('checks', 2_000_000);
const rows: Row[] = [];
const EMPTY: ReadonlySet<string> = new Set();
const jids = Array.from({ length: owners }, (_, i) => Jid.parse(`u${i}@localhost/r`));

/** The module's cache before this change: trusted for 2 s after each read. */
class TtlLists {
  private readonly cache = new Map<string, { set: ReadonlySet<string>; at: number }>();
  constructor(private readonly s: SqliteStorage) {}
  get(owner: string): ReadonlySet<string> {
    const now = Date.now();
    let entry = this.cache.get(owner);
    if (entry === undefined || now - entry.at > 2000) {
      entry = { set: new Set(this.s.blocklist.list(owner)), at: now };
      this.cache.set(owner, entry);
    }
    return entry.set;
  }
}

/** `checks` sender → addressee pairs, each checked both ways; returns ns per stanza. */
function measure(lookup: (owner: string) => ReadonlySet<string>, any: () => boolean): { ns: number; hits: number } {
  let hits = 0;
  const t0 = nowNs();
  for (let i = 0; i < checks; i++) {
    const from = jids[i % owners]!;
    const to = jids[(i * 7919 + 1) % owners]!;
    if (!any()) continue;
    if (blockMatches(lookup(from.bare), to) || blockMatches(lookup(to.bare), from)) hits++;
  }
  return { ns: Number(nowNs() - t0) / checks, hits };
}

const dataDir = mkdtempSync(join(tmpdir(), 'hermod-blocklist-'));
try {
  for (const blocking of [false, true]) {
    const s = openSqliteStorage({ dataDir, iterations: 16 });
    if (blocking) {
      for (let o = 0; o < owners; o += 10) {
        s.blocklist.add(`u${o}@localhost`, Array.from({ length: 20 }, (_, k) => `u${(o + 3 * k + 1) % owners}@localhost`));
      }
    }
    const label = blocking ? '10 % of accounts block 20 JIDs' : 'nobody blocks anything';
    for (let round_ = 0; round_ < 2; round_++) {
      const loop = measure(() => EMPTY, () => false);
      rows.push({ case: `the loop alone (no check), ${label}`, 'ns/stanza': round(loop.ns), blocked: loop.hits });
      const ttl = new TtlLists(s);
      const old = measure((o) => ttl.get(o), () => true);
      rows.push({ case: `2 s TTL (before), ${label}`, 'ns/stanza': round(old.ns), blocked: old.hits });
      const now = measure((o) => s.blocklist.peek!(o), () => s.blocklist.anyBlocked!());
      rows.push({ case: `exact cache, ${label}`, 'ns/stanza': round(now.ns), blocked: now.hits });
      if (old.hits !== now.hits) throw new Error(`the two caches disagree: ${old.hits} vs ${now.hits} blocked`);
    }
    s.close();
  }
} finally {
  rmSync(dataDir, { recursive: true, force: true });
}
report(`blocking check per stanza (${owners} accounts, ${checks} stanzas per case)`, rows);

/**
 * In-memory storage, for unit tests only: nothing survives the process. It follows the same
 * conformance suite as the SQLite backend (test/unit/storage.test.ts).
 */
import { cleanRosterItem, DEFAULT_LIST_LIMIT, diffRoster, parseAccount, resolveOptions, uniq } from './common.js';
import { createMemoryArchive } from './archive.js';
import { toStoredPassword } from './password.js';
import { subscriberNeedle, SUBSCRIPTIONS_KEY, withoutSubscriber } from './pep-subscriptions.js';
import { affiliateNeedle, withoutAffiliate } from './muc-affiliations.js';
import {
  AccountError,
  type BlocklistStore,
  type XmlStore,
  type OfflineMessage,
  type OfflineStore,
  type PendingSubscription,
  type MucStore,
  type PepItem,
  type PepStore,
  type RosterItem,
  type RosterStore,
  type ScramCredentials,
  type ScramHash,
  type Storage,
  type StorageOptions,
  type StoredPassword,
  type UserListOptions,
  type UserStore,
} from './types.js';

interface Account {
  domain: string;
  password: StoredPassword;
}

function copyCredentials(c: ScramCredentials): ScramCredentials {
  return { salt: Buffer.from(c.salt), iterations: c.iterations, storedKey: Buffer.from(c.storedKey), serverKey: Buffer.from(c.serverKey) };
}

export function createMemoryStorage(options?: StorageOptions): Storage {
  const { iterations, offlineLimit } = resolveOptions(options);
  const accounts = new Map<string, Account>();
  const rosters = new Map<string, Map<string, { item: RosterItem; version: number }>>();
  /** Current version and floor (first version since the account was created) per roster. */
  const versions = new Map<string, { version: number; floor: number }>();
  /** Removed contacts and the version that removed them, per roster (RFC 6121 §2.6.3 diffs). */
  const removed = new Map<string, Map<string, number>>();
  const pending = new Map<string, Map<string, PendingSubscription>>();
  const offline = new Map<string, OfflineMessage[]>();
  const blocks = new Map<string, Set<string>>();
  const xmlDocs = new Map<string, Map<string, string>>();
  /** PEP per account → node → config and items (a Map keeps insertion order: oldest item first). */
  const pepNodes = new Map<string, Map<string, { config: Record<string, string>; items: Map<string, PepItem> }>>();
  let rosterSeq = 0;
  let closed = false;

  const open = (): void => {
    if (closed) throw new Error('storage is closed');
  };
  const archive = createMemoryArchive(open);

  const bump = (owner: string): number => {
    rosterSeq += 1;
    versions.set(owner, { version: rosterSeq, floor: versions.get(owner)?.floor ?? rosterSeq });
    return rosterSeq;
  };

  const users: UserStore = {
    create(account, password) {
      open();
      const { bare, domain } = parseAccount(account);
      const stored = toStoredPassword(password, iterations);
      if (accounts.has(bare)) throw new AccountError('exists', `user ${bare} already exists`);
      accounts.set(bare, { domain, password: stored });
    },
    delete(account) {
      open();
      if (!accounts.delete(account)) return false;
      rosters.delete(account);
      versions.delete(account);
      removed.delete(account);
      pending.delete(account);
      offline.delete(account);
      blocks.delete(account);
      xmlDocs.delete(account);
      pepNodes.delete(account);
      // XEP-0060 §6.1: its subscriptions to other owners' PEP nodes go too (as in SQLite).
      for (const docs of xmlDocs.values()) {
        const old = docs.get(SUBSCRIPTIONS_KEY);
        const doc = old?.includes(subscriberNeedle(account)) ? withoutSubscriber(old, account) : undefined;
        if (doc === null) docs.delete(SUBSCRIPTIONS_KEY);
        else if (doc !== undefined) docs.set(SUBSCRIPTIONS_KEY, doc);
      }
      // XEP-0045 §5.2: its room affiliations but bans go too (as in SQLite).
      for (const [room, old] of mucRooms) {
        const data = old.includes(affiliateNeedle(account)) ? withoutAffiliate(old, account) : undefined;
        if (data !== undefined) mucRooms.set(room, data);
      }
      archive.deleteOwner(account);
      return true;
    },
    setPassword(account, password) {
      open();
      const existing = accounts.get(account);
      const stored = toStoredPassword(password, iterations);
      if (!existing) return false;
      existing.password = stored;
      return true;
    },
    exists(account) {
      open();
      return accounts.has(account);
    },
    list(opts: UserListOptions = {}) {
      open();
      const limit = opts.limit ?? DEFAULT_LIST_LIMIT;
      const out: string[] = [];
      // Code-point order, as SQLite's BINARY collation gives for UTF-8 text.
      const sorted = [...accounts.keys()].sort((a, b) => (Buffer.compare(Buffer.from(a), Buffer.from(b))));
      for (const bare of sorted) {
        if (out.length >= limit) break;
        if (opts.domain !== undefined && accounts.get(bare)!.domain !== opts.domain) continue;
        if (opts.after !== undefined && Buffer.compare(Buffer.from(bare), Buffer.from(opts.after)) <= 0) continue;
        out.push(bare);
      }
      return out;
    },
    count(domain) {
      open();
      if (domain === undefined) return accounts.size;
      let n = 0;
      for (const a of accounts.values()) if (a.domain === domain) n += 1;
      return n;
    },
    getScramCredentials(account, hash: ScramHash) {
      open();
      const a = accounts.get(account);
      return a ? copyCredentials(a.password[hash]) : null;
    },
  };

  const rosterStore: RosterStore = {
    get(owner, contact) {
      open();
      const entry = rosters.get(owner)?.get(contact);
      return entry ? cleanRosterItem(entry.item) : null;
    },
    set(owner, item) {
      open();
      let roster = rosters.get(owner);
      if (!roster) rosters.set(owner, (roster = new Map()));
      const version = bump(owner);
      roster.set(item.jid, { item: cleanRosterItem(item), version });
      removed.get(owner)?.delete(item.jid);
      return version;
    },
    remove(owner, contact) {
      open();
      if (!rosters.get(owner)?.delete(contact)) return null;
      const version = bump(owner);
      let gone = removed.get(owner);
      if (!gone) removed.set(owner, (gone = new Map()));
      gone.set(contact, version);
      return version;
    },
    list(owner) {
      open();
      const roster = rosters.get(owner);
      if (!roster) return [];
      return [...roster.values()]
        .map((e) => cleanRosterItem(e.item))
        .sort((a, b) => Buffer.compare(Buffer.from(a.jid), Buffer.from(b.jid)));
    },
    version(owner) {
      open();
      return versions.get(owner)?.version ?? 0;
    },
    changesSince(owner, since) {
      open();
      return diffRoster(
        versions.get(owner) ?? null,
        since,
        () =>
          [...(rosters.get(owner)?.values() ?? [])]
            .filter((e) => e.version > since)
            .map((e) => ({ version: e.version, item: cleanRosterItem(e.item) })),
        () => [...(removed.get(owner) ?? [])].filter(([, v]) => v > since).map(([jid, version]) => ({ version, removed: jid })),
      );
    },
    addPending(owner, from, stanza) {
      open();
      let map = pending.get(owner);
      if (!map) pending.set(owner, (map = new Map()));
      // Re-insert so that a renewed request moves to the end (oldest-first order by arrival).
      map.delete(from);
      map.set(from, { from, stanza, stamp: new Date() });
    },
    removePending(owner, from) {
      open();
      return pending.get(owner)?.delete(from) ?? false;
    },
    getPending(owner, from) {
      open();
      const p = pending.get(owner)?.get(from);
      return p ? { ...p } : null;
    },
    listPending(owner) {
      open();
      return [...(pending.get(owner)?.values() ?? [])].map((p) => ({ ...p }));
    },
  };

  const offlineStore: OfflineStore = {
    push(account, stanza, stamp = new Date()) {
      open();
      let queue = offline.get(account);
      if (!queue) offline.set(account, (queue = []));
      if (queue.length >= offlineLimit) return false;
      queue.push({ stanza, stamp });
      return true;
    },
    takeAll(account) {
      open();
      const queue = offline.get(account) ?? [];
      offline.delete(account);
      return queue;
    },
    count(account) {
      open();
      return offline.get(account)?.length ?? 0;
    },
  };

  const NO_BLOCKS: ReadonlySet<string> = new Set();
  const byCodePoint = (a: string, b: string) => Buffer.compare(Buffer.from(a), Buffer.from(b));
  const blocklist: BlocklistStore = {
    list(owner) {
      open();
      return [...(blocks.get(owner) ?? [])].sort(byCodePoint);
    },
    add(owner, jids) {
      open();
      let set = blocks.get(owner);
      if (!set) blocks.set(owner, (set = new Set()));
      const added = uniq(jids).filter((j) => !set.has(j));
      for (const j of added) set.add(j);
      return added;
    },
    remove(owner, jids) {
      open();
      const set = blocks.get(owner);
      if (!set) return [];
      const removed = uniq(jids).filter((j) => set.delete(j));
      if (set.size === 0) blocks.delete(owner); // keeps anyBlocked() a size check
      return removed;
    },
    clear(owner) {
      open();
      const all = blocklist.list(owner);
      blocks.delete(owner);
      return all;
    },
    // The live set itself: this store has no other writer to be stale against.
    peek(owner) {
      open();
      return blocks.get(owner) ?? NO_BLOCKS;
    },
    anyBlocked() {
      open();
      return blocks.size > 0;
    },
  };

  const xml: XmlStore = {
    get(owner, key) {
      open();
      return xmlDocs.get(owner)?.get(key) ?? null;
    },
    set(owner, key, doc) {
      open();
      let map = xmlDocs.get(owner);
      if (!map) xmlDocs.set(owner, (map = new Map()));
      map.set(key, doc);
    },
    remove(owner, key) {
      open();
      return xmlDocs.get(owner)?.delete(key) ?? false;
    },
    // XEP-0012's logout record: nothing to batch in memory, so written at once, but kept only while
    // its owner is an account, as the SQLite store's batch does: XEP-0077 removal and `hermod
    // deluser` delete the account before its streams close, and the record those closes make
    // would otherwise reach whoever registers the name next.
    setSoon(owner, key, doc) {
      open();
      if (accounts.has(owner)) xml.set(owner, key, doc);
    },
    count(owner, prefix) {
      open();
      let n = 0;
      for (const key of xmlDocs.get(owner)?.keys() ?? []) if (key.startsWith(prefix)) n++;
      return n;
    },
  };

  const pepEntry = (owner: string, node: string) => {
    open();
    return pepNodes.get(owner)?.get(node);
  };
  const copyItem = (i: PepItem): PepItem => ({ ...i, stamp: new Date(i.stamp), publisher: i.publisher ?? null });
  const pepTrim = (owner: string, node: string, keep: number): string[] => {
    const items = pepEntry(owner, node)?.items;
    if (!items) return [];
    const drop = [...items.keys()].slice(0, Math.max(0, items.size - Math.max(0, keep)));
    for (const id of drop) items.delete(id);
    return drop;
  };
  const pep: PepStore = {
    nodes(owner) {
      open();
      return [...(pepNodes.get(owner) ?? [])]
        .map(([node, e]) => ({ node, config: { ...e.config } }))
        .sort((a, b) => byCodePoint(a.node, b.node));
    },
    node(owner, node) {
      const e = pepEntry(owner, node);
      return e ? { node, config: { ...e.config } } : null;
    },
    setNode(owner, node, config) {
      const e = pepEntry(owner, node);
      if (e) e.config = { ...config };
      else {
        let map = pepNodes.get(owner);
        if (!map) pepNodes.set(owner, (map = new Map()));
        map.set(node, { config: { ...config }, items: new Map() });
      }
    },
    deleteNode(owner, node) {
      open();
      return pepNodes.get(owner)?.delete(node) ?? false;
    },
    publish(owner, node, item, keep) {
      const e = pepEntry(owner, node);
      if (!e) return [];
      // Delete first so that a replaced id moves to the newest position.
      e.items.delete(item.id);
      e.items.set(item.id, copyItem(item));
      return pepTrim(owner, node, keep);
    },
    trim: pepTrim,
    items(owner, node, max) {
      const all = [...(pepEntry(owner, node)?.items.values() ?? [])].reverse().map(copyItem);
      return max === undefined ? all : all.slice(0, Math.max(0, max));
    },
    item(owner, node, id) {
      const i = pepEntry(owner, node)?.items.get(id);
      return i ? copyItem(i) : null;
    },
    retract(owner, node, id) {
      return pepEntry(owner, node)?.items.delete(id) ?? false;
    },
    purge(owner, node) {
      const items = pepEntry(owner, node)?.items;
      const n = items?.size ?? 0;
      items?.clear();
      return n;
    },
    usage(owner) {
      open();
      let bytes = 0;
      for (const e of pepNodes.get(owner)?.values() ?? []) for (const i of e.items.values()) bytes += Buffer.byteLength(i.xml);
      return bytes;
    },
  };

  // XEP-0045 persistent rooms, by room JID.
  const mucRooms = new Map<string, string>();
  const muc: MucStore = {
    list(service) {
      open();
      return [...mucRooms].filter(([jid]) => jid.slice(jid.indexOf('@') + 1) === service).map(([jid, data]) => ({ jid, data }));
    },
    save(room, data) {
      open();
      mucRooms.set(room, data);
    },
    remove(room) {
      open();
      return mucRooms.delete(room);
    },
  };

  return {
    users,
    rosters: rosterStore,
    offline: offlineStore,
    blocklist,
    xml,
    pep,
    mam: archive,
    muc,
    close() {
      closed = true;
    },
  };
}

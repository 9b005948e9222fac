/**
 * The default storage: one SQLite file, `<dataDir>/hermod.sqlite`, through better-sqlite3.
 *
 * - WAL journal: readers never block the writer, and the CLI (`hermod adduser`) can write while
 *   the server runs; a 5 s busy timeout covers the moments both write.
 * - synchronous=NORMAL (default): in WAL mode a commit appends to the WAL with write(2) before
 *   returning, so once `offline.push()` returns true the message is in the OS page cache and
 *   survives kill -9 of the server (tested by killing a child process). What NORMAL gives up is
 *   the fsync per commit, i.e. the last transactions before a power loss or kernel crash; that
 *   costs a disk flush per stanza stored, which operators who want it enable with
 *   `synchronous: 'FULL'`.
 * - Every statement is prepared once at open; multi-statement changes run in transactions begun
 *   IMMEDIATE: several connections share the file (shard threads, the CLI), and a deferred
 *   transaction that reads then writes can fail with SQLITE_BUSY_SNAPSHOT when another connection
 *   committed in between, a failure the busy timeout does not retry. Taking the write lock at
 *   BEGIN makes a check-then-write (offline limit, user exists) atomic across connections.
 */
import Database from 'better-sqlite3';
import { accessSync, chmodSync, constants, existsSync, mkdirSync, statSync } from 'node:fs';
import { join, resolve } from 'node:path';
import { ConfigError } from '../errors.js';
import { cleanRosterItem, DEFAULT_LIST_LIMIT, diffRoster, parseAccount, resolveOptions, uniq } from './common.js';
import { ARCHIVE_SCHEMA, openSqliteArchive, upgradeArchiveTo8 } from './archive-sqlite.js';
import { cachePrefs } from './archive-prefs-cache.js';
import { toStoredPassword } from './password.js';
import { cacheBlocklists } from './blocklist-cache.js';
import { cacheRosters } from './roster-cache.js';
import { cacheCredentials } from './credential-cache.js';
import { batchXmlWrites, type XmlRow } from './xml-batch.js';
import { subscriberNeedle, SUBSCRIPTIONS_KEY, withoutSubscriber } from './pep-subscriptions.js';
import { affiliateNeedle, withoutAffiliate } from './muc-affiliations.js';
import {
  AccountError,
  SCRAM_HASHES,
  type BlocklistStore,
  type XmlStore,
  type OfflineStore,
  type PepItem,
  type MucStore,
  type PepStore,
  type RosterChanges,
  type RosterItem,
  type RosterStore,
  type ScramHash,
  type Storage,
  type StorageOptions,
  type Subscription,
  type UserStore,
} from './types.js';

export const DATABASE_FILE = 'hermod.sqlite';
/** The schema this build writes; older files are upgraded in place through MIGRATIONS. */
export const SCHEMA_VERSION = 8;

export interface SqliteStorageOptions extends StorageOptions {
  /** Directory holding hermod.sqlite; created (with parents) when missing. */
  dataDir: string;
  /** 'NORMAL' survives process crashes; 'FULL' also survives power loss, slower. */
  synchronous?: 'NORMAL' | 'FULL';
  /**
   * Rosters kept in memory for presence broadcasts (src/storage/roster-cache.ts); 0 turns the
   * cache off. Default 50000.
   */
  rosterCache?: number;
  /**
   * Int32s in shared memory, the same for every connection of this process (the shards):
   * each roster write bumps [0], so every other shard's roster cache empties before its next
   * read; when there is a second element, each blocklist write bumps [1] for the blocklist caches
   * (src/storage/blocklist-cache.ts) in the same way, and when there is a third, each XEP-0441
   * preferences write bumps [2] for the archive preference caches (archive-prefs-cache.ts); a
   * fourth, [3], is bumped on each password change or account deletion for the credential caches
   * (credential-cache.ts), which are off when shards share an epoch without it.
   */
  rosterEpoch?: Int32Array;
  /**
   * XEP-0313 archive batches written by a thread of their own (default) rather than on the
   * event loop (src/storage/archive-sqlite.ts).
   */
  archiveThread?: boolean;
  /** How often (ms) to look for writes by other processes (meta 'cache_epoch'); default 250. */
  externalCheckMs?: number;
  /**
   * Accounts whose SCRAM credentials are kept in memory for logins
   * (src/storage/credential-cache.ts); 0 turns the cache off. Default 50000.
   */
  credentialCache?: number;
}

export const DEFAULT_ROSTER_CACHE = 50_000;
export const DEFAULT_CREDENTIAL_CACHE = 50_000;

const SCHEMA = `
CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value INTEGER NOT NULL) WITHOUT ROWID;
INSERT OR IGNORE INTO meta (key, value) VALUES ('roster_seq', 0);
CREATE TABLE IF NOT EXISTS users (
  account TEXT PRIMARY KEY,
  domain TEXT NOT NULL,
  local TEXT NOT NULL,
  created INTEGER NOT NULL
) WITHOUT ROWID;
CREATE INDEX IF NOT EXISTS users_by_domain ON users (domain, account);
CREATE TABLE IF NOT EXISTS scram (
  account TEXT NOT NULL,
  hash TEXT NOT NULL,
  salt BLOB NOT NULL,
  iterations INTEGER NOT NULL,
  stored_key BLOB NOT NULL,
  server_key BLOB NOT NULL,
  PRIMARY KEY (account, hash)
) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS roster (
  owner TEXT NOT NULL,
  contact TEXT NOT NULL,
  name TEXT,
  groups TEXT NOT NULL,
  subscription TEXT NOT NULL CHECK (subscription IN ('none', 'to', 'from', 'both')),
  ask TEXT CHECK (ask IS NULL OR ask = 'subscribe'),
  approved INTEGER NOT NULL,
  version INTEGER NOT NULL DEFAULT 0,
  PRIMARY KEY (owner, contact)
) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS roster_version (
  owner TEXT PRIMARY KEY,
  version INTEGER NOT NULL,
  floor INTEGER NOT NULL DEFAULT 0
) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS roster_removed (
  owner TEXT NOT NULL,
  contact TEXT NOT NULL,
  version INTEGER NOT NULL,
  PRIMARY KEY (owner, contact)
) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS pending (
  seq INTEGER PRIMARY KEY AUTOINCREMENT,
  owner TEXT NOT NULL,
  contact TEXT NOT NULL,
  stanza TEXT NOT NULL,
  stamp INTEGER NOT NULL,
  UNIQUE (owner, contact)
);
CREATE TABLE IF NOT EXISTS offline (
  seq INTEGER PRIMARY KEY AUTOINCREMENT,
  account TEXT NOT NULL,
  stamp INTEGER NOT NULL,
  stanza TEXT NOT NULL
);
CREATE INDEX IF NOT EXISTS offline_by_account ON offline (account, seq);
CREATE TABLE IF NOT EXISTS blocklist (
  owner TEXT NOT NULL,
  jid TEXT NOT NULL,
  PRIMARY KEY (owner, jid)
) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS xmlstore (
  owner TEXT NOT NULL,
  key TEXT NOT NULL,
  xml TEXT NOT NULL,
  PRIMARY KEY (owner, key)
) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS pep_node (
  owner TEXT NOT NULL,
  node TEXT NOT NULL,
  config TEXT NOT NULL,
  PRIMARY KEY (owner, node)
) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS pep_item (
  seq INTEGER PRIMARY KEY AUTOINCREMENT,
  owner TEXT NOT NULL,
  node TEXT NOT NULL,
  id TEXT NOT NULL,
  stamp INTEGER NOT NULL,
  publisher TEXT,
  xml TEXT NOT NULL,
  UNIQUE (owner, node, id)
);
CREATE INDEX IF NOT EXISTS pep_item_by_node ON pep_item (owner, node, seq);
CREATE TABLE IF NOT EXISTS muc_room (
  jid TEXT PRIMARY KEY,
  service TEXT NOT NULL,
  data TEXT NOT NULL
) WITHOUT ROWID;
${ARCHIVE_SCHEMA}`;

/**
 * Schema upgrades, by the version they start from. `floor` of a migrated roster is its current
 * version: changes before it were not recorded, so older cached versions get the whole roster.
 */
const MIGRATIONS: Record<number, string | ((db: Database.Database) => void)> = {
  1: `
ALTER TABLE roster ADD COLUMN version INTEGER NOT NULL DEFAULT 0;
ALTER TABLE roster_version ADD COLUMN floor INTEGER NOT NULL DEFAULT 0;
UPDATE roster_version SET floor = version;
`,
  // Schema 3 only adds the XEP-0191 blocklist table; existing data is untouched.
  2: `
CREATE TABLE IF NOT EXISTS blocklist (owner TEXT NOT NULL, jid TEXT NOT NULL, PRIMARY KEY (owner, jid)) WITHOUT ROWID;
`,
  // Schema 4 only adds the per-account XML table (XEP-0049, XEP-0054).
  3: `
CREATE TABLE IF NOT EXISTS xmlstore (owner TEXT NOT NULL, key TEXT NOT NULL, xml TEXT NOT NULL, PRIMARY KEY (owner, key)) WITHOUT ROWID;
`,
  // Schema 5 only adds the XEP-0163 PEP tables (the SCHEMA text after the loop creates them).
  4: ``,
  // Schema 6 only adds the XEP-0313 archive tables (likewise created by the SCHEMA text).
  5: ``,
  // Schema 7 only adds the XEP-0045 persistent room table (likewise created by the SCHEMA text).
  6: ``,
  // Schema 8: XEP-0313 room archives share the archive table, with the sender's real JID.
  7: upgradeArchiveTo8,
};

/** Make sure the data directory exists and is writable, or say clearly why not. */
function prepareDataDir(dataDir: string): string {
  const dir = resolve(dataDir);
  if (existsSync(dir) && !statSync(dir).isDirectory()) {
    throw new ConfigError(`data directory ${dir} exists but is not a directory`, 'data');
  }
  try {
    // The file holds SCRAM ServerKeys (enough to impersonate the server): private by default.
    mkdirSync(dir, { recursive: true, mode: 0o700 });
  } catch (err) {
    throw new ConfigError(`cannot create data directory ${dir}: ${(err as Error).message}`, 'data');
  }
  try {
    accessSync(dir, constants.W_OK | constants.R_OK | constants.X_OK);
  } catch (err) {
    throw new ConfigError(`data directory ${dir} is not writable: ${(err as Error).message}`, 'data');
  }
  return dir;
}

interface RosterRow {
  contact: string;
  name: string | null;
  groups: string;
  subscription: Subscription;
  ask: 'subscribe' | null;
  approved: number;
}

function rowToItem(row: RosterRow): RosterItem {
  return {
    jid: row.contact,
    name: row.name,
    groups: JSON.parse(row.groups) as string[],
    subscription: row.subscription,
    ask: row.ask,
    approved: row.approved !== 0,
  };
}

export interface SqliteStorage extends Storage {
  /** Absolute path of the database file. */
  readonly file: string;
  /** What SQLite reports for this connection (read back, not what was asked). */
  readonly settings: { journalMode: string; synchronous: 'NORMAL' | 'FULL' | 'OTHER' };
}

export function openSqliteStorage(options: SqliteStorageOptions): SqliteStorage {
  const { iterations, offlineLimit } = resolveOptions(options);
  const dir = prepareDataDir(options.dataDir);
  const file = join(dir, DATABASE_FILE);
  const created = !existsSync(file);
  let db: Database.Database;
  try {
    db = new Database(file, { timeout: 5000 });
    // SQLite gives the -wal and -shm files the mode of the database file.
    if (created) chmodSync(file, 0o600);
    db.pragma('journal_mode = WAL');
    db.pragma(`synchronous = ${options.synchronous === 'FULL' ? 'FULL' : 'NORMAL'}`);
    const version = db.pragma('user_version', { simple: true }) as number;
    if (version > SCHEMA_VERSION) {
      db.close();
      throw new ConfigError(`${file} was written by a newer Hermod (schema ${version} > ${SCHEMA_VERSION})`, 'data');
    }
    db.transaction(() => {
      for (let v = version; v > 0 && v < SCHEMA_VERSION; v++) {
        const step = MIGRATIONS[v]!;
        if (typeof step === 'string') db.exec(step);
        else step(db);
      }
      db.exec(SCHEMA);
      db.pragma(`user_version = ${SCHEMA_VERSION}`);
    }).immediate();
  } catch (err) {
    if (err instanceof ConfigError) throw err;
    throw new ConfigError(`cannot open ${file}: ${(err as Error).message}`, 'data');
  }

  const q = {
    userInsert: db.prepare('INSERT INTO users (account, domain, local, created) VALUES (?, ?, ?, ?)'),
    userExists: db.prepare('SELECT 1 FROM users WHERE account = ?').pluck(),
    userDelete: db.prepare('DELETE FROM users WHERE account = ?'),
    userList: db.prepare('SELECT account FROM users WHERE account > ? ORDER BY account LIMIT ?').pluck(),
    userListDomain: db
      .prepare('SELECT account FROM users WHERE domain = ? AND account > ? ORDER BY account LIMIT ?')
      .pluck(),
    userCount: db.prepare('SELECT count(*) FROM users').pluck(),
    userCountDomain: db.prepare('SELECT count(*) FROM users WHERE domain = ?').pluck(),
    scramUpsert: db.prepare(
      'INSERT OR REPLACE INTO scram (account, hash, salt, iterations, stored_key, server_key) VALUES (?, ?, ?, ?, ?, ?)',
    ),
    scramGet: db.prepare(
      'SELECT salt, iterations, stored_key AS storedKey, server_key AS serverKey FROM scram WHERE account = ? AND hash = ?',
    ),
    scramDelete: db.prepare('DELETE FROM scram WHERE account = ?'),
    rosterGet: db.prepare('SELECT * FROM roster WHERE owner = ? AND contact = ?'),
    rosterUpsert: db.prepare(
      'INSERT OR REPLACE INTO roster (owner, contact, name, groups, subscription, ask, approved, version) VALUES (?, ?, ?, ?, ?, ?, ?, ?)',
    ),
    rosterSince: db.prepare('SELECT * FROM roster WHERE owner = ? AND version > ?'),
    removedAdd: db.prepare('INSERT OR REPLACE INTO roster_removed (owner, contact, version) VALUES (?, ?, ?)'),
    removedForget: db.prepare('DELETE FROM roster_removed WHERE owner = ? AND contact = ?'),
    removedSince: db.prepare('SELECT contact, version FROM roster_removed WHERE owner = ? AND version > ?'),
    removedDeleteAll: db.prepare('DELETE FROM roster_removed WHERE owner = ?'),
    rosterRemove: db.prepare('DELETE FROM roster WHERE owner = ? AND contact = ?'),
    rosterList: db.prepare('SELECT * FROM roster WHERE owner = ? ORDER BY contact'),
    rosterDeleteAll: db.prepare('DELETE FROM roster WHERE owner = ?'),
    seqNext: db.prepare("UPDATE meta SET value = value + 1 WHERE key = 'roster_seq' RETURNING value").pluck(),
    // The first change of a roster (since the account was created) sets its floor.
    versionSet: db.prepare(
      'INSERT INTO roster_version (owner, version, floor) VALUES (?, ?, ?) ON CONFLICT (owner) DO UPDATE SET version = excluded.version',
    ),
    versionGet: db.prepare('SELECT version FROM roster_version WHERE owner = ?').pluck(),
    versionRow: db.prepare('SELECT version, floor FROM roster_version WHERE owner = ?'),
    versionDelete: db.prepare('DELETE FROM roster_version WHERE owner = ?'),
    pendingUpsert: db.prepare('INSERT OR REPLACE INTO pending (owner, contact, stanza, stamp) VALUES (?, ?, ?, ?)'),
    pendingRemove: db.prepare('DELETE FROM pending WHERE owner = ? AND contact = ?'),
    pendingGet: db.prepare('SELECT contact, stanza, stamp FROM pending WHERE owner = ? AND contact = ?'),
    pendingList: db.prepare('SELECT contact, stanza, stamp FROM pending WHERE owner = ? ORDER BY seq'),
    pendingDeleteAll: db.prepare('DELETE FROM pending WHERE owner = ?'),
    offlineInsert: db.prepare('INSERT INTO offline (account, stamp, stanza) VALUES (?, ?, ?)'),
    offlineCount: db.prepare('SELECT count(*) FROM offline WHERE account = ?').pluck(),
    offlineList: db.prepare('SELECT stanza, stamp FROM offline WHERE account = ? ORDER BY seq'),
    offlineDeleteAll: db.prepare('DELETE FROM offline WHERE account = ?'),
    blockList: db.prepare('SELECT jid FROM blocklist WHERE owner = ? ORDER BY jid').pluck(),
    blockAny: db.prepare('SELECT EXISTS (SELECT 1 FROM blocklist)').pluck(),
    blockAdd: db.prepare('INSERT OR IGNORE INTO blocklist (owner, jid) VALUES (?, ?)'),
    blockRemove: db.prepare('DELETE FROM blocklist WHERE owner = ? AND jid = ?'),
    blockDeleteAll: db.prepare('DELETE FROM blocklist WHERE owner = ?'),
    xmlGet: db.prepare('SELECT xml FROM xmlstore WHERE owner = ? AND key = ?').pluck(),
    xmlSet: db.prepare('INSERT OR REPLACE INTO xmlstore (owner, key, xml) VALUES (?, ?, ?)'),
    xmlRemove: db.prepare('DELETE FROM xmlstore WHERE owner = ? AND key = ?'),
    // A key range rather than LIKE: the primary key (owner, key) answers it without a scan.
    xmlCount: db.prepare('SELECT count(*) FROM xmlstore WHERE owner = ? AND key >= ? AND key < ?').pluck(),
    xmlDeleteAll: db.prepare('DELETE FROM xmlstore WHERE owner = ?'),
    // Documents under one key that mention a text (a deleted subscriber's JID): a scan, but only
    // at account deletion, and instr() only runs on the rows with that key.
    xmlMentioning: db.prepare('SELECT owner, xml FROM xmlstore WHERE key = ? AND instr(xml, ?) > 0'),
    // Persistent rooms whose record mentions a text (a deleted account's JID): a scan, only at account deletion.
    mucMentioning: db.prepare('SELECT jid, data FROM muc_room WHERE instr(data, ?) > 0'),
    mucUpdate: db.prepare('UPDATE muc_room SET data = ? WHERE jid = ?'),
    pepNodes: db.prepare('SELECT node, config FROM pep_node WHERE owner = ? ORDER BY node'),
    pepNode: db.prepare('SELECT node, config FROM pep_node WHERE owner = ? AND node = ?'),
    pepNodeSet: db.prepare('INSERT OR REPLACE INTO pep_node (owner, node, config) VALUES (?, ?, ?)'),
    pepNodeDelete: db.prepare('DELETE FROM pep_node WHERE owner = ? AND node = ?'),
    pepNodeDeleteAll: db.prepare('DELETE FROM pep_node WHERE owner = ?'),
    // REPLACE deletes the old row: a republished id gets a new seq and becomes the newest.
    pepItemPut: db.prepare('INSERT OR REPLACE INTO pep_item (owner, node, id, stamp, publisher, xml) VALUES (?, ?, ?, ?, ?, ?)'),
    pepItems: db.prepare('SELECT id, stamp, publisher, xml FROM pep_item WHERE owner = ? AND node = ? ORDER BY seq DESC LIMIT ?'),
    pepItem: db.prepare('SELECT id, stamp, publisher, xml FROM pep_item WHERE owner = ? AND node = ? AND id = ?'),
    pepItemDelete: db.prepare('DELETE FROM pep_item WHERE owner = ? AND node = ? AND id = ?'),
    pepTrim: db
      .prepare(
        'DELETE FROM pep_item WHERE owner = @owner AND node = @node AND seq NOT IN ' +
          '(SELECT seq FROM pep_item WHERE owner = @owner AND node = @node ORDER BY seq DESC LIMIT @keep) RETURNING id, seq',
      ),
    pepPurge: db.prepare('DELETE FROM pep_item WHERE owner = ? AND node = ?'),
    pepItemDeleteAll: db.prepare('DELETE FROM pep_item WHERE owner = ?'),
    pepUsage: db.prepare('SELECT coalesce(sum(length(CAST(xml AS BLOB))), 0) FROM pep_item WHERE owner = ?').pluck(),
  };

  const writePassword = (account: string, password: ReturnType<typeof toStoredPassword>): void => {
    for (const hash of SCRAM_HASHES) {
      const c = password[hash];
      q.scramUpsert.run(account, hash, c.salt, c.iterations, c.storedKey, c.serverKey);
    }
  };

  const bump = (owner: string): number => {
    const v = q.seqNext.get() as number;
    q.versionSet.run(owner, v, v);
    return v;
  };

  const createTx = db.transaction((bare: string, domain: string, local: string, password: ReturnType<typeof toStoredPassword>) => {
    if (q.userExists.get(bare)) throw new AccountError('exists', `user ${bare} already exists`);
    q.userInsert.run(bare, domain, local, Date.now());
    writePassword(bare, password);
  });

  const archive = openSqliteArchive(db, {
    file,
    thread: options.archiveThread ?? true,
    synchronous: options.synchronous === 'FULL' ? 'FULL' : 'NORMAL',
  });

  const deleteTx = db.transaction((account: string): boolean => {
    if (q.userDelete.run(account).changes === 0) return false;
    q.scramDelete.run(account);
    q.rosterDeleteAll.run(account);
    q.versionDelete.run(account);
    q.removedDeleteAll.run(account);
    q.pendingDeleteAll.run(account);
    q.offlineDeleteAll.run(account);
    q.blockDeleteAll.run(account);
    q.xmlDeleteAll.run(account);
    q.pepNodeDeleteAll.run(account);
    q.pepItemDeleteAll.run(account);
    // XEP-0060 §6.1: its subscriptions to other owners' PEP nodes go too (whoever registers the
    // name next would inherit them).
    for (const row of q.xmlMentioning.all(SUBSCRIPTIONS_KEY, subscriberNeedle(account)) as { owner: string; xml: string }[]) {
      const doc = withoutSubscriber(row.xml, account);
      if (doc === null) q.xmlRemove.run(row.owner, SUBSCRIPTIONS_KEY);
      else if (doc !== undefined) q.xmlSet.run(row.owner, SUBSCRIPTIONS_KEY, doc);
    }
    // XEP-0045 §5.2: its room affiliations but bans go too (src/storage/muc-affiliations.ts).
    for (const row of q.mucMentioning.all(affiliateNeedle(account)) as { jid: string; data: string }[]) {
      const data = withoutAffiliate(row.data, account);
      if (data !== undefined) q.mucUpdate.run(data, row.jid);
    }
    archive.deleteOwner(account);
    return true;
  });

  const setPasswordTx = db.transaction((account: string, password: ReturnType<typeof toStoredPassword>): boolean => {
    if (!q.userExists.get(account)) return false;
    writePassword(account, password);
    return true;
  });

  const userTable: UserStore = {
    create(account, password) {
      const { bare, domain, local } = parseAccount(account);
      // Derive before the transaction: PBKDF2 must not hold the write lock.
      createTx.immediate(bare, domain, local, toStoredPassword(password, iterations));
    },
    delete(account) {
      try {
        xml.flush(); // a deferred write must not outlive the account
        return deleteTx.immediate(account);
      } finally {
        rosters.forget(account);
        blocklist.forget(account);
        mam.forgetPrefs(account);
      }
    },
    setPassword: (account, password) => setPasswordTx.immediate(account, toStoredPassword(password, iterations)),
    exists: (account) => q.userExists.get(account) !== undefined,
    list(opts = {}) {
      const limit = opts.limit ?? DEFAULT_LIST_LIMIT;
      const after = opts.after ?? '';
      return (opts.domain === undefined
        ? q.userList.all(after, limit)
        : q.userListDomain.all(opts.domain, after, limit)) as string[];
    },
    count: (domain) => (domain === undefined ? q.userCount.get() : q.userCountDomain.get(domain)) as number,
    getScramCredentials(account, hash: ScramHash) {
      const row = q.scramGet.get(account, hash) as
        | { salt: Buffer; iterations: number; storedKey: Buffer; serverKey: Buffer }
        | undefined;
      return row ?? null;
    },
  };

  const setTx = db.transaction((owner: string, item: RosterItem): number => {
    const c = cleanRosterItem(item);
    const v = bump(owner);
    q.rosterUpsert.run(owner, c.jid, c.name, JSON.stringify(c.groups), c.subscription, c.ask, c.approved ? 1 : 0, v);
    q.removedForget.run(owner, c.jid);
    return v;
  });
  const removeTx = db.transaction((owner: string, contact: string): number | null => {
    if (q.rosterRemove.run(owner, contact).changes === 0) return null;
    const v = bump(owner);
    q.removedAdd.run(owner, contact, v);
    return v;
  });
  const changesTx = db.transaction((owner: string, since: number): RosterChanges | null => {
    const row = q.versionRow.get(owner) as { version: number; floor: number } | undefined;
    return diffRoster(
      row ?? null,
      since,
      () => (q.rosterSince.all(owner, since) as (RosterRow & { version: number })[]).map((r) => ({ version: r.version, item: rowToItem(r) })),
      () => (q.removedSince.all(owner, since) as { contact: string; version: number }[]).map((r) => ({ version: r.version, removed: r.contact })),
    );
  });

  const pendingRow = (row: { contact: string; stanza: string; stamp: number }) => ({
    from: row.contact,
    stanza: row.stanza,
    stamp: new Date(row.stamp),
  });

  const rosterTable: RosterStore = {
    get(owner, contact) {
      const row = q.rosterGet.get(owner, contact) as RosterRow | undefined;
      return row ? rowToItem(row) : null;
    },
    set: (owner, item) => setTx.immediate(owner, item),
    remove: (owner, contact) => removeTx.immediate(owner, contact),
    list: (owner) => (q.rosterList.all(owner) as RosterRow[]).map(rowToItem),
    version: (owner) => (q.versionGet.get(owner) as number | undefined) ?? 0,
    changesSince: (owner, since) => changesTx(owner, since),
    addPending(owner, from, stanza) {
      q.pendingUpsert.run(owner, from, stanza, Date.now());
    },
    removePending: (owner, from) => q.pendingRemove.run(owner, from).changes > 0,
    getPending(owner, from) {
      const row = q.pendingGet.get(owner, from) as { contact: string; stanza: string; stamp: number } | undefined;
      return row ? pendingRow(row) : null;
    },
    listPending: (owner) => (q.pendingList.all(owner) as { contact: string; stanza: string; stamp: number }[]).map(pendingRow),
  };

  // Writes by other processes to the cached tables (`hermod deluser` on a running server's file)
  // are told by a counter in meta that a storage without a shard epoch bumps after each write
  // through its caches (`announce`). Not PRAGMA data_version: that moves on every commit of any
  // other connection, the archive writer thread's batches and other shards' offline pushes among
  // them, and emptied both caches several times a second under message traffic.
  const externalRead = db.prepare("SELECT value FROM meta WHERE key = 'cache_epoch'").pluck();
  const externalBump = db
    .prepare("INSERT INTO meta (key, value) VALUES ('cache_epoch', 1) ON CONFLICT (key) DO UPDATE SET value = value + 1 RETURNING value")
    .pluck();
  const externalEpoch = { get: (): number => (externalRead.get() as number | undefined) ?? 0 };
  let seenVersion = externalEpoch.get();
  let versionCheckedAt = performance.now();
  const externalCheckMs = options.externalCheckMs ?? 250;
  const epoch = options.rosterEpoch;
  /** After a write through a cache without a shard epoch: tell other processes. */
  const announce = (): void => {
    if (!db.open) return;
    const v = externalBump.get() as number;
    // Our own bump is not news to our caches, unless another process bumped since their last look.
    if (v === seenVersion + 1) seenVersion = v;
    if (v === blockVersion + 1) blockVersion = v;
  };
  let seenEpoch = epoch ? Atomics.load(epoch, 0) : 0;
  const rosters = cacheRosters(rosterTable, {
    maxOwners: options.rosterCache ?? DEFAULT_ROSTER_CACHE,
    changedElsewhere() {
      let changed = false;
      if (epoch) {
        const e = Atomics.load(epoch, 0);
        if (e !== seenEpoch) (seenEpoch = e), (changed = true);
      }
      const now = performance.now();
      if (now - versionCheckedAt >= externalCheckMs) {
        versionCheckedAt = now;
        const v = externalEpoch.get();
        if (v !== seenVersion) (seenVersion = v), (changed = true);
      }
      return changed;
    },
    wrote() {
      // Our own bump is not news to us, unless another shard bumped since our last look.
      if (epoch && Atomics.add(epoch, 0, 1) === seenEpoch) seenEpoch++;
      if (!epoch) announce();
    },
  });

  const pushTx = db.transaction((account: string, stanza: string, stamp: number): boolean => {
    if ((q.offlineCount.get(account) as number) >= offlineLimit) return false;
    q.offlineInsert.run(account, stamp, stanza);
    return true;
  });
  const takeAllTx = db.transaction((account: string) => {
    const rows = q.offlineList.all(account) as { stanza: string; stamp: number }[];
    if (rows.length > 0) q.offlineDeleteAll.run(account);
    return rows.map((r) => ({ stanza: r.stanza, stamp: new Date(r.stamp) }));
  });

  const offline: OfflineStore = {
    push: (account, stanza, stamp = new Date()) => pushTx.immediate(account, stanza, stamp.getTime()),
    takeAll: (account) => takeAllTx.immediate(account),
    count: (account) => q.offlineCount.get(account) as number,
  };

  const blockAddTx = db.transaction((owner: string, jids: readonly string[]) =>
    uniq(jids).filter((jid) => q.blockAdd.run(owner, jid).changes > 0),
  );
  const blockRemoveTx = db.transaction((owner: string, jids: readonly string[]) =>
    uniq(jids).filter((jid) => q.blockRemove.run(owner, jid).changes > 0),
  );
  const blockClearTx = db.transaction((owner: string) => {
    const all = q.blockList.all(owner) as string[];
    q.blockDeleteAll.run(owner);
    return all;
  });
  const blockTable: BlocklistStore = {
    list: (owner) => q.blockList.all(owner) as string[],
    add: (owner, jids) => blockAddTx.immediate(owner, jids),
    remove: (owner, jids) => blockRemoveTx.immediate(owner, jids),
    clear: (owner) => blockClearTx.immediate(owner),
  };
  // Blocklists and archive preferences are read per stanza: other shards' writes come through
  // the shared epoch, other processes' through a timer polling meta's cache_epoch (never a clock
  // per read).
  let externalWrites = 0;
  let blockVersion = seenVersion;
  const checkExternalWrites = (): void => {
    if (!db.open) return;
    const v = externalEpoch.get();
    if (v !== blockVersion) (blockVersion = v), externalWrites++;
  };
  const versionTimer = setInterval(checkExternalWrites, Math.max(externalCheckMs, 10)); // 0 (tests: check the roster cache on every read) would spin the timer
  versionTimer.unref();
  /** A cache's news of writes it did not make: slot `slot` of the shared epoch, and the timer above. */
  const watchWrites = (slot: number) => {
    const shared = epoch && epoch.length > slot ? epoch.subarray(slot, slot + 1) : undefined;
    let seen = shared ? Atomics.load(shared, 0) : 0;
    let seenExternal = 0;
    return {
      changedElsewhere(): boolean {
        let changed = externalWrites !== seenExternal;
        seenExternal = externalWrites;
        if (shared) {
          const e = Atomics.load(shared, 0);
          if (e !== seen) (seen = e), (changed = true);
        }
        return changed;
      },
      wrote(): void {
        // Our own bump is not news to us, unless another shard bumped since our last look.
        if (shared && Atomics.add(shared, 0, 1) === seen) seen++;
        if (!shared) announce();
      },
    };
  };
  const blocklist = cacheBlocklists(blockTable, {
    maxOwners: options.rosterCache ?? DEFAULT_ROSTER_CACHE,
    ...watchWrites(1),
    anyStored: () => q.blockAny.get() === 1,
  });
  // XEP-0441 preferences are read for both ends of every chat message: cached the same way,
  // through the epoch's third slot.
  const mam = cachePrefs(archive, { maxOwners: options.rosterCache ?? DEFAULT_ROSTER_CACHE, ...watchWrites(2) });

  // Credentials are read per login (src/storage/credential-cache.ts), cached the same way through
  // the epoch's fourth slot; sharded without that slot the cache could not be exact, so it is off.
  const users = cacheCredentials(userTable, {
    maxAccounts: epoch && epoch.length <= 3 ? 0 : (options.credentialCache ?? DEFAULT_CREDENTIAL_CACHE),
    ...watchWrites(3),
  });

  const xmlTable: XmlStore = {
    get: (owner, key) => (q.xmlGet.get(owner, key) as string | undefined) ?? null,
    set: (owner, key, doc) => void q.xmlSet.run(owner, key, doc),
    remove: (owner, key) => q.xmlRemove.run(owner, key).changes > 0,
    // Keys from `prefix` up to the prefix with its last character incremented.
    count: (owner, prefix) =>
      q.xmlCount.get(owner, prefix, prefix.slice(0, -1) + String.fromCharCode(prefix.charCodeAt(prefix.length - 1) + 1)) as number,
  };
  // setSoon (XEP-0012's logout record): the writes of one turn share one transaction. A row
  // whose owner is no account by then is dropped: XEP-0077 removal and `hermod deluser` delete
  // the account before its streams close, and the logout record those closes make would outlive
  // it (handed, status text included, to whoever registers the name next).
  const xmlSetForAccount = db.prepare('INSERT OR REPLACE INTO xmlstore (owner, key, xml) SELECT ?, ?, ? WHERE EXISTS (SELECT 1 FROM users WHERE account = ?)');
  const xmlSetMany = db.transaction((rows: readonly XmlRow[]) => {
    for (const [owner, key, doc] of rows) xmlSetForAccount.run(owner, key, doc, owner);
  });
  const xml = batchXmlWrites(xmlTable, (rows) => xmlSetMany.immediate(rows));

  type PepRow = { id: string; stamp: number; publisher: string | null; xml: string };
  const pepItem = (r: PepRow): PepItem => ({ id: r.id, xml: r.xml, stamp: new Date(r.stamp), publisher: r.publisher });
  const pepNode = (r: { node: string; config: string }) => ({ node: r.node, config: JSON.parse(r.config) as Record<string, string> });
  const trim = (owner: string, node: string, keep: number): string[] =>
    (q.pepTrim.all({ owner, node, keep: Math.max(0, keep) }) as { id: string; seq: number }[]).sort((a, b) => a.seq - b.seq).map((r) => r.id);
  const pepPublishTx = db.transaction((owner: string, node: string, item: PepItem, keep: number): string[] => {
    q.pepItemPut.run(owner, node, item.id, item.stamp.getTime(), item.publisher ?? null, item.xml);
    return trim(owner, node, keep);
  });
  const pepTrimTx = db.transaction(trim);
  const pepDeleteTx = db.transaction((owner: string, node: string): boolean => {
    q.pepPurge.run(owner, node);
    return q.pepNodeDelete.run(owner, node).changes > 0;
  });
  const pep: PepStore = {
    nodes: (owner) => (q.pepNodes.all(owner) as { node: string; config: string }[]).map(pepNode),
    node(owner, node) {
      const row = q.pepNode.get(owner, node) as { node: string; config: string } | undefined;
      return row ? pepNode(row) : null;
    },
    setNode: (owner, node, config) => void q.pepNodeSet.run(owner, node, JSON.stringify(config)),
    deleteNode: (owner, node) => pepDeleteTx.immediate(owner, node),
    publish: (owner, node, item, keep) => pepPublishTx.immediate(owner, node, item, keep),
    trim: (owner, node, keep) => pepTrimTx.immediate(owner, node, keep),
    items: (owner, node, max) => (q.pepItems.all(owner, node, max ?? -1) as PepRow[]).map(pepItem),
    item(owner, node, id) {
      const row = q.pepItem.get(owner, node, id) as PepRow | undefined;
      return row ? pepItem(row) : null;
    },
    retract: (owner, node, id) => q.pepItemDelete.run(owner, node, id).changes > 0,
    purge: (owner, node) => q.pepPurge.run(owner, node).changes,
    usage: (owner) => q.pepUsage.get(owner) as number,
  };

  const mucList = db.prepare('SELECT jid, data FROM muc_room WHERE service = ? ORDER BY jid');
  const mucSave = db.prepare('INSERT OR REPLACE INTO muc_room (jid, service, data) VALUES (?, ?, ?)');
  const mucRemove = db.prepare('DELETE FROM muc_room WHERE jid = ?');
  const muc: MucStore = {
    list: (service) => mucList.all(service) as { jid: string; data: string }[],
    save: (room, data) => void mucSave.run(room, room.slice(room.indexOf('@') + 1), data),
    remove: (room) => mucRemove.run(room).changes > 0,
  };

  // PRAGMA synchronous reads back as a number: 1 NORMAL, 2 FULL.
  const sync = db.pragma('synchronous', { simple: true }) as number;
  return {
    file,
    settings: {
      journalMode: db.pragma('journal_mode', { simple: true }) as string,
      synchronous: sync === 1 ? 'NORMAL' : sync === 2 ? 'FULL' : 'OTHER',
    },
    users,
    rosters,
    offline,
    blocklist,
    xml,
    pep,
    mam,
    muc,
    checkExternalWrites() {
      checkExternalWrites();
      // The roster cache keeps its own clock: its next read looks too.
      versionCheckedAt = -Infinity;
    },
    close() {
      clearInterval(versionTimer);
      if (!db.open) return;
      try {
        xml.flush();
      } finally {
        try {
          archive.close();
        } finally {
          db.close();
        }
      }
    },
  };
}

/**
 * What only the SQLite backend promises: data outlives the process (clean close, and kill -9
 * right after a write), the data directory is created or refused clearly, and the file is in
 * WAL mode with the chosen durability.
 */
import { spawn } from 'node:child_process';
import { chmodSync, existsSync, mkdtempSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, relative } from 'node:path';
import Database from 'better-sqlite3';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import { ConfigError } from '../../src/errors.js';
import { DATABASE_FILE, openSqliteStorage, SCHEMA_VERSION } from '../../src/storage/sqlite.js';
import { removeTranspiled, transpile } from './storage-transpile.js';

const dirs: string[] = [];
function tempDir(): string {
  const dir = mkdtempSync(join(tmpdir(), 'hermod-sqlite-'));
  dirs.push(dir);
  return dir;
}
afterEach(() => {
  while (dirs.length) rmSync(dirs.pop()!, { recursive: true, force: true });
});

describe('sqlite storage persistence', () => {
  it('keeps users, credentials, rosters, versions, pending requests and offline messages across reopen', () => {
    const dataDir = tempDir();
    const a = openSqliteStorage({ dataDir, iterations: 16 });
    a.users.create('alice@example.org', 'pw');
    const creds = a.users.getScramCredentials('alice@example.org', 'SHA-256')!;
    const version = a.rosters.set('alice@example.org', {
      jid: 'bob@example.org',
      name: 'Bob',
      groups: ['Friends'],
      subscription: 'both',
      ask: null,
      approved: false,
    });
    a.rosters.addPending('alice@example.org', 'carol@example.org', "<presence type='subscribe'/>");
    a.offline.push('alice@example.org', '<message id="1"/>');
    a.offline.push('alice@example.org', '<message id="2"/>');
    a.close();

    const b = openSqliteStorage({ dataDir, iterations: 16 });
    try {
      expect(b.users.list()).toEqual(['alice@example.org']);
      expect(b.users.getScramCredentials('alice@example.org', 'SHA-256')).toEqual(creds);
      expect(b.rosters.list('alice@example.org')).toEqual([
        { jid: 'bob@example.org', name: 'Bob', groups: ['Friends'], subscription: 'both', ask: null, approved: false },
      ]);
      expect(b.rosters.version('alice@example.org')).toBe(version);
      // The version counter continues from where it was, never repeating.
      expect(b.rosters.set('dave@example.org', { jid: 'x@example.org', name: null, groups: [], subscription: 'none', ask: null, approved: false })).toBeGreaterThan(version);
      expect(b.rosters.listPending('alice@example.org').map((p) => p.from)).toEqual(['carol@example.org']);
      expect(b.offline.takeAll('alice@example.org').map((m) => m.stanza)).toEqual(['<message id="1"/>', '<message id="2"/>']);
    } finally {
      b.close();
    }
  });

  it('shares one store between connections (shard threads, the CLI): counters, limits and accounts stay consistent', () => {
    const dataDir = tempDir();
    const a = openSqliteStorage({ dataDir, iterations: 16, offlineLimit: 3 });
    const b = openSqliteStorage({ dataDir, iterations: 16, offlineLimit: 3 });
    try {
      const item = { jid: 'x@example.org', name: null, groups: [], subscription: 'none' as const, ask: null, approved: false };
      const versions = [a.rosters.set('alice@example.org', item), b.rosters.set('bob@example.org', item), a.rosters.set('bob@example.org', item)];
      expect(new Set(versions).size).toBe(3);
      expect(b.rosters.version('bob@example.org')).toBe(versions[2]);
      expect([a.offline.push('carol@example.org', '1'), b.offline.push('carol@example.org', '2'), a.offline.push('carol@example.org', '3')]).toEqual([true, true, true]);
      expect(b.offline.push('carol@example.org', '4')).toBe(false);
      a.users.create('dave@example.org', 'pw');
      expect(() => b.users.create('dave@example.org', 'pw')).toThrow(/already exists/);
      expect(b.offline.takeAll('carol@example.org').map((m) => m.stanza)).toEqual(['1', '2', '3']);
      expect(a.offline.count('carol@example.org')).toBe(0);
    } finally {
      a.close();
      b.close();
    }
  });

  it('opens the file in WAL mode with synchronous=NORMAL by default and FULL on request', () => {
    const dataDir = tempDir();
    const normal = openSqliteStorage({ dataDir });
    expect(normal.file).toBe(join(dataDir, DATABASE_FILE));
    expect(normal.settings).toEqual({ journalMode: 'wal', synchronous: 'NORMAL' });
    normal.close();
    // WAL is a property of the file: another connection sees it.
    const db = new Database(join(dataDir, DATABASE_FILE), { readonly: true });
    expect(db.pragma('journal_mode', { simple: true })).toBe('wal');
    db.close();
    const full = openSqliteStorage({ dataDir, synchronous: 'FULL' });
    expect(full.settings.synchronous).toBe('FULL');
    full.close();
  });

  it('creates a missing data directory with its parents', () => {
    const dataDir = join(tempDir(), 'a', 'b', 'data');
    const s = openSqliteStorage({ dataDir });
    s.offline.push('a@example.org', '<message/>');
    expect(existsSync(join(dataDir, DATABASE_FILE))).toBe(true);
    // Private: the file holds keys that would let someone impersonate the server to clients.
    expect(statSync(dataDir).mode & 0o777).toBe(0o700);
    expect(statSync(join(dataDir, DATABASE_FILE)).mode & 0o777).toBe(0o600);
    expect(statSync(join(dataDir, `${DATABASE_FILE}-wal`)).mode & 0o777).toBe(0o600);
    s.close();
  });

  it('refuses a data directory that cannot be created, with a ConfigError naming it', () => {
    const parent = tempDir();
    const blocker = join(parent, 'file');
    writeFileSync(blocker, 'not a directory');
    const attempt = () => openSqliteStorage({ dataDir: join(blocker, 'data') });
    expect(attempt).toThrow(ConfigError);
    expect(attempt).toThrow(/cannot create data directory .*file\/data/);
    expect(() => openSqliteStorage({ dataDir: blocker })).toThrow(/data directory .*file exists but is not a directory/);
  });

  it('refuses a read-only data directory with a ConfigError naming it (also when run as root)', async () => {
    const dataDir = tempDir();
    chmodSync(dataDir, 0o500);
    try {
      // Root ignores mode bits (CAP_DAC_OVERRIDE), and CI runs as root: the attempt runs in a
      // child that keeps uid 0 but loses that capability, so the mode applies to it as owner.
      const script = `
        import { openSqliteStorage } from './src/storage/sqlite.js';
        import { ConfigError } from './src/errors.js';
        try {
          openSqliteStorage({ dataDir: ${JSON.stringify(dataDir)} }).close();
          process.stdout.write(JSON.stringify({ opened: true }));
        } catch (err) {
          process.stdout.write(JSON.stringify({ configError: err instanceof ConfigError, key: err.key, message: err.message }));
        }
      `;
      writeFileSync(join(childDir, 'readonly-child.mjs'), script);
      const node = [process.execPath, join(childDir, 'readonly-child.mjs')];
      const argv = process.getuid?.() === 0 ? ['setpriv', '--bounding-set=-dac_override,-dac_read_search', ...node] : node;
      const result = await new Promise<string>((resolve, reject) => {
        const child = spawn(argv[0]!, argv.slice(1), { stdio: ['ignore', 'pipe', 'pipe'] });
        let out = '';
        let err = '';
        child.stdout.on('data', (d) => (out += d));
        child.stderr.on('data', (d) => (err += d));
        child.once('error', reject);
        child.once('exit', (code) => (code === 0 ? resolve(out) : reject(new Error(`child exited ${code}: ${err}`))));
      });
      expect(JSON.parse(result)).toEqual({
        configError: true,
        key: 'data',
        message: expect.stringContaining(`data: data directory ${dataDir} is not writable`),
      });
      // Nothing was created in the refused directory.
      expect(existsSync(join(dataDir, DATABASE_FILE))).toBe(false);
    } finally {
      chmodSync(dataDir, 0o700);
    }
  });

  it('refuses a file that is not a database, with a ConfigError', () => {
    const dataDir = tempDir();
    writeFileSync(join(dataDir, DATABASE_FILE), 'x'.repeat(4096));
    expect(() => openSqliteStorage({ dataDir })).toThrow(ConfigError);
  });

  it('upgrades a schema-1 database in place, keeping rosters and answering diffs only from the upgrade on', () => {
    const dataDir = tempDir();
    const db = new Database(join(dataDir, DATABASE_FILE));
    // The two tables schema 2 changed, as schema 1 created them.
    db.exec(`
      CREATE TABLE roster (owner TEXT NOT NULL, contact TEXT NOT NULL, name TEXT, groups TEXT NOT NULL,
        subscription TEXT NOT NULL, ask TEXT, approved INTEGER NOT NULL, PRIMARY KEY (owner, contact)) WITHOUT ROWID;
      CREATE TABLE roster_version (owner TEXT PRIMARY KEY, version INTEGER NOT NULL) WITHOUT ROWID;
      CREATE TABLE meta (key TEXT PRIMARY KEY, value INTEGER NOT NULL) WITHOUT ROWID;
      INSERT INTO meta VALUES ('roster_seq', 5);
      INSERT INTO roster VALUES ('alice@example.org', 'bob@example.org', 'Bob', '["F"]', 'both', NULL, 0);
      INSERT INTO roster_version VALUES ('alice@example.org', 5);
    `);
    db.pragma('user_version = 1');
    db.close();
    const s = openSqliteStorage({ dataDir });
    try {
      expect(s.rosters.list('alice@example.org')).toEqual([
        { jid: 'bob@example.org', name: 'Bob', groups: ['F'], subscription: 'both', ask: null, approved: false },
      ]);
      expect(s.rosters.version('alice@example.org')).toBe(5);
      expect(s.rosters.changesSince('alice@example.org', 5)).toEqual({ version: 5, changes: [] });
      expect(s.rosters.changesSince('alice@example.org', 4)).toBeNull();
      const v = s.rosters.remove('alice@example.org', 'bob@example.org')!;
      expect(s.rosters.changesSince('alice@example.org', 5)).toEqual({ version: v, changes: [{ version: v, removed: 'bob@example.org' }] });
    } finally {
      s.close();
    }
    const check = new Database(join(dataDir, DATABASE_FILE), { readonly: true });
    expect(check.pragma('user_version', { simple: true })).toBe(SCHEMA_VERSION);
    check.close();
  });

  it('upgrades a schema-2 database in place to the current schema, adding empty blocklists and keeping accounts', () => {
    const dataDir = tempDir();
    const old = openSqliteStorage({ dataDir, iterations: 16 });
    old.users.create('alice@example.org', 'pw');
    old.rosters.set('alice@example.org', { jid: 'bob@example.org', name: null, groups: [], subscription: 'both', ask: null, approved: false });
    old.close();
    // Make the file look as schema 2 left it: no blocklist table, user_version 2.
    const db = new Database(join(dataDir, DATABASE_FILE));
    db.exec('DROP TABLE blocklist');
    db.pragma('user_version = 2');
    db.close();
    const s = openSqliteStorage({ dataDir, iterations: 16 });
    try {
      expect(s.users.exists('alice@example.org')).toBe(true);
      expect(s.rosters.list('alice@example.org').map((i) => i.jid)).toEqual(['bob@example.org']);
      expect(s.blocklist.list('alice@example.org')).toEqual([]);
      expect(s.blocklist.add('alice@example.org', ['eve@example.org'])).toEqual(['eve@example.org']);
    } finally {
      s.close();
    }
    const check = new Database(join(dataDir, DATABASE_FILE), { readonly: true });
    expect(check.pragma('user_version', { simple: true })).toBe(SCHEMA_VERSION);
    check.close();
  });

  it('upgrades a schema-3 database in place to the current schema, adding the per-account XML table and keeping blocklists', () => {
    const dataDir = tempDir();
    const old = openSqliteStorage({ dataDir, iterations: 16 });
    old.users.create('alice@example.org', 'pw');
    old.blocklist.add('alice@example.org', ['eve@example.org']);
    old.close();
    // Make the file look as schema 3 left it: no xmlstore table, user_version 3.
    const db = new Database(join(dataDir, DATABASE_FILE));
    db.exec('DROP TABLE xmlstore');
    db.pragma('user_version = 3');
    db.close();
    const s = openSqliteStorage({ dataDir, iterations: 16 });
    try {
      expect(s.blocklist.list('alice@example.org')).toEqual(['eve@example.org']);
      expect(s.xml.get('alice@example.org', 'vcard')).toBeNull();
      s.xml.set('alice@example.org', 'vcard', '<vCard/>');
      expect(s.xml.get('alice@example.org', 'vcard')).toBe('<vCard/>');
    } finally {
      s.close();
    }
    const check = new Database(join(dataDir, DATABASE_FILE), { readonly: true });
    expect(check.pragma('user_version', { simple: true })).toBe(SCHEMA_VERSION);
    check.close();
  });

  it('keeps PEP nodes, their configuration and items (order, publisher, stamp) across reopen', () => {
    const dataDir = tempDir();
    const a = openSqliteStorage({ dataDir, iterations: 16 });
    a.pep.setNode('alice@example.org', 'urn:xmpp:bookmarks:1', { 'pubsub#access_model': 'whitelist', 'pubsub#max_items': 'max' });
    a.pep.publish('alice@example.org', 'urn:xmpp:bookmarks:1', { id: 'r1', xml: '<conference/>', stamp: new Date(1000), publisher: 'alice@example.org/pc' }, 10);
    a.pep.publish('alice@example.org', 'urn:xmpp:bookmarks:1', { id: 'r2', xml: '<conference name="é"/>', stamp: new Date(2000) }, 10);
    a.close();
    const b = openSqliteStorage({ dataDir, iterations: 16 });
    try {
      expect(b.pep.node('alice@example.org', 'urn:xmpp:bookmarks:1')?.config).toEqual({ 'pubsub#access_model': 'whitelist', 'pubsub#max_items': 'max' });
      expect(b.pep.items('alice@example.org', 'urn:xmpp:bookmarks:1')).toEqual([
        { id: 'r2', xml: '<conference name="é"/>', stamp: new Date(2000), publisher: null },
        { id: 'r1', xml: '<conference/>', stamp: new Date(1000), publisher: 'alice@example.org/pc' },
      ]);
    } finally {
      b.close();
    }
  });

  it('upgrades a schema-4 database in place, adding empty PEP tables and keeping stored XML', () => {
    const dataDir = tempDir();
    const old = openSqliteStorage({ dataDir, iterations: 16 });
    old.users.create('alice@example.org', 'pw');
    old.xml.set('alice@example.org', 'vcard', '<vCard/>');
    old.close();
    // Make the file look as schema 4 left it: no PEP tables, user_version 4.
    const db = new Database(join(dataDir, DATABASE_FILE));
    db.exec('DROP TABLE pep_item; DROP TABLE pep_node');
    db.pragma('user_version = 4');
    db.close();
    const s = openSqliteStorage({ dataDir, iterations: 16 });
    try {
      expect(s.xml.get('alice@example.org', 'vcard')).toBe('<vCard/>');
      expect(s.pep.nodes('alice@example.org')).toEqual([]);
      s.pep.setNode('alice@example.org', 'urn:xmpp:avatar:metadata', { 'pubsub#max_items': '1' });
      expect(s.pep.publish('alice@example.org', 'urn:xmpp:avatar:metadata', { id: 'a', xml: '<metadata/>', stamp: new Date(1) }, 1)).toEqual([]);
      expect(s.pep.items('alice@example.org', 'urn:xmpp:avatar:metadata').map((i) => i.id)).toEqual(['a']);
    } finally {
      s.close();
    }
    const check = new Database(join(dataDir, DATABASE_FILE), { readonly: true });
    expect(check.pragma('user_version', { simple: true })).toBe(SCHEMA_VERSION);
    check.close();
  });

  it('refuses a database written by a newer schema instead of corrupting it', () => {
    const dataDir = tempDir();
    const db = new Database(join(dataDir, DATABASE_FILE));
    db.pragma('user_version = 99');
    db.close();
    expect(() => openSqliteStorage({ dataDir })).toThrow(/newer Hermod/);
  });
});

let childDir = '';
beforeAll(() => {
  childDir = transpile(['src/errors.ts', 'src/jid.ts', 'src/storage', 'src/xml']);
});
afterAll(() => removeTranspiled(childDir));

describe('sqlite storage durability', () => {
  it('keeps an accepted offline message after the server is killed with SIGKILL right after accepting it', async () => {
    const dataDir = tempDir();
    const script = `
      import { openSqliteStorage } from './${relative(childDir, join(childDir, 'src/storage/sqlite.js'))}';
      const s = openSqliteStorage({ dataDir: ${JSON.stringify(dataDir)} });
      const ok = s.offline.push('bob@example.org', '<message id="durable"><body>hi</body></message>');
      process.stdout.write(ok ? 'accepted\\n' : 'refused\\n');
      setInterval(() => {}, 1000); // stay alive until killed, never closing the database
    `;
    writeFileSync(join(childDir, 'child.mjs'), script);
    const child = spawn(process.execPath, [join(childDir, 'child.mjs')], { stdio: ['ignore', 'pipe', 'pipe'] });
    let stderr = '';
    child.stderr.on('data', (d) => (stderr += d));
    const line = await new Promise<string>((resolve, reject) => {
      child.stdout.once('data', (d: Buffer) => resolve(d.toString()));
      child.once('exit', () => reject(new Error(`child exited early: ${stderr}`)));
    });
    expect(line).toBe('accepted\n');
    const exited = new Promise((resolve) => child.once('exit', (_code, signal) => resolve(signal)));
    child.kill('SIGKILL');
    expect(await exited).toBe('SIGKILL');

    const s = openSqliteStorage({ dataDir });
    try {
      expect(s.offline.takeAll('bob@example.org').map((m) => m.stanza)).toEqual([
        '<message id="durable"><body>hi</body></message>',
      ]);
    } finally {
      s.close();
    }
  });
});

import { spawn } from 'node:child_process';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, afterEach, beforeAll, beforeEach, describe, expect, it } from 'vitest';
import { runAddUser, runDelUser, runPasswd, runUsers, type AdminIo } from '../../src/admin/users.js';
import { openSqliteStorage } from '../../src/storage/sqlite.js';
import { credentialsFromSaltedPassword, saltedPasswordSync } from '../../src/storage/password.js';
import { removeTranspiled, transpile } from './storage-transpile.js';

let dataDir: string;
let tmp: string;
beforeEach(() => {
  tmp = mkdtempSync(join(tmpdir(), 'hermod-admin-'));
  dataDir = join(tmp, 'data');
});
afterEach(() => rmSync(tmp, { recursive: true, force: true }));

interface Run {
  code: number;
  out: string;
  err: string;
  prompts: string[];
}

async function run(
  command: (argv: string[], io: AdminIo) => Promise<number>,
  argv: string[],
  passwords: (string | null)[] = [],
  env: NodeJS.ProcessEnv = {},
  interactive = false,
): Promise<Run> {
  const r: Run = { code: -1, out: '', err: '', prompts: [] };
  const io: AdminIo = {
    out: (t) => (r.out += t),
    err: (t) => (r.err += t),
    async readPassword(prompt) {
      r.prompts.push(prompt);
      return passwords.shift() ?? null;
    },
    interactive,
    env,
  };
  r.code = await command(argv, io);
  return r;
}

const data = () => ['--data', dataDir];

/** Does `password` open this account (checked against the stored SCRAM-SHA-256 key)? */
function passwordWorks(account: string, password: string): boolean {
  const s = openSqliteStorage({ dataDir });
  try {
    const c = s.users.getScramCredentials(account, 'SHA-256');
    if (!c) return false;
    const mine = credentialsFromSaltedPassword('SHA-256', saltedPasswordSync('SHA-256', password, c.salt, c.iterations), c.salt, c.iterations);
    return mine.storedKey.equals(c.storedKey);
  } finally {
    s.close();
  }
}

describe('hermod adduser', () => {
  it('creates a user with the password given, stored in <data>/hermod.sqlite', async () => {
    const r = await run(runAddUser, ['alice@example.org', 'secret', ...data()]);
    expect(r).toMatchObject({ code: 0, out: 'created alice@example.org\n', prompts: [] });
    expect(passwordWorks('alice@example.org', 'secret')).toBe(true);
    expect(passwordWorks('alice@example.org', 'Secret')).toBe(false);
  });

  it('asks for the password when none is given', async () => {
    const r = await run(runAddUser, ['bob@example.org', ...data()], ['hunter2']);
    expect(r.code).toBe(0);
    expect(r.prompts).toEqual(['Password for bob@example.org: ']);
    expect(passwordWorks('bob@example.org', 'hunter2')).toBe(true);
  });

  it('refuses an existing user with exit 1, before asking for a password', async () => {
    await run(runAddUser, ['alice@example.org', 'one', ...data()]);
    const r = await run(runAddUser, ['Alice@Example.org', ...data()], ['two']);
    expect(r.code).toBe(1);
    expect(r.err).toMatch(/alice@example\.org already exists/);
    expect(r.prompts).toEqual([]);
    expect(passwordWorks('alice@example.org', 'one')).toBe(true);
  });

  it('fails with exit 1 when no password comes, and when the two entries differ', async () => {
    const none = await run(runAddUser, ['carol@example.org', ...data()], [null]);
    expect(none.code).toBe(1);
    expect(none.err).toMatch(/no password given/);
    const differ = await run(runAddUser, ['carol@example.org', ...data()], ['one', 'two'], {}, true);
    expect(differ.code).toBe(1);
    expect(differ.err).toMatch(/passwords differ/);
    expect(differ.prompts).toEqual(['Password for carol@example.org: ', 'Repeat: ']);
    const same = await run(runAddUser, ['carol@example.org', ...data()], ['one', 'one'], {}, true);
    expect(same.code).toBe(0);
    expect(passwordWorks('carol@example.org', 'one')).toBe(true);
  });

  it('refuses an empty password as a usage error (64)', async () => {
    const r = await run(runAddUser, ['dave@example.org', ...data()], ['']);
    expect(r.code).toBe(64);
    expect(r.err).toMatch(/password is empty/);
  });

  it('puts a bare user name in --domain, defaulting to localhost', async () => {
    expect((await run(runAddUser, ['erin', 'pw', ...data(), '--domain', 'Example.NET'])).code).toBe(0);
    expect((await run(runAddUser, ['frank', 'pw', ...data()])).code).toBe(0);
    const list = await run(runUsers, data());
    expect(list.out).toBe('erin@example.net\nfrank@localhost\n');
  });

  it('notes when the user is outside the configured domain, and refuses a clash with --domain', async () => {
    const r = await run(runAddUser, ['gina@elsewhere.example', 'pw', ...data()]);
    expect(r.code).toBe(0);
    expect(r.err).toMatch(/outside the configured domain localhost/);
    const clash = await run(runAddUser, ['hal@a.example', 'pw', ...data(), '--domain', 'b.example']);
    expect(clash.code).toBe(64);
    expect(clash.err).toMatch(/not in --domain b\.example/);
  });

  it('refuses malformed names and options with usage errors (64)', async () => {
    for (const argv of [
      ['a b@example.org', 'pw'],
      ['alice@example.org/phone', 'pw'],
      ['@example.org', 'pw'],
      [],
      ['alice@example.org', 'pw', 'extra'],
      ['alice@example.org', 'pw', '--bogus'],
      ['alice@example.org', 'pw', '--data'],
    ]) {
      const r = await run(runAddUser, [...data(), ...argv]);
      expect(r.code, argv.join(' ')).toBe(64);
      expect(r.err).toMatch(/^hermod adduser: .*\n\nUsage: hermod adduser/);
    }
  });

  it('exits 78 when the data directory is unusable', async () => {
    const file = join(tmp, 'file');
    writeFileSync(file, '');
    const r = await run(runAddUser, ['alice@example.org', 'pw', '--data', join(file, 'sub')]);
    expect(r.code).toBe(78);
    expect(r.err).toMatch(/data directory/);
  });

  it('takes the data directory and domain from the configuration file, flags overriding it', async () => {
    const config = join(tmp, 'hermod.yaml');
    writeFileSync(config, `domain: conf.example\ndata_dir: ${join(tmp, 'confdata')}\n`);
    expect((await run(runAddUser, ['ivan', 'pw', '--config', config])).code).toBe(0);
    expect((await run(runUsers, [], [], { HERMOD_CONFIG: config })).out).toBe('ivan@conf.example\n');
    expect((await run(runUsers, ['--config', config, ...data()])).out).toBe('');
    const broken = join(tmp, 'broken.yaml');
    writeFileSync(broken, 'domain: [1, 2]\n');
    expect((await run(runUsers, ['--config', broken])).code).toBe(78);
  });

  it('prints help with exit 0', async () => {
    const r = await run(runAddUser, ['--help']);
    expect(r.code).toBe(0);
    expect(r.out).toMatch(/Usage: hermod adduser USER\[@DOMAIN\] \[PASSWORD\]/);
  });
});

describe('hermod deluser', () => {
  it('deletes a user and everything it owned', async () => {
    await run(runAddUser, ['alice@example.org', 'pw', ...data()]);
    const s = openSqliteStorage({ dataDir });
    s.offline.push('alice@example.org', '<message/>');
    s.rosters.set('alice@example.org', { jid: 'bob@example.org', name: null, groups: [], subscription: 'both', ask: null, approved: false });
    s.close();
    const r = await run(runDelUser, ['alice@example.org', ...data()]);
    expect(r).toMatchObject({ code: 0, out: 'deleted alice@example.org\n' });
    const after = openSqliteStorage({ dataDir });
    expect(after.users.exists('alice@example.org')).toBe(false);
    expect(after.offline.count('alice@example.org')).toBe(0);
    expect(after.rosters.list('alice@example.org')).toEqual([]);
    after.close();
  });

  it('exits 1 for a user that does not exist', async () => {
    const r = await run(runDelUser, ['nobody@example.org', ...data()]);
    expect(r.code).toBe(1);
    expect(r.err).toMatch(/no such user nobody@example\.org/);
  });
});

describe('hermod passwd', () => {
  it('changes the password, asking for it when not given', async () => {
    await run(runAddUser, ['alice@example.org', 'old', ...data()]);
    expect((await run(runPasswd, ['alice@example.org', 'new', ...data()])).code).toBe(0);
    expect(passwordWorks('alice@example.org', 'new')).toBe(true);
    const asked = await run(runPasswd, ['alice@example.org', ...data()], ['newer']);
    expect(asked).toMatchObject({ code: 0, out: 'password changed for alice@example.org\n' });
    expect(passwordWorks('alice@example.org', 'newer')).toBe(true);
    expect(passwordWorks('alice@example.org', 'new')).toBe(false);
  });

  it('exits 1 for a user that does not exist, without asking', async () => {
    const r = await run(runPasswd, ['nobody@example.org', ...data()], ['x']);
    expect(r.code).toBe(1);
    expect(r.prompts).toEqual([]);
  });
});

describe('hermod users', () => {
  it('lists every account in order, or one domain with --domain, across pages', async () => {
    const s = openSqliteStorage({ dataDir, iterations: 1 });
    const names: string[] = [];
    for (let i = 0; i < 1203; i++) names.push(`u${String(i).padStart(4, '0')}@a.example`);
    for (const n of names) s.users.create(n, 'pw');
    s.users.create('zed@b.example', 'pw');
    s.close();
    const all = await run(runUsers, data());
    expect(all.code).toBe(0);
    expect(all.out.split('\n').filter(Boolean)).toEqual([...names, 'zed@b.example']);
    expect((await run(runUsers, [...data(), '--domain', 'B.example'])).out).toBe('zed@b.example\n');
    expect((await run(runUsers, [...data(), '--domain', 'c.example'])).out).toBe('');
    expect((await run(runUsers, [...data(), 'extra'])).code).toBe(64);
  });
});

describe('the hermod command line', () => {
  let built = '';
  beforeAll(() => {
    built = transpile(['src']);
  });
  afterAll(() => removeTranspiled(built));

  const cli = (argv: string[], stdin: string): Promise<{ code: number | null; out: string; err: string }> =>
    new Promise((resolve) => {
      const child = spawn(process.execPath, [join(built, 'src/cli.js'), ...argv], { stdio: ['pipe', 'pipe', 'pipe'] });
      let out = '';
      let err = '';
      child.stdout.on('data', (d) => (out += d));
      child.stderr.on('data', (d) => (err += d));
      child.on('close', (code) => resolve({ code, out, err }));
      child.stdin.end(stdin);
    });

  it('reads the password from the first line of standard input and sets exit codes', async () => {
    const add = await cli(['adduser', 'alice@example.org', '--data', dataDir], 'from stdin\nignored\n');
    expect(add).toMatchObject({ code: 0, out: 'created alice@example.org\n' });
    expect(passwordWorks('alice@example.org', 'from stdin')).toBe(true);
    expect((await cli(['adduser', 'alice@example.org', '--data', dataDir], 'x\n')).code).toBe(1);
    expect((await cli(['adduser', 'bob@example.org', '--data', dataDir], '')).code).toBe(1);
    expect((await cli(['users', '--data', dataDir], '')).out).toBe('alice@example.org\n');
    expect((await cli(['deluser', 'alice@example.org', '--data', dataDir], '')).code).toBe(0);
    expect((await cli(['deluser', 'alice@example.org', '--data', dataDir], '')).code).toBe(1);
    expect((await cli(['users', '--frobnicate'], '')).code).toBe(64);
  });
});

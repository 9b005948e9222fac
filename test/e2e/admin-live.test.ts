/**
 * The admin channel against a real `hermod serve` process (dist/, run `npm run build` first):
 * `hermod sessions` lists live sessions, `hermod kick` closes them with a stream error, and
 * `deluser` / `passwd` close the live sessions of the account they change. Exit codes: 0 done,
 * 1 nothing to do / no server running, 64 usage. The same suite runs against `--workers 0` (all
 * on the main thread) and `--workers 2` (the main thread asks both shards).
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { existsSync, mkdtempSync, rmSync, statSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { openSqliteStorage } from '../../src/storage/sqlite.js';
import { PASSWORDS, RawClient } from './harness.js';

const CLI = resolve(import.meta.dirname, '../../dist/src/cli.js');

function hermod(argv: string[], stdin = ''): Promise<{ code: number | null; out: string; err: string }> {
  return new Promise((done) => {
    const child = spawn(process.execPath, [CLI, ...argv], { stdio: ['pipe', 'pipe', 'pipe'] });
    let out = '';
    let err = '';
    child.stdout.on('data', (d) => (out += d));
    child.stderr.on('data', (d) => (err += d));
    child.on('close', (code) => done({ code, out, err }));
    child.stdin.end(stdin);
  });
}

describe.each([0, 2])('against hermod serve --workers %i', (workers) => {
  let dir: string;
  let proc: ChildProcess;
  let port = 0;
  let output = '';
  /** The SHARD column: 'main' inline, the shard's index with --workers N. */
  const shard = workers === 0 ? 'main' : '[0-9]+';

  beforeAll(async () => {
    if (!existsSync(join(resolve(import.meta.dirname, '../../dist/src/admin/channel.js')))) {
      throw new Error('dist/ has no admin channel: run `npm run build` first');
    }
    dir = mkdtempSync(join(tmpdir(), 'hermod-admin-live-'));
    const storage = openSqliteStorage({ dataDir: dir, iterations: 16 });
    for (const [user, password] of Object.entries(PASSWORDS)) storage.users.create(`${user}@localhost`, password);
    storage.close();
    const argv = ['serve', '--port', '0', '--tls-port', 'off', '--data', dir, '--tls', 'optional', '--workers', String(workers)];
    proc = spawn(process.execPath, [CLI, ...argv], {
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    proc.stdout!.on('data', (d: Buffer) => (output += d.toString()));
    proc.stderr!.on('data', (d: Buffer) => (output += d.toString()));
    for (let i = 0; i < 400 && port === 0; i++) {
      port = Number(/listening on 127\.0\.0\.1:(\d+) \(c2s/.exec(output)?.[1] ?? 0);
      if (port === 0) await new Promise((r) => setTimeout(r, 50));
    }
    if (port === 0) throw new Error(`server did not start: ${output}`);
  });

  afterAll(async () => {
    if (proc) {
      const exited = new Promise((r) => proc.once('exit', r));
      proc.kill('SIGTERM');
      await exited;
    }
    rmSync(dir, { recursive: true, force: true });
  });

  async function login(user: string, resource: string): Promise<RawClient> {
    const c = await RawClient.connect(port);
    await c.login(user, { tls: false, resource });
    return c;
  }

  describe('hermod sessions / kick against a running server', () => {
    it('keeps the admin socket private to the server account (mode 0600)', () => {
      expect(statSync(join(dir, 'hermod.sock')).mode & 0o777).toBe(0o600);
    });

    it('lists live sessions with JID, address, start, transport, TLS, SM and shard', async () => {
      const a = await login('alice', 'pc');
      const b = await login('bob', 'phone');
      try {
        const r = await hermod(['sessions', '--data', dir]);
        expect(r.code).toBe(0);
        const lines = r.out.trim().split('\n');
        expect(lines[0]).toMatch(/^JID\s+IP\s+SINCE\s+TRANSPORT\s+TLS\s+SM\s+SHARD$/);
        expect(lines.slice(1).sort()).toEqual([
          expect.stringMatching(new RegExp(`^alice@localhost/pc\\s+127\\.0\\.0\\.1\\s+\\d{4}-\\d\\d-\\d\\dT\\S+Z\\s+c2s\\s+no\\s+no\\s+${shard}$`)),
          expect.stringMatching(new RegExp(`^bob@localhost/phone\\s+127\\.0\\.0\\.1\\s+\\S+\\s+c2s\\s+no\\s+no\\s+${shard}$`)),
        ]);
        if (workers > 1) {
          // Spread over the shards (fewest connections first): the list is the union of both.
          const shards = new Set(lines.slice(1).map((l) => l.split(/\s+/).pop()));
          expect(shards.size).toBe(2);
        }
        const json = await hermod(['sessions', '--json', '--data', dir]);
        const rows = json.out.trim().split('\n').map((l) => JSON.parse(l) as { jid: string });
        expect(rows.map((x) => x.jid).sort()).toEqual(['alice@localhost/pc', 'bob@localhost/phone']);
      } finally {
        a.close();
        b.close();
      }
    });

    it('lists a detached XEP-0198 session with the address and start of its connection (XEP-0198 §5)', async () => {
      const started = Date.now();
      const c = await login('alice', 'gone');
      c.send("<enable xmlns='urn:xmpp:sm:3' resume='true'/>");
      await c.waitFor('<enabled');
      // The link dies without a closing tag: the session waits for a <resume/>.
      c.close();
      let row: { jid: string; ip: string; since: string; transport: string; tls: boolean; sm: boolean } | undefined;
      for (let i = 0; i < 100 && !row; i++) {
        const json = await hermod(['sessions', '--json', '--data', dir]);
        row = json.out.trim().split('\n').filter(Boolean).map((l) => JSON.parse(l) as NonNullable<typeof row>).find((x) => x.jid === 'alice@localhost/gone');
      }
      expect(row).toMatchObject({ ip: '127.0.0.1', transport: 'c2s', tls: false, sm: true });
      const since = Date.parse(row!.since);
      expect(since).toBeGreaterThanOrEqual(started - 1000);
      expect(since).toBeLessThanOrEqual(Date.now());
      expect((await hermod(['kick', 'alice@localhost/gone', '--data', dir])).code).toBe(0);
    });

    it('kicks one resource or every session of an account with policy-violation and the reason', async () => {
      const pc = await login('alice', 'pc');
      const phone = await login('alice', 'phone');
      const bob = await login('bob', 'x');
      try {
        const one = await hermod(['kick', 'alice@localhost/phone', '--reason', 'maintenance', '--data', dir]);
        expect(one).toMatchObject({ code: 0, out: 'closed 1 session(s) of alice@localhost/phone\n' });
        await phone.waitClosed();
        expect(phone.received).toContain(
          "<stream:error><policy-violation xmlns='urn:ietf:params:xml:ns:xmpp-streams'/><text xmlns='urn:ietf:params:xml:ns:xmpp-streams'>maintenance</text></stream:error>",
        );
        expect(pc.closed).toBe(false);
        const all = await hermod(['kick', 'alice', '--data', dir]);
        expect(all.code).toBe(0);
        await pc.waitClosed();
        expect(pc.received).toContain('<policy-violation');
        expect(bob.closed).toBe(false);
        const none = await hermod(['kick', 'alice@localhost', '--data', dir]);
        expect(none.code).toBe(1);
        expect(none.err).toContain('no live session of alice@localhost');
      } finally {
        bob.close();
      }
    });

    it('refuses a malformed JID or a missing one with exit 64', async () => {
      expect((await hermod(['kick', '--data', dir])).code).toBe(64);
      expect((await hermod(['kick', 'a@b@c', '--data', dir])).code).toBe(64);
      expect((await hermod(['sessions', 'extra', '--data', dir])).code).toBe(64);
    });

    it('passwd and deluser close the live sessions of the account they change', async () => {
      const c = await login('carol', 'pc');
      const p = await hermod(['passwd', 'carol@localhost', '--data', dir], 'new-secret\n');
      expect(p.code).toBe(0);
      expect(p.out).toContain('closed 1 live session(s) of carol@localhost');
      await c.waitClosed();
      expect(c.received).toContain('<not-authorized');
      expect(c.received).toContain('password changed by the server administrator');
      // The kick made every shard's credential cache look for the write: the old password is refused.
      await expect(login('carol', 'pc')).rejects.toThrow(/not-authorized/);

      const b = await login('bob', 'pc');
      const d = await hermod(['deluser', 'bob@localhost', '--data', dir]);
      expect(d.code).toBe(0);
      expect(d.out).toContain('closed 1 live session(s) of bob@localhost');
      await b.waitClosed();
      expect(b.received).toContain('account deleted by the server administrator');
      await expect(login('bob', 'pc')).rejects.toThrow(/not-authorized/);
    });
  });
});

describe('without a running server', () => {
  it('sessions and kick exit 1 with a message; deluser still works', async () => {
    const empty = mkdtempSync(join(tmpdir(), 'hermod-admin-none-'));
    try {
      const s = await hermod(['sessions', '--data', empty]);
      expect(s.code).toBe(1);
      expect(s.err).toMatch(/no server is running with data directory/);
      expect((await hermod(['kick', 'alice@localhost', '--data', empty])).code).toBe(1);
      expect((await hermod(['adduser', 'dave@localhost', 'pw', '--data', empty])).code).toBe(0);
      expect(await hermod(['deluser', 'dave@localhost', '--data', empty])).toMatchObject({ code: 0, out: 'deleted dave@localhost\n' });
    } finally {
      rmSync(empty, { recursive: true, force: true });
    }
  });
});

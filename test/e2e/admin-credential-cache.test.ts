/**
 * `hermod passwd` / `hermod deluser` write from another process, then ask the running server to
 * close the account's streams. The server's login credential cache (src/storage/credential-cache.ts)
 * hears of other processes' writes by polling a counter; a client that reconnects right after
 * the kick must already meet the new state, not the cached credentials of the old one.
 * The poll is set to an hour here so the outcome does not depend on when the timer fires.
 */
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { runDelUser, runPasswd, type AdminIo } from '../../src/admin/users.js';
import { parseServeArgs } from '../../src/config/flags.js';
import { startServer, type HermodServer } from '../../src/server.js';
import { openSqliteStorage } from '../../src/storage/sqlite.js';
import { PASSWORDS, RawClient } from './harness.js';

const quiet: AdminIo = { out: () => {}, err: () => {}, readPassword: async () => null, interactive: false, env: {} };

describe('credential cache and the admin commands of another process', () => {
  let dir: string;
  let server: HermodServer;

  beforeEach(async () => {
    dir = mkdtempSync(join(tmpdir(), 'hermod-admin-cache-'));
    const storage = openSqliteStorage({ dataDir: dir, iterations: 16, externalCheckMs: 3_600_000 });
    for (const [user, password] of Object.entries(PASSWORDS)) storage.users.create(`${user}@localhost`, password);
    const args = parseServeArgs(['--port', '0', '--tls-port', 'off', '--data', dir, '--domain', 'localhost', '--tls', 'optional'], {});
    server = await startServer(args.loaded!.config, { storage });
  });

  afterEach(async () => {
    await server.shutdown();
    server.storage.close();
    rmSync(dir, { recursive: true, force: true });
  });

  async function login(user: string, password = PASSWORDS[user]!): Promise<RawClient> {
    const c = await RawClient.connect(server.c2s.port);
    await c.login(user, { tls: false, resource: 'r', password });
    return c;
  }

  it('refuses the old password on the reconnect that follows hermod passwd (RFC 6120 §6.5.10 not-authorized)', async () => {
    const first = await login('carol');
    expect((await passwd('carol@localhost', 'carol-new-password')).code).toBe(0);
    await first.waitClosed();
    await expect(login('carol')).rejects.toThrow(/not-authorized/);
    (await login('carol', 'carol-new-password')).close();
  });

  it('refuses a deleted account on the reconnect that follows hermod deluser', async () => {
    const first = await login('bob');
    expect((await deluser('bob@localhost')).code).toBe(0);
    await first.waitClosed();
    await expect(login('bob')).rejects.toThrow(/not-authorized/);
  });

  async function passwd(account: string, password: string) {
    return { code: await runPasswd([account, password, '--data', dir], quiet) };
  }

  async function deluser(account: string) {
    return { code: await runDelUser([account, '--data', dir], quiet) };
  }
});

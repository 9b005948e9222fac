/**
 * The login credential cache (src/storage/credential-cache.ts) with --workers 2: after a password
 * change — in-band (XEP-0077 §3.3) on one shard, or by another process on the same file (what
 * `hermod passwd` does) — no shard lets the old password in, whatever it cached before, and the
 * new one works everywhere.
 */
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import { startShardedServer, type ShardedServer } from '../../src/shard/serve.js';
import { openStorage } from '../../src/storage/index.js';
import { PASSWORDS, RawClient } from './harness.js';
import { shardedConfig } from './shard-helpers.js';

let server: ShardedServer;
let dataDir: string;
let port: number;

beforeAll(async () => {
  dataDir = mkdtempSync(join(tmpdir(), 'hermod-login-cache-shards-'));
  const storage = openStorage({ dataDir });
  for (const [user, password] of Object.entries(PASSWORDS)) storage.users.create(`${user}@localhost`, password);
  storage.close();
  const config = shardedConfig(dataDir, 2);
  config.limits.authFailureDelay = 0;
  config.limits.authBanFailures = 1000;
  server = await startShardedServer(config);
  port = server.c2s.port;
});

afterAll(async () => {
  await server?.shutdown();
  if (dataDir) rmSync(dataDir, { recursive: true, force: true });
});

const open: RawClient[] = [];
afterEach(() => {
  for (const c of open.splice(0)) c.close();
});

/** Whether `password` logs alice in, on a fresh connection (connections alternate between shards). */
async function logsIn(password: string): Promise<boolean> {
  const c = await RawClient.connect(port);
  open.push(c);
  try {
    await c.login('alice', { tls: false, password, resource: `r${open.length}` });
    return true;
  } catch {
    return false;
  }
}

/** Enough logins that every shard has read (and cached) alice's credentials. */
const TRIES = 4;
async function outcomes(password: string): Promise<boolean[]> {
  const out: boolean[] = [];
  for (let i = 0; i < TRIES; i++) out.push(await logsIn(password));
  return out;
}

describe('login credential cache across shards', () => {
  it('refuses the old password on every shard right after an in-band password change (XEP-0077 §3.3)', async () => {
    expect(await outcomes(PASSWORDS.alice!)).toEqual(Array(TRIES).fill(true));
    const c = await RawClient.connect(port);
    open.push(c);
    await c.login('alice', { tls: false, resource: 'changer' });
    c.send("<iq type='set' id='pw1'><query xmlns='jabber:iq:register'><username>alice</username><password>changed-in-band</password></query></iq>");
    expect(await c.waitFor(/<iq[^>]*id='pw1'[^>]*>/)).toMatch(/type='result'/);
    expect(await outcomes(PASSWORDS.alice!)).toEqual(Array(TRIES).fill(false));
    expect(await outcomes('changed-in-band')).toEqual(Array(TRIES).fill(true));
  });

  it('refuses the old password once the server has noticed a change made by another process', async () => {
    expect(await outcomes('changed-in-band')).toEqual(Array(TRIES).fill(true));
    const cli = openStorage({ dataDir });
    cli.users.setPassword('alice@localhost', 'changed-by-cli');
    cli.close();
    // The server looks for other processes' writes every 250 ms.
    await new Promise((r) => setTimeout(r, 700));
    expect(await outcomes('changed-in-band')).toEqual(Array(TRIES).fill(false));
    expect(await outcomes('changed-by-cli')).toEqual(Array(TRIES).fill(true));
  });
});

/**
 * XEP-0045 Multi-User Chat with a real client: slixmpp's xep_0045 plugin
 * (interop_slixmpp_muc.py) over TCP against a server started with muc.enabled, inline
 * (--workers 0) and sharded (--workers 2: the rooms on the main thread, alice and bob on either
 * shard, src/muc/main.ts).
 */
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startShardedServer } from '../../src/shard/serve.js';
import { openStorage } from '../../src/storage/index.js';
import { PASSWORDS, runPythonClient, startTestServer } from './harness.js';
import { shardedConfig } from './shard-helpers.js';

const SCRIPT = fileURLToPath(new URL('./interop_slixmpp_muc.py', import.meta.url));

/** A server with muc.enabled: `hermod serve` inline, or the sharded one; its c2s port and stop. */
async function start(workers: number): Promise<{ port: number; stop: () => Promise<void> }> {
  const dir = mkdtempSync(join(tmpdir(), 'hermod-muc-'));
  if (workers === 0) {
    const file = join(dir, 'hermod.yml');
    writeFileSync(file, 'muc:\n  enabled: true\n');
    const t = await startTestServer(['--config', file]);
    return { port: t.port, stop: async () => (await t.stop(), rmSync(dir, { recursive: true, force: true })) };
  }
  const storage = openStorage({ dataDir: dir, offlineLimit: 100 });
  for (const [user, password] of Object.entries(PASSWORDS)) storage.users.create(`${user}@localhost`, password);
  storage.close();
  const config = shardedConfig(dir, workers);
  config.muc.enabled = true;
  const server = await startShardedServer(config, { adminChannel: false });
  return { port: server.c2s.port, stop: async () => (await server.shutdown(), rmSync(dir, { recursive: true, force: true })) };
}

describe.each([0, 2])('slixmpp xep_0045 (multi-user chat), --workers %i', (workers) => {
  let t: { port: number; stop: () => Promise<void> };
  let r: Record<string, unknown>;

  beforeAll(async () => {
    t = await start(workers);
    r = await runPythonClient(SCRIPT, ['127.0.0.1', String(t.port), PASSWORDS.alice!, PASSWORDS.bob!], 80_000);
  }, 90_000);

  afterAll(async () => {
    await t?.stop();
  });

  it('lists the service in the server disco#items with identity conference/text (XEP-0045 §6.1)', () => {
    expect(r.server_items).toContain('conference.localhost');
    expect(r.service_identities).toEqual([['conference', 'text']]);
    expect(r.service_features).toContain('http://jabber.org/protocol/muc');
  });

  it('creates a locked room owned by its creator (201, 110) and takes the owner form (§10.1)', () => {
    expect(r.created_codes).toEqual([110, 201]);
    expect(r.alice_role).toEqual(['owner', 'moderator']);
    expect(r.config_fields).toEqual(expect.arrayContaining(['muc#roomconfig_roomname', 'muc#roomconfig_persistentroom', 'muc#roomconfig_membersonly', 'muc#roomconfig_whois']));
  });

  it('lets a second user join with subject and history, both seeing each other (§7.2)', () => {
    expect(r.bob_codes).toEqual([110]);
    expect(r.bob_subject).toBe('Launch plans');
    // slixmpp reports every occupant presence of the join, its own included.
    expect(r.bob_sees).toEqual(['Alice', 'Bob']);
    expect(r.bob_history).toEqual(['before bob']);
    expect(r.bob_history_delayed).toBe(true);
    expect(r.alice_roster).toEqual(['Alice', 'Bob']);
    expect(r.alice_sees_bob_jid).toBe('bob@localhost/phone');
  });

  it('reflects groupchat to every occupant, the sender included (§7.4)', () => {
    expect(r.reflected).toEqual(['lobby@conference.localhost/Bob', 'hello room', 'lobby@conference.localhost/Bob', 'hello room']);
  });

  it('refuses a nickname in use and relays private messages (§7.2.8, §7.5)', () => {
    expect(r.conflict).toBe('conflict');
    expect(r.private).toEqual(['lobby@conference.localhost/Bob', 'just for you']);
  });

  it('kicks with 307, bans with 301 and refuses the banned with forbidden (§8.2, §9.1)', () => {
    expect(r.kick_codes).toEqual([110, 307]);
    expect(r.outcasts).toEqual(['bob@localhost']);
    expect(r.banned_join).toBe('forbidden');
  });

  it('destroys the room for good (§10.9)', () => {
    expect(r.destroyed).toBe('done');
    expect(r.after_destroy).toBe('item-not-found');
  });
});

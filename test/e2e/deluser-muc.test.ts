/**
 * `hermod deluser` runs in its own process: users.delete takes the account's room affiliations
 * out of the stored records, and the kick it sends through the admin socket tells the running
 * server's rooms (single process, and the main thread's rooms with --workers 2). Whoever
 * registers the name next must not own the room; a ban on the address stays.
 */
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import { runAddUser, runDelUser, runKick, type AdminIo } from '../../src/admin/users.js';
import { startServer } from '../../src/server.js';
import { startShardedServer } from '../../src/shard/serve.js';
import { openStorage } from '../../src/storage/index.js';
import { PASSWORDS, RawClient } from './harness.js';
import { shardedConfig } from './shard-helpers.js';

const quiet: AdminIo = { out: () => {}, err: () => {}, readPassword: async () => null, interactive: false, env: {} };
const ROOM = 'den@conference.localhost';
const MUC = "<x xmlns='http://jabber.org/protocol/muc'/>";
const OWNER_FORM = `<query xmlns='http://jabber.org/protocol/muc#owner'/>`;

let dir: string;
let stop: (() => Promise<void>) | null = null;

afterEach(async () => {
  await stop?.();
  stop = null;
  rmSync(dir, { recursive: true, force: true });
});

async function start(workers: number): Promise<number> {
  dir = mkdtempSync(join(tmpdir(), 'hermod-deluser-muc-'));
  const storage = openStorage({ dataDir: dir, offlineLimit: 100 });
  for (const [user, password] of Object.entries(PASSWORDS)) storage.users.create(`${user}@localhost`, password);
  storage.close();
  const config = shardedConfig(dir, workers);
  config.muc.enabled = true;
  if (workers === 0) {
    const server = await startServer(config);
    stop = async () => {
      await server.shutdown();
      server.storage.close();
    };
    return server.c2s.port;
  }
  const server = await startShardedServer(config);
  stop = () => server.shutdown();
  return server.c2s.port;
}

async function login(port: number, user: string, password = PASSWORDS[user]!): Promise<RawClient> {
  const c = await RawClient.connect(port);
  await c.login(user, { tls: false, resource: 'r', password });
  return c;
}

/** Carol, owner of a persistent room, bans bob@localhost; both accounts are then deleted by `remove` and registered again by strangers. */
async function ownerThenStrangers(port: number, remove: (carol: RawClient, account: string) => Promise<void>): Promise<[string, string][]> {
  const carol = await login(port, 'carol');
  carol.send(`<presence to='${ROOM}/Carol'>${MUC}</presence>`);
  await carol.waitFor(/status code='201'/);
  carol.send(
    `<iq type='set' id='c1' to='${ROOM}'><query xmlns='http://jabber.org/protocol/muc#owner'><x xmlns='jabber:x:data' type='submit'>` +
      `<field var='muc#roomconfig_persistentroom'><value>1</value></field></x></query></iq>` +
      `<iq type='set' id='c2' to='${ROOM}'><query xmlns='http://jabber.org/protocol/muc#admin'><item jid='bob@localhost' affiliation='outcast'/></query></iq>`,
  );
  await carol.waitFor(/id='c2'[^>]*type='result'|type='result'[^>]*id='c2'/);
  await remove(carol, 'carol@localhost');
  await carol.waitClosed();
  await remove(await login(port, 'bob'), 'bob@localhost');
  expect(await runAddUser(['carol@localhost', 'someone-else-1', '--data', dir], quiet)).toBe(0);
  expect(await runAddUser(['bob@localhost', 'someone-else-2', '--data', dir], quiet)).toBe(0);

  const stranger = await login(port, 'carol', 'someone-else-1');
  stranger.send(`<iq type='get' id='o1' to='${ROOM}'>${OWNER_FORM}</iq>`);
  expect(await stranger.waitFor(/<iq[^>]*id='o1'[\s\S]*?<\/iq>/)).toContain('<forbidden ');
  const banned = await login(port, 'bob', 'someone-else-2');
  banned.send(`<presence to='${ROOM}/Bob'>${MUC}</presence>`);
  expect(await banned.waitFor(/<presence[^>]*type='error'[\s\S]*?<\/presence>/)).toContain('<forbidden ');
  stranger.close();
  banned.close();

  const stored = openStorage({ dataDir: dir, offlineLimit: 100 });
  const rec = JSON.parse(stored.muc!.list('conference.localhost').find((r) => r.jid === ROOM)!.data) as { affiliations: [string, string][] };
  stored.close();
  return rec.affiliations;
}

describe.each([
  ['one process', 0],
  ['--workers 2', 2],
])("a deleted account's rooms (%s)", (_label, workers) => {
  it('hermod deluser: the next account of that name does not own the room; a ban on the deleted address stays', async () => {
    const port = await start(workers);
    const affiliations = await ownerThenStrangers(port, async (c, account) => {
      expect(await runDelUser([account, '--data', dir], quiet)).toBe(0);
      c.close();
    });
    expect(affiliations).toEqual([['bob@localhost', 'outcast']]);
  });

  it('XEP-0077 removal in-band: the same (with --workers, the rooms on the main thread hear it from the shard)', async () => {
    const port = await start(workers);
    const affiliations = await ownerThenStrangers(port, async (c) => {
      c.send("<iq type='set' id='rm'><query xmlns='jabber:iq:register'><remove/></query></iq>");
      await c.waitClosed();
    });
    expect(affiliations).toEqual([['bob@localhost', 'outcast']]);
  });

  it('hermod kick of a name nobody holds yet leaves a membership granted to it in advance', async () => {
    const port = await start(workers);
    const carol = await login(port, 'carol');
    carol.send(`<presence to='${ROOM}/Carol'>${MUC}</presence>`);
    await carol.waitFor(/status code='201'/);
    const admin = (id: string, jid: string, affiliation: string) =>
      `<iq type='set' id='${id}' to='${ROOM}'><query xmlns='http://jabber.org/protocol/muc#admin'><item jid='${jid}' affiliation='${affiliation}'/></query></iq>`;
    carol.send(
      `<iq type='set' id='c1' to='${ROOM}'><query xmlns='http://jabber.org/protocol/muc#owner'><x xmlns='jabber:x:data' type='submit'>` +
        `<field var='muc#roomconfig_persistentroom'><value>1</value></field></x></query></iq>` + admin('c2', 'future@localhost', 'member'),
    );
    await carol.waitFor(/id='c2'[^>]*type='result'|type='result'[^>]*id='c2'/);
    // no live session: kick exits non-zero, but the server was asked
    expect(await runKick(['future@localhost', '--data', dir], quiet)).not.toBe(0);
    // a later change writes the live room's list back to storage
    carol.send(admin('c3', 'mallory@localhost', 'outcast'));
    await carol.waitFor(/id='c3'[^>]*type='result'|type='result'[^>]*id='c3'/);
    carol.close();
    const stored = openStorage({ dataDir: dir, offlineLimit: 100 });
    const rec = JSON.parse(stored.muc!.list('conference.localhost').find((r) => r.jid === ROOM)!.data) as { affiliations: [string, string][] };
    stored.close();
    expect(rec.affiliations).toContainEqual(['future@localhost', 'member']);
  });
});

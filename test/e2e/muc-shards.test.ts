/**
 * XEP-0045 with `hermod serve --workers 2`: the rooms live on the main thread (src/muc/main.ts),
 * reached like a component; occupants on both shards hear each other, a session ending on either
 * shard takes it out of its rooms (§7.14), and a persistent room survives a restart of the
 * sharded server (its row written by the main thread's connection).
 */
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startShardedServer, type ShardedServer } from '../../src/shard/serve.js';
import { openStorage } from '../../src/storage/index.js';
import { PASSWORDS, RawClient } from './harness.js';
import { shardedConfig } from './shard-helpers.js';

const ROOM = 'den@conference.localhost';
const MUC = "<x xmlns='http://jabber.org/protocol/muc'/>";
let server: ShardedServer;
let dataDir: string;

async function start(): Promise<ShardedServer> {
  const config = shardedConfig(dataDir, 2);
  config.muc.enabled = true;
  return startShardedServer(config, { adminChannel: false });
}

beforeAll(async () => {
  dataDir = mkdtempSync(join(tmpdir(), 'hermod-muc-shards-'));
  const storage = openStorage({ dataDir, offlineLimit: 100 });
  for (const [user, password] of Object.entries(PASSWORDS)) storage.users.create(`${user}@localhost`, password);
  storage.close();
  server = await start();
});

afterAll(async () => {
  await server?.shutdown();
  rmSync(dataDir, { recursive: true, force: true });
});

/** Logged-in raw clients, one per [account, resource], on the server running now. */
async function clients(...who: [string, string][]): Promise<{ c: RawClient; jid: string }[]> {
  return Promise.all(
    who.map(async ([name, resource]) => {
      const c = await RawClient.connect(server.c2s.port);
      return { c, jid: await c.login(name, { tls: false, resource }) };
    }),
  );
}

describe('XEP-0045 with shard workers', () => {
  it('occupants on both shards join, talk, see a disconnect on the other shard; a persistent room survives a restart', async () => {
    const [alice, bob] = await clients(['alice', 'pc'], ['bob', 'phone']);
    expect(server.pool.connectionsPerShard()).toEqual([1, 1]);
    // The service is listed in the server's disco#items by every shard (§6.1).
    bob.c.send("<iq type='get' id='i1' to='localhost'><query xmlns='http://jabber.org/protocol/disco#items'/></iq>");
    expect(await bob.c.waitFor(/<iq[^>]*id='i1'[\s\S]*?<\/iq>/)).toContain("jid='conference.localhost'");

    alice.c.send(`<presence to='${ROOM}/Alice'>${MUC}</presence>`);
    expect(await alice.c.waitFor(/status code='201'/)).toContain("status code='110'");
    alice.c.send(
      `<iq type='set' id='c1' to='${ROOM}'><query xmlns='http://jabber.org/protocol/muc#owner'><x xmlns='jabber:x:data' type='submit'>` +
        `<field var='muc#roomconfig_persistentroom'><value>1</value></field></x></query></iq>`,
    );
    await alice.c.waitFor(/<iq[^>]*id='c1'[^>]*type='result'|<iq[^>]*type='result'[^>]*id='c1'/);

    bob.c.send(`<presence to='${ROOM}/Bob'>${MUC}</presence>`);
    expect(await bob.c.waitFor(/<presence[^>]*from='den@conference\.localhost\/Bob'[\s\S]*?<\/presence>/)).toContain("status code='110'");
    expect(await alice.c.waitFor(/<presence[^>]*from='den@conference\.localhost\/Bob'[\s\S]*?<\/presence>/)).toContain(`jid='${bob.jid}'`);

    bob.c.send(`<message to='${ROOM}' type='groupchat' id='g1'><body>across shards</body></message>`);
    const seen = await alice.c.waitFor(/<message[^>]*id='g1'[\s\S]*?<\/message>/);
    expect(seen).toContain("from='den@conference.localhost/Bob'");
    expect(seen).toContain('<body>across shards</body>');
    await bob.c.waitFor(/<message[^>]*id='g1'/);
    // §7.4: the sender's own muc#user <x/> (here prefixed, forging a real JID) reaches no one:
    // the main thread's room strips it as the single-process one does (muc-room.test.ts).
    bob.c.send(
      `<message to='${ROOM}' type='groupchat' id='g2'><body>spoof</body><u:x xmlns:u='http://jabber.org/protocol/muc#user'><u:item jid='ceo@localhost'/></u:x></message>`,
    );
    const g2 = /<message[^>]*id='g2'[\s\S]*?<\/message>/;
    const spoof = g2.exec(await alice.c.waitFor(g2))![0];
    // Only the body is left, besides the room's own stanza-id (this room archives).
    expect(spoof.replace(/<stanza-id [^>]*by='den@conference\.localhost'[^>]*\/>/, '')).toMatch(/^<message [^>]*><body>spoof<\/body><\/message>$/);

    // Bob's session ends on its shard: the room on the main thread hears of it (§7.14).
    bob.c.close();
    expect(await alice.c.waitFor(/<presence[^>]*from='den@conference\.localhost\/Bob'[^>]*type='unavailable'|<presence[^>]*type='unavailable'[^>]*from='den@conference\.localhost\/Bob'/)).toBeTruthy();
    alice.c.close();

    await server.shutdown();
    server = await start();
    const [carol] = await clients(['carol', 'x']);
    carol.c.send(`<iq type='get' id='i2' to='${ROOM}'><query xmlns='http://jabber.org/protocol/disco#info'/></iq>`);
    const info = await carol.c.waitFor(/<iq[^>]*id='i2'[\s\S]*?<\/iq>/);
    expect(info).toContain('muc_persistent');
    carol.c.close();
  });

  it("drops an invitation from an inviter the invitee blocks, read from the main thread's storage (§7.8.2, XEP-0191)", async () => {
    const room = 'lair@conference.localhost';
    const [alice, bob] = await clients(['alice', 'inviter'], ['bob', 'invitee']);
    try {
      // Available, so that an invitation to his bare JID reaches this session (RFC 6121 §8.5.2.1.1).
      bob.c.send('<presence/>');
      // Bob blocks alice on his shard; the rooms on the main thread read the stored list.
      bob.c.send("<iq type='set' id='blk'><block xmlns='urn:xmpp:blocking'><item jid='alice@localhost'/></block></iq>");
      await bob.c.waitFor(/<iq[^>]*id='blk'/);
      alice.c.send(`<presence to='${room}/Alice'>${MUC}</presence>`);
      await alice.c.waitFor(/status code='201'/);
      alice.c.send(`<iq type='set' id='inst' to='${room}'><query xmlns='http://jabber.org/protocol/muc#owner'><x xmlns='jabber:x:data' type='submit'/></query></iq>`);
      await alice.c.waitFor(/<iq[^>]*id='inst'/);
      bob.c.send(`<presence to='${room}/Bob'>${MUC}</presence>`);
      await bob.c.waitFor(/<presence[^>]*from='lair@conference\.localhost\/Bob'/);
      const invite = `<message to='${room}'><x xmlns='http://jabber.org/protocol/muc#user'><invite to='bob@localhost'><reason>come</reason></invite></x></message>`;
      alice.c.send(invite);
      // Handled in order on the main thread: the groupchat after the invitation reaches bob.
      alice.c.send(`<message to='${room}' type='groupchat' id='after'><body>marker</body></message>`);
      await bob.c.waitFor(/<message[^>]*id='after'/);
      expect(bob.c.received).not.toContain('<invite');
      // Unblocked, the same invitation arrives.
      bob.c.send("<iq type='set' id='unblk'><unblock xmlns='urn:xmpp:blocking'><item jid='alice@localhost'/></unblock></iq>");
      await bob.c.waitFor(/<iq[^>]*id='unblk'/);
      bob.c.take();
      alice.c.send(invite);
      expect(await bob.c.waitFor('<invite ')).toMatch(/<message from='lair@conference\.localhost' to='bob@localhost'><x [^>]*><invite from='alice@localhost'><reason>come<\/reason>/);
    } finally {
      alice.c.close();
      bob.c.close();
    }
  });
});

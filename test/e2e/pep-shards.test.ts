/**
 * XEP-0163 explicit subscriptions (XEP-0060 §6.1) with `hermod serve --workers 2`: the
 * publisher and the subscriber on different shards. The subscription is stored where every shard
 * reads it (the XML store in SQLite), and the events reach the subscriber's shard by its bare
 * JID (no caps) or at the full JID it subscribed.
 */
import { rmSync } from 'node:fs';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startShardedServer, type ShardedServer } from '../../src/shard/serve.js';
import { RawClient } from './harness.js';
import { makeDataDir, shardedConfig } from './shard-helpers.js';

const PS = "<pubsub xmlns='http://jabber.org/protocol/pubsub'>";
const NODE = 'urn:example:status';
let server: ShardedServer;
let dir: string;

beforeAll(async () => {
  dir = makeDataDir(['alice', 'eve']);
  server = await startShardedServer(shardedConfig(dir), { adminChannel: false });
});

afterAll(async () => {
  await server?.shutdown();
  rmSync(dir, { recursive: true, force: true });
});

async function login(user: string): Promise<RawClient> {
  const c = await RawClient.connect(server.c2s.port);
  await c.login(user, { tls: false, resource: 'res', password: `${user}-pw` });
  return c;
}

function publish(c: RawClient, id: string, text: string, options = ''): void {
  c.send(`<iq type='set' id='${id}'>${PS}<publish node='${NODE}'><item id='${id}'><s xmlns='urn:example'>${text}</s></item></publish>${options}</pubsub></iq>`);
}

describe('PEP explicit subscriptions across shards (XEP-0060 §6.1, §6.2)', () => {
  it('delivers the last item and later events to a subscriber on the other shard, by bare and by full JID', async () => {
    const alice = await login('alice');
    const eve = await login('eve');
    // Placed on the shard with fewer connections: one each.
    expect(server.pool.connectionsPerShard()).toEqual([1, 1]);
    try {
      publish(alice, 'p1', 'one', `<publish-options><x xmlns='jabber:x:data' type='submit'><field var='pubsub#access_model'><value>open</value></field></x></publish-options>`);
      await alice.waitFor(/<iq[^>]*id='p1'/);
      eve.send('<presence/>');
      await eve.waitFor('<presence');
      eve.take();
      eve.send(`<iq type='set' id='s1' to='alice@localhost'>${PS}<subscribe node='${NODE}' jid='eve@localhost'/></pubsub></iq>`);
      expect(await eve.waitFor(/<iq[^>]*id='s1'[^]*?<\/iq>/)).toMatch(/<subscription node='urn:example:status' jid='eve@localhost' subid='[^']+' subscription='subscribed'\/>/);
      // §6.1.7: the last item, addressed to the bare JID (eve's client sent no caps).
      expect(await eve.waitFor(/<message[^>]*type='headline'[^]*?<\/message>/)).toMatch(/<message from='alice@localhost' to='eve@localhost' type='headline'>.*>one<\/s>/);
      eve.take();
      publish(alice, 'p2', 'two');
      expect(await eve.waitFor(/<message[^>]*type='headline'[^]*?<\/message>/)).toContain('>two<');
      // Unsubscribed, then subscribed by full JID: events come to that resource.
      eve.take();
      eve.send(`<iq type='set' id='u1' to='alice@localhost'>${PS}<unsubscribe node='${NODE}' jid='eve@localhost'/></pubsub></iq>`);
      await eve.waitFor(/<iq[^>]*id='u1'[^>]*type='result'|<iq[^>]*type='result'[^>]*id='u1'/);
      eve.send(`<iq type='set' id='s2' to='alice@localhost'>${PS}<subscribe node='${NODE}' jid='eve@localhost/res'/></pubsub></iq>`);
      await eve.waitFor(/<message[^>]*to='eve@localhost\/res'[^>]*type='headline'[^]*?two[^]*?<\/message>/);
      eve.take();
      publish(alice, 'p3', 'three');
      const event = await eve.waitFor(/<message[^>]*type='headline'[^]*?three[^]*?<\/message>/);
      expect(event).toContain("to='eve@localhost/res'");
      expect(event.split('>three<').length - 1).toBe(1);
    } finally {
      alice.close();
      eve.close();
    }
  });
});

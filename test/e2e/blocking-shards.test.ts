/**
 * XEP-0191 across shards: a block set by an account on one shard is honoured by every other
 * shard from its next stanza on (the blocklist caches share a write epoch; no time-to-live).
 */
import { rmSync } from 'node:fs';
import { describe, expect, it } from 'vitest';
import { startShardedServer } from '../../src/shard/serve.js';
import { connect, makeDataDir, shardedConfig, take, type TestClient, until } from './shard-helpers.js';

describe('XEP-0191 blocking with two shards', () => {
  it('applies a block made on one shard at once to stanzas routed by the other (§3.3)', async () => {
    const dir = makeDataDir(['alice', 'bob']);
    const server = await startShardedServer(shardedConfig(dir));
    const clients: TestClient[] = [];
    try {
      const alice = connect(server.c2s.port, 'alice', 'alice-pw', 'laptop');
      clients.push(alice);
      await alice.ready;
      const bob = connect(server.c2s.port, 'bob', 'bob-pw', 'phone');
      clients.push(bob);
      await bob.ready;
      expect(server.pool.connectionsPerShard()).toEqual([1, 1]);
      for (const c of [alice, bob]) c.client.send('<presence/>');

      // Bob's shard reads alice's (empty) blocklist: the message goes through.
      bob.client.send("<message to='alice@localhost' type='chat' id='m1'><body>before the block</body></message>");
      await until('alice gets the first message', () => take(alice, /before the block/));

      // Alice blocks bob on her shard. Her own refused message proves the block is stored and in
      // force there (it is answered after the block IQ, on the same stream).
      alice.client.send("<iq type='set' id='b1'><block xmlns='urn:xmpp:blocking'><item jid='bob@localhost'/></block></iq>");
      alice.client.send("<message to='bob@localhost' type='chat' id='m2'><body>to a blocked contact</body></message>");
      const refused = await until('alice is told she blocked bob', () => take(alice, /type=["']error["']/));
      expect(refused).toMatch(/<blocked xmlns=["']urn:xmpp:blocking:errors["']/);

      // At once, bob's shard refuses what bob sends to alice (service-unavailable, the block not
      // revealed): no window in which a cached copy of the old list still lets it through.
      bob.client.send("<message to='alice@localhost' type='chat' id='m3'><body>after the block</body></message>");
      const error = await until('bob is refused', () => take(bob, /type=["']error["']/));
      expect(error).toMatch(/id=["']m3["']/);
      expect(error).toMatch(/<service-unavailable/);
      expect(error).not.toMatch(/blocking:errors/);

      // Unblocking on alice's shard opens the way again at once.
      alice.client.send("<iq type='set' id='u1'><unblock xmlns='urn:xmpp:blocking'><item jid='bob@localhost'/></unblock></iq>");
      alice.client.send("<message to='bob@localhost' type='chat' id='m4'><body>unblocked now</body></message>");
      await until('bob gets alice after the unblock', () => take(bob, /unblocked now/));
      bob.client.send("<message to='alice@localhost' type='chat' id='m5'><body>hello again</body></message>");
      await until('alice gets bob after the unblock', () => take(alice, /hello again/));
      expect(take(alice, /after the block/)).toBeUndefined();
    } finally {
      for (const c of clients) c.client.close();
      await server.shutdown();
      rmSync(dir, { recursive: true, force: true });
    }
  });
});

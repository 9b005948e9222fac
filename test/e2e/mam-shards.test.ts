/**
 * XEP-0313 with two shards: a message is routed (and archived) on its sender's shard, into the
 * SQLite file every shard shares; the recipient, on the other shard, reads it from its archive
 * under the stanza-id it was delivered with.
 */
import { rmSync } from 'node:fs';
import { describe, expect, it } from 'vitest';
import { startShardedServer } from '../../src/shard/serve.js';
import { connect, makeDataDir, shardedConfig, take, type TestClient, until } from './shard-helpers.js';

const attr = (xml: string, name: string): string | undefined => new RegExp(`\\s${name}=["']([^"']*)["']`).exec(xml)?.[1];

/**
 * Ask `t`'s archive until it holds `n` messages. Another shard writes its archive rows a moment
 * after delivery (storage/archive-sqlite.ts batches them), so a query may come too early: ask
 * again, each time with a new queryid, and return the result messages of the first full answer.
 */
async function archived(t: TestClient, n: number): Promise<string[]> {
  for (let attempt = 0; ; attempt++) {
    const queryid = `q${attempt}`;
    t.client.send(`<iq type='set' id='${queryid}'><query xmlns='urn:xmpp:mam:2' queryid='${queryid}'/></iq>`);
    const re = new RegExp(`queryid=["']${queryid}["']`);
    try {
      return await until(
        `${n} archived messages`,
        () => (t.stanzas.filter((s) => re.test(s)).length >= n ? t.stanzas.filter((s) => re.test(s)) : undefined),
        1000,
      );
    } catch (err) {
      if (attempt >= 20) throw err;
    }
  }
}

describe('XEP-0313 with two shards', () => {
  it('archives on the sender shard what the recipient shard delivers and serves (shared SQLite)', async () => {
    const dir = makeDataDir(['alice', 'bob']);
    const config = shardedConfig(dir);
    config.mam.default = 'always'; // alice and bob have no roster entries
    const server = await startShardedServer(config);
    const clients: TestClient[] = [];
    try {
      // One after the other, so that each lands on its own shard.
      for (const user of ['alice', 'bob']) {
        clients.push(connect(server.c2s.port, user, `${user}-pw`, 'mam'));
        await clients[clients.length - 1]!.ready;
      }
      const [alice, bob] = clients as [TestClient, TestClient];
      expect(server.pool.connectionsPerShard()).toEqual([1, 1]);
      for (const c of clients) c.client.send('<presence/>');

      const live: string[] = [];
      for (let i = 0; i < 3; i++) {
        alice.client.send(`<message to='bob@localhost' type='chat' id='m${i}'><body>across shards ${i}</body></message>`);
        live.push(await until(`bob gets message ${i}`, () => take(bob, new RegExp(`across shards ${i}`))));
      }
      const liveIds = live.map((m) => /<stanza-id[^>]*by=["']bob@localhost["'][^>]*>/.exec(m)?.[0]).map((tag) => tag && attr(tag, 'id'));
      expect(liveIds.every((id) => typeof id === 'string')).toBe(true);

      const bobs = await archived(bob, 3);
      expect(bobs.map((m) => /across shards (\d)/.exec(m)?.[1])).toEqual(['0', '1', '2']);
      expect(bobs.map((m) => attr(/<result[^>]*>/.exec(m)![0], 'id'))).toEqual(liveIds);
      const alices = await archived(alice, 3);
      expect(alices.map((m) => attr(/<result[^>]*>/.exec(m)![0], 'id'))).toEqual(liveIds);

      // XEP-0441: bob, on the other shard, stops archiving; alice's shard read (and cached) his
      // preferences for the messages above, and must heed the change from the very next message
      // (the shared write epoch, storage/archive-prefs-cache.ts), with no time-to-live to wait out.
      bob.client.send(`<iq type='set' id='p1'><prefs xmlns='urn:xmpp:mam:2' default='never'><always/><never/></prefs></iq>`);
      // This client reports no IQ results: a message bob sends himself after the IQ comes back
      // once his shard has handled the IQ (one session's stanzas are handled in order).
      bob.client.send(`<message to='bob@localhost/mam' type='chat' id='sync'><body>prefs set</body></message>`);
      await until('bob prefs stored', () => take(bob, /prefs set/));
      alice.client.send(`<message to='bob@localhost' type='chat' id='m9'><body>not for his archive</body></message>`);
      const after = await until('bob gets message 9', () => take(bob, /not for his archive/));
      expect(after).not.toMatch(/by=["']bob@localhost["']/);
      expect(after).toMatch(/by=["']alice@localhost["']/);
    } finally {
      for (const c of clients) c.client.close();
      await server.shutdown();
      rmSync(dir, { recursive: true, force: true });
    }
  });
});

/**
 * Found by running slixmpp (with its usual plugins) against `serve --workers 2`:
 * - the shards did not offer the modules' post-bind stream features (`<csi/>`, roster `<ver/>`,
 *   pre-approval `<sub/>`), so a client that checks features before using CSI never went
 *   inactive. Every connection must see the same features whichever shard holds it, and the same
 *   as with `--workers 0`;
 * - a reconnecting client that binds its resource again on the other shard replaced the old
 *   session, and both shards announced the old session's unavailable presence: contacts and
 *   the account's other resources got it twice, the second copy possibly after the new
 *   session's available presence.
 */
import { rmSync } from 'node:fs';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startShardedServer, type ShardedServer } from '../../src/shard/serve.js';
import { PASSWORDS, RawClient, STREAM_HEADER, startTestServer, type TestServer } from './harness.js';
import { makeDataDir, shardedConfig } from './shard-helpers.js';

/** Plain-TCP login up to the features offered after SASL (RFC 6120 §6.4.6). */
async function postAuthFeatures(port: number, user: string, password: string): Promise<{ features: string; client: RawClient }> {
  const client = await RawClient.connect(port);
  client.send(STREAM_HEADER);
  await client.waitFor('</stream:features>');
  client.take();
  const payload = Buffer.from(`\0${user}\0${password}`).toString('base64');
  client.send(`<auth xmlns='urn:ietf:params:xml:ns:xmpp-sasl' mechanism='PLAIN'>${payload}</auth>`);
  await client.waitFor('<success');
  client.take();
  client.send(STREAM_HEADER);
  const text = await client.waitFor('</stream:features>');
  return { features: /<stream:features>[\s\S]*<\/stream:features>/.exec(text)![0], client };
}

describe('post-bind stream features are the same on every shard', () => {
  let inline: TestServer;
  let sharded: ShardedServer;
  let shardedData = '';
  const clients: RawClient[] = [];

  beforeAll(async () => {
    inline = await startTestServer(['--tls', 'optional']);
    shardedData = makeDataDir(['alice', 'bob', 'carol']);
    sharded = await startShardedServer(shardedConfig(shardedData, 2));
  }, 60_000);

  afterAll(async () => {
    for (const c of clients) c.close();
    await sharded?.shutdown();
    if (shardedData) rmSync(shardedData, { recursive: true, force: true });
    await inline?.stop();
  });

  it('offers XEP-0352 <csi/> and the inline server\'s features on each of several connections (--workers 2)', async () => {
    const reference = await postAuthFeatures(inline.port, 'alice', PASSWORDS.alice!);
    clients.push(reference.client);
    expect(reference.features).toContain("<csi xmlns='urn:xmpp:csi:0'/>");
    // Four logins: connections are spread over both shards.
    for (const user of ['alice', 'bob', 'carol', 'alice']) {
      const { features, client } = await postAuthFeatures(sharded.c2s.port, user, `${user}-pw`);
      clients.push(client);
      expect(features).toBe(reference.features);
    }
    expect(sharded.pool.connectionsPerShard().every((n) => n > 0)).toBe(true);
  }, 30_000);
});

describe('a resource bound again on the other shard replaces the old session (--workers 2)', () => {
  let sharded: ShardedServer;
  let dir = '';
  const clients: RawClient[] = [];

  beforeAll(async () => {
    dir = makeDataDir(['alice']);
    sharded = await startShardedServer(shardedConfig(dir, 2));
  }, 60_000);

  afterAll(async () => {
    for (const c of clients) c.close();
    await sharded?.shutdown();
    if (dir) rmSync(dir, { recursive: true, force: true });
  });

  /** Connect and report which shard took the connection (the one whose count grew). */
  async function connectTracked(): Promise<{ client: RawClient; shard: number }> {
    const before = sharded.pool.connectionsPerShard();
    const client = await RawClient.connect(sharded.c2s.port);
    clients.push(client);
    for (let i = 0; i < 100; i++) {
      const now = sharded.pool.connectionsPerShard();
      const shard = now.findIndex((n, k) => n > before[k]!);
      if (shard >= 0) return { client, shard };
      await new Promise((r) => setTimeout(r, 10));
    }
    throw new Error('the connection reached no shard');
  }

  it('withdraws the old session\'s presence once, before the new session\'s (RFC 6120 §7.7.2.2, RFC 6121 §4.5.2)', async () => {
    const laptop = (await connectTracked()).client;
    await laptop.login('alice', { tls: false, resource: 'laptop', password: 'alice-pw' });
    laptop.send('<presence/>');
    const old = await connectTracked();
    await old.client.login('alice', { tls: false, resource: 'phone', password: 'alice-pw' });
    old.client.send('<presence/>');
    await laptop.waitFor("<presence from='alice@localhost/phone'/>");
    laptop.take();
    // The reconnecting client must land on the other shard; connections that land on the old
    // one stay open as fillers until one does.
    let fresh = await connectTracked();
    for (let i = 0; fresh.shard === old.shard && i < 6; i++) fresh = await connectTracked();
    expect(fresh.shard).not.toBe(old.shard);
    await fresh.client.login('alice', { tls: false, resource: 'phone', password: 'alice-pw' });
    fresh.client.send('<presence/>');
    await old.client.waitFor('<conflict');
    await laptop.waitFor(/type='unavailable'\/>[\s\S]*<presence from='alice@localhost\/phone'\/>/);
    // Anything late (a second unavailable from the old session's shard) would arrive by now.
    await new Promise((r) => setTimeout(r, 500));
    const phone = laptop.received.match(/<presence from='alice@localhost\/phone'[^>]*>/g) ?? [];
    expect(phone).toEqual(["<presence from='alice@localhost/phone' type='unavailable'/>", "<presence from='alice@localhost/phone'/>"]);
  }, 30_000);
});

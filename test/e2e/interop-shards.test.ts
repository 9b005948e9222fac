/**
 * Found with slixmpp's XEP-0352 plugin against `serve --workers 2`: the shards did not offer the
 * modules' post-bind stream features (`<csi/>`, roster `<ver/>`, pre-approval `<sub/>`), so a
 * client that checks features before using CSI never went inactive. Every connection must see
 * the same features whichever shard holds it, and the same as with `--workers 0`.
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

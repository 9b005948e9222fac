import { rmSync } from 'node:fs';
import { join } from 'node:path';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { startShardedServer, type ShardedServer } from '../../src/shard/serve.js';
import { Metrics } from '../../src/observability/metrics.js';
import { ShardPool, type ShardEvent } from '../../src/shard/pool.js';
import { connect, makeDataDir, shardedConfig, take, type TestClient, until } from './shard-helpers.js';

describe('sharded server: a shard thread that crashes', () => {
  let dir: string;
  let server: ShardedServer;
  const events: ShardEvent[] = [];
  const clients: TestClient[] = [];

  beforeEach(async () => {
    dir = makeDataDir(['alice', 'bob', 'carol']);
    const config = shardedConfig(dir);
    server = await startShardedServer(config, { onEvent: (e) => events.push(e) });
  });

  afterEach(async () => {
    for (const c of clients) c.client.close();
    await server.shutdown();
    rmSync(dir, { recursive: true, force: true });
  });

  const login = async (user: string): Promise<TestClient> => {
    const c = connect(server.c2s.port, user, `${user}-pw`);
    clients.push(c);
    await c.ready;
    return c;
  };

  it('closes its streams with internal-server-error, is replaced, and the other shard carries on', async () => {
    const alice = await login('alice');
    const bob = await login('bob');
    // One connection per shard: the pool gives each new connection to the emptiest shard.
    expect(server.pool.connectionsPerShard()).toEqual([1, 1]);

    server.pool.crash(0);
    // RFC 6120 §4.9.3.8: the stream ends with <internal-server-error/>.
    await until('alice to be disconnected', () => alice.closed !== undefined);
    expect(alice.closed).toBe('stream error: internal-server-error');
    await until('the crash event', () => events.find((e) => e.type === 'crashed'));
    expect(events.find((e) => e.type === 'crashed')).toMatchObject({ shard: 0, connections: 1 });

    await server.pool.whenUp(0);
    expect(events.filter((e) => e.type === 'started' && e.shard === 0).map((e) => (e as { generation: number }).generation)).toContain(1);
    // bob's session on shard 1 survived, and a newcomer on the replacement shard reaches him.
    expect(bob.closed).toBeUndefined();
    const carol = await login('carol');
    expect(server.pool.connectionsPerShard()).toEqual([1, 1]);
    carol.client.send("<message to='bob@localhost/e2e' type='chat' id='c1'><body>still there?</body></message>");
    const atBob = await until('carol → bob', () => take(bob, /still there\?/));
    expect(atBob).toContain("from='carol@localhost/e2e'");
    bob.client.send("<message to='carol@localhost/e2e' type='chat' id='b1'><body>yes</body></message>");
    await until('bob → carol', () => take(carol, /<body>yes<\/body>/));
  });
});

describe('sharded server: metrics', () => {
  it('counts each shard in its own block of the /metrics registry', async () => {
    const dir = makeDataDir(['alice', 'bob']);
    const metrics = new Metrics({ processMetrics: false });
    const server = await startShardedServer(shardedConfig(dir), { metrics });
    const clients: TestClient[] = [];
    try {
      for (const u of ['alice', 'bob']) {
        const c = connect(server.c2s.port, u, `${u}-pw`);
        clients.push(c);
        await c.ready;
      }
      const text = await until('both shards to report a bound session', async () => {
        const t = await metrics.text();
        return /hermod_shard_sessions\{shard="0"\} 1/.test(t) && /hermod_shard_sessions\{shard="1"\} 1/.test(t) ? t : undefined;
      });
      expect(text).toMatch(/hermod_shard_stanzas_in_total\{shard="1"\} [1-9]/);
    } finally {
      for (const c of clients) c.client.close();
      await server.shutdown();
      rmSync(dir, { recursive: true, force: true });
    }
  });
});

describe('sharded server: a shard that cannot start', () => {
  it('fails the start with the shard’s error instead of restarting it forever', async () => {
    const dir = makeDataDir([]);
    // A regular file where the data directory should be: the shard cannot open its database.
    const config = shardedConfig(join(dir, 'hermod.sqlite'), 1);
    const pool = new ShardPool({ shards: 1, config });
    try {
      await expect(pool.start()).rejects.toThrow();
    } finally {
      await pool.close(0);
      rmSync(dir, { recursive: true, force: true });
    }
  });
});

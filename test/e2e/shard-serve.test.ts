import { type ChildProcess, spawn } from 'node:child_process';
import { rmSync } from 'node:fs';
import { resolve } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startShardedServer, type ShardedServer } from '../../src/shard/serve.js';
import { connect, makeDataDir, shardedConfig, take, type TestClient, until, wsAuth } from './shard-helpers.js';

const ANY_QUOTE = `["']`;
const from = (jid: string): RegExp => new RegExp(`from=${ANY_QUOTE}${jid.replace(/[/.]/g, '\\$&')}${ANY_QUOTE}`);

/**
 * Two accounts, each on its own shard, become contacts through the real subscription protocol
 * (RFC 6121 §3.1), then exchange presence (§4) and messages (§5) in both directions.
 */
async function contactsAcrossShards(port: number, clients: TestClient[], afterLogin?: () => void): Promise<void> {
  const alice = connect(port, 'alice', 'alice-pw', 'laptop');
  clients.push(alice);
  await alice.ready;
  const bob = connect(port, 'bob', 'bob-pw', 'phone');
  clients.push(bob);
  await bob.ready;
  afterLogin?.();
  for (const c of [alice, bob]) {
    c.client.send("<iq type='get' id='roster1'><query xmlns='jabber:iq:roster'/></iq>");
    c.client.send('<presence/>');
  }
  alice.client.send("<presence to='bob@localhost' type='subscribe'/>");
  await until('bob gets the subscription request', () => take(bob, /type=["']subscribe["']/));
  bob.client.send("<presence to='alice@localhost' type='subscribed'/>");
  bob.client.send("<presence to='alice@localhost' type='subscribe'/>");
  await until('alice gets subscribed', () => take(alice, /type=["']subscribed["']/));
  // §3.1.5: once approved, the contact's available resources' presence goes to the user.
  await until("alice gets bob's presence", () => take(alice, from('bob@localhost/phone')));
  await until('alice gets the subscription request', () => take(alice, /type=["']subscribe["']/));
  alice.client.send("<presence to='bob@localhost' type='subscribed'/>");
  await until("bob gets alice's presence", () => take(bob, from('alice@localhost/laptop')));

  // §4.4: a presence update reaches the contact on the other shard.
  bob.client.send('<presence><show>away</show><status>crossing shards</status></presence>');
  const away = await until("alice gets bob's away", () => take(alice, /<show>away<\/show>/));
  expect(away).toMatch(from('bob@localhost/phone'));

  alice.client.send("<message to='bob@localhost' type='chat' id='a1'><body>ping from shard 0</body></message>");
  const atBob = await until('bob gets the message', () => take(bob, /ping from shard 0/));
  expect(atBob).toMatch(from('alice@localhost/laptop'));
  bob.client.send("<message to='alice@localhost/laptop' type='chat' id='b1'><body>pong from shard 1</body></message>");
  const atAlice = await until('alice gets the reply', () => take(alice, /pong from shard 1/));
  expect(atAlice).toMatch(from('bob@localhost/phone'));

  // §4.5: bob leaves; alice hears it.
  bob.client.send("<presence type='unavailable'/>");
  await until("alice gets bob's unavailable", () => take(alice, /type=["']unavailable["']/));
  expect(alice.closed).toBeUndefined();
  expect(bob.closed).toBeUndefined();
}

describe('sharded server: contacts on different shards', () => {
  it('exchange presence and messages (in-process, two shards)', async () => {
    const dir = makeDataDir(['alice', 'bob']);
    const config = shardedConfig(dir);
    const server: ShardedServer = await startShardedServer(config);
    const clients: TestClient[] = [];
    try {
      await contactsAcrossShards(server.c2s.port, clients, () => expect(server.pool.connectionsPerShard()).toEqual([1, 1]));
    } finally {
      for (const c of clients) c.client.close();
      await server.shutdown();
      rmSync(dir, { recursive: true, force: true });
    }
  });

  it('carries a WebSocket session (RFC 7395) on one shard talking to a TCP session on the other', async () => {
    const dir = makeDataDir(['alice', 'bob']);
    const config = shardedConfig(dir);
    config.listen.websocket.enabled = true;
    config.listen.websocket.port = 0;
    const server = await startShardedServer(config);
    const clients: TestClient[] = [];
    const { ws, frame } = await wsAuth(server.websocket!.port, 'alice', config.listen.websocket.path);
    try {
      ws.send("<iq type='set' id='b1' xmlns='jabber:client'><bind xmlns='urn:ietf:params:xml:ns:xmpp-bind'><resource>web</resource></bind></iq>");
      await frame(/alice@localhost\/web/);
      const bob = connect(server.c2s.port, 'bob', 'bob-pw', 'tcp');
      clients.push(bob);
      await bob.ready;
      expect(server.pool.connectionsPerShard()).toEqual([1, 1]);
      ws.send("<message xmlns='jabber:client' to='bob@localhost/tcp' type='chat'><body>from the browser</body></message>");
      expect(await until('bob gets the WebSocket message', () => take(bob, /from the browser/))).toMatch(from('alice@localhost/web'));
      bob.client.send("<message to='alice@localhost/web' type='chat'><body>back over TCP</body></message>");
      expect(await frame(/back over TCP/)).toMatch(from('bob@localhost/tcp'));
    } finally {
      ws.close();
      for (const c of clients) c.client.close();
      await server.shutdown();
      rmSync(dir, { recursive: true, force: true });
    }
  });

  it('moves stanzas larger than its rings and floods deeper than them, in order (tiny rings)', async () => {
    const dir = makeDataDir(['alice', 'bob']);
    const server = await startShardedServer(shardedConfig(dir), { ringBytes: 4096, peerRingBytes: 4096 });
    const clients: TestClient[] = [];
    try {
      const alice = connect(server.c2s.port, 'alice', 'alice-pw');
      clients.push(alice);
      await alice.ready;
      const bob = connect(server.c2s.port, 'bob', 'bob-pw');
      clients.push(bob);
      await bob.ready;
      expect(server.pool.connectionsPerShard()).toEqual([1, 1]);
      const body = 'x'.repeat(60_000);
      for (let i = 0; i < 20; i++) alice.client.send(`<message to='bob@localhost/e2e' type='chat' id='big${i}'><body>${i}:${body}</body></message>`);
      await until('all 20 large messages', () => bob.stanzas.filter((x) => x.includes(body)).length === 20, 20_000);
      expect(bob.stanzas.filter((x) => x.includes(body)).map((x) => Number(/<body>(\d+):/.exec(x)![1]))).toEqual([...Array(20).keys()]);
    } finally {
      for (const c of clients) c.client.close();
      await server.shutdown();
      rmSync(dir, { recursive: true, force: true });
    }
  });

  it('ends every stream on every shard with <system-shutdown/> when stopped (RFC 6120 §4.9.3.20)', async () => {
    const dir = makeDataDir(['alice', 'bob']);
    const server = await startShardedServer(shardedConfig(dir));
    try {
      const alice = connect(server.c2s.port, 'alice', 'alice-pw');
      await alice.ready;
      const bob = connect(server.c2s.port, 'bob', 'bob-pw');
      await bob.ready;
      expect(server.pool.connectionsPerShard()).toEqual([1, 1]);
      await server.shutdown();
      await until('both clients to be closed', () => alice.closed !== undefined && bob.closed !== undefined);
      expect([alice.closed, bob.closed]).toEqual(['stream error: system-shutdown', 'stream error: system-shutdown']);
    } finally {
      await server.shutdown();
      rmSync(dir, { recursive: true, force: true });
    }
  });

  describe('through `hermod serve --workers 2`', () => {
    let dir: string;
    let proc: ChildProcess;
    let port: number;
    let output = '';

    beforeAll(async () => {
      dir = makeDataDir(['alice', 'bob']);
      const cli = resolve(import.meta.dirname, '../../dist/src/cli.js');
      proc = spawn(process.execPath, [cli, 'serve', '--workers', '2', '--port', '0', '--tls-port', '0', '--data', dir, '--tls', 'optional'], {
        stdio: ['ignore', 'pipe', 'pipe'],
      });
      proc.stdout!.on('data', (d: Buffer) => (output += d.toString()));
      proc.stderr!.on('data', (d: Buffer) => (output += d.toString()));
      port = Number(
        await until('the listening line', () => /listening on 127\.0\.0\.1:(\d+) \(c2s/.exec(output)?.[1], 45_000).catch((err: Error) => {
          throw new Error(`${err.message}; server said: ${output}`);
        }),
      );
      expect(output).toContain('2 shard thread(s)');
    });

    afterAll(async () => {
      const exited = new Promise((r) => proc.once('exit', r));
      proc.kill('SIGTERM');
      await exited;
      rmSync(dir, { recursive: true, force: true });
    });

    it('exchange presence and messages', async () => {
      const clients: TestClient[] = [];
      try {
        await contactsAcrossShards(port, clients);
      } finally {
        for (const c of clients) c.client.close();
      }
      expect(output).not.toMatch(/shard \d+ failed/);
    });
  });
});

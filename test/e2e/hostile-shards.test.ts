/**
 * Shard threads crashing at bad moments (--workers 2, fault injection through ShardPool.crash):
 * in the middle of a message flood from the other shard, while a login is being verified, and
 * several times in a row. Each time only the crashed shard's streams end (<internal-server-error/>,
 * RFC 6120 §4.9.3.8), the other shard's sessions and the process carry on, and the replacement
 * shard serves logins.
 */
import { rmSync } from 'node:fs';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { type ShardEvent } from '../../src/shard/pool.js';
import { startShardedServer, type ShardedServer } from '../../src/shard/serve.js';
import { RawClient, SASL, STREAM_HEADER, plain, roundTrip, streamError } from './harness.js';
import { makeDataDir, shardedConfig, until } from './shard-helpers.js';

let dir: string;
let server: ShardedServer;
let events: ShardEvent[];
const clients: RawClient[] = [];

beforeEach(async () => {
  dir = makeDataDir(['alice', 'bob', 'carol']);
  events = [];
  const config = shardedConfig(dir);
  config.limits.stanzaRate = { rate: 100_000, burst: 100_000 };
  config.limits.authFailureDelay = 0;
  server = await startShardedServer(config, { onEvent: (e) => events.push(e) });
});

afterEach(async () => {
  for (const c of clients.splice(0)) c.close();
  await server.shutdown();
  rmSync(dir, { recursive: true, force: true });
});

async function connect(): Promise<RawClient> {
  const c = await RawClient.connect(server.c2s.port);
  clients.push(c);
  return c;
}

async function login(user: string, resource: string): Promise<{ c: RawClient; jid: string }> {
  const c = await connect();
  return { c, jid: await c.login(user, { tls: false, resource, password: `${user}-pw` }) };
}

const crashes = () => events.filter((e) => e.type === 'crashed').length;

describe('shard crashes at bad moments (--workers 2)', () => {
  it('a crash in the middle of a flood from the other shard ends only the crashed shard’s streams', async () => {
    // The pool gives each new connection to the emptiest shard: alice on 0, bob on 1.
    const alice = await login('alice', 'a');
    const bob = await login('bob', 'b');
    expect(server.pool.connectionsPerShard()).toEqual([1, 1]);
    let flood = '';
    for (let i = 0; i < 3000; i++) flood += `<message to='${alice.jid}' type='chat' id='f${i}'><body>flood ${i}</body></message>`;
    bob.c.send(flood);
    await alice.c.waitFor('flood 10<');
    server.pool.crash(0);
    await alice.c.waitClosed(10_000);
    expect(alice.c.received).toMatch(streamError('internal-server-error'));
    await until('the crash event', () => crashes() === 1);
    await server.pool.whenUp(0);
    // bob never noticed: his stream is open and answers.
    bob.c.send("<iq type='get' id='alive'><ping xmlns='urn:xmpp:ping'/></iq>");
    await bob.c.waitFor("id='alive'", 20_000);
    expect(bob.c.closed).toBe(false);
    // alice comes back on the replacement shard and the two talk again.
    const back = await login('alice', 'a');
    await roundTrip(back, bob);
  });

  it('a crash while a login is being verified closes that connection instead of leaving it hanging', async () => {
    const bystander = await login('bob', 'b'); // shard 0
    const c = await connect(); // shard 1
    c.send(STREAM_HEADER);
    await c.waitFor('</stream:features>');
    c.send(`<auth ${SASL} mechanism='PLAIN'>${plain('alice', 'alice-pw')}</auth>`);
    server.pool.crash(1);
    await c.waitClosed(10_000);
    // Either the shard died before answering (the stream ends with internal-server-error) or the
    // <success/> got out first and the stream then ended the same way: never silence.
    expect(c.received).toMatch(streamError('internal-server-error'));
    await server.pool.whenUp(1);
    const again = await login('alice', 'after');
    await roundTrip(again, bystander);
  });

  it('the same shard crashing three times in a row is replaced each time and serves again', async () => {
    const bob = await login('bob', 'b'); // shard 0 stays up throughout
    await login('carol', 'c'); // shard 1
    for (let n = 1; n <= 3; n++) {
      server.pool.crash(1);
      await until(`crash ${n}`, () => crashes() === n);
      await server.pool.whenUp(1);
      // The next connection goes to the emptier shard: the replacement of shard 1.
      const alice = await login('alice', `r${n}`);
      expect(server.pool.connectionsPerShard()).toEqual([1, 1]);
      await roundTrip(alice, bob);
      alice.c.close();
      await until('alice gone from shard 1', () => server.pool.connectionsPerShard()[1] === 0);
    }
    expect(bob.c.closed).toBe(false);
  });
});

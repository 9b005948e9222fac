/**
 * The same security answers with --workers 2 (src/shard): the main thread owns the sockets and
 * the process-wide limits (connection caps, the address refusal, byte shapers); the shards run
 * the streams (parser errors, stanza shaper, output bound). A hostile client on one shard must
 * not disturb sessions on the other, and the limits must hold across shards.
 */
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import { defaultConfig, type HermodConfig } from '../../src/config/schema.js';
import { startShardedServer, type ShardedServer } from '../../src/shard/serve.js';
import { openStorage } from '../../src/storage/index.js';
import { PASSWORDS, RawClient, SASL, STREAM_HEADER, plain, roundTrip, streamError } from './harness.js';

const HEADER_NS = "xmlns='jabber:client' xmlns:stream='http://etherx.jabber.org/streams'";

let server: ShardedServer;
let dataDir: string;
let port: number;

beforeAll(async () => {
  dataDir = mkdtempSync(join(tmpdir(), 'hermod-security-shards-'));
  const storage = openStorage({ dataDir, offlineLimit: 100 });
  for (const [user, password] of Object.entries(PASSWORDS)) storage.users.create(`${user}@localhost`, password);
  storage.close();
  const config: HermodConfig = defaultConfig();
  config.dataDir = dataDir;
  config.workers = 2;
  config.tls.policy = 'optional';
  config.listen.c2s.port = 0;
  config.listen.directTls.enabled = false;
  config.limits.authFailureDelay = 0;
  config.limits.authAttempts = 10;
  config.limits.authBanFailures = 4;
  config.limits.authBanTime = 60_000;
  config.limits.outputQueueBytes = 16 * 1024;
  config.limits.byteRate = { rate: 0, burst: 0 };
  server = await startShardedServer(config);
  port = server.c2s.port;
});

afterAll(async () => {
  await server?.shutdown();
  if (dataDir) rmSync(dataDir, { recursive: true, force: true });
});

const open: RawClient[] = [];
async function connect(): Promise<RawClient> {
  const c = await RawClient.connect(port);
  open.push(c);
  return c;
}
afterEach(() => {
  for (const c of open.splice(0)) c.close();
});

async function loggedIn(user: string, resource: string): Promise<{ c: RawClient; jid: string }> {
  const c = await connect();
  return { c, jid: await c.login(user, { tls: false, resource }) };
}


describe('security with two shard threads', () => {
  // The address refusal is the last test: once it triggers, loopback is refused for a minute.
  it('answers bad input with its condition on whichever shard, and sessions on both shards keep working', async () => {
    // Consecutive connections are spread over the shards, so these two are on different ones.
    const alice = await loggedIn('alice', 'a');
    const bob = await loggedIn('bob', 'b');
    const cases: [string, string, string][] = [
      ['bound', "<message to='bob@localhost'><body>x</bdoy></message>", 'not-well-formed'],
      ['bound', "<message to='bob@localhost'><!-- x --></message>", 'restricted-xml'],
      ['bound', "<foo:message to='bob@localhost'/>", 'bad-namespace-prefix'],
      ['bound', `<message to='bob@localhost'>${'<a>'.repeat(100)}</message>`, 'policy-violation'],
      ['connected', `<?xml version='1.0'?><stream:stream ${HEADER_NS} to='evil.example' version='1.0'>`, 'host-unknown'],
      ['connected', `<?xml version='1.0'?><!DOCTYPE x [<!ENTITY e 'e'>]><stream:stream ${HEADER_NS} to='localhost' version='1.0'>`, 'restricted-xml'],
      ['header', `<auth ${SASL} mechanism='PLAIN'>${'A'.repeat(17 * 1024)}</auth>`, 'policy-violation'],
      ['header', "<message to='bob@localhost'/>", 'not-authorized'],
    ];
    for (const [i, [stage, payload, condition]] of cases.entries()) {
      const c = await connect();
      if (stage === 'bound') await c.login('carol', { tls: false, resource: `x${i}` });
      if (stage === 'header') {
        c.send(STREAM_HEADER);
        await c.waitFor('</stream:features>');
        c.take();
      }
      c.socket.write(payload);
      await c.waitClosed();
      expect(c.received, `${stage}: ${payload.slice(0, 60)}`).toMatch(streamError(condition));
      await roundTrip(alice, bob);
    }
  });

  it('closes a slow reader with resource-constraint and leaves the sender alone', async () => {
    const alice = await loggedIn('alice', 'a2');
    const bob = await loggedIn('bob', 'b2');
    const slow = await loggedIn('carol', 'slow');
    slow.c.socket.pause();
    const body = 'z'.repeat(200 * 1024);
    for (let i = 0; i < 200; i++) bob.c.send(`<message to='${slow.jid}' type='chat'><body>${body}</body></message>`);
    bob.c.send(`<iq type='get' id='after-flood'><ping xmlns='urn:xmpp:ping'/></iq>`);
    await bob.c.waitFor("id='after-flood'", 30_000);
    slow.c.socket.resume();
    await slow.c.waitClosed(20_000);
    expect(slow.c.received).toMatch(streamError('resource-constraint'));
    expect(slow.c.received.split('<message ').length - 1).toBeLessThan(200);
    await roundTrip(alice, bob);
  });

  it('answers an IQ flood in full and in order', async () => {
    const c = await loggedIn('carol', 'flood');
    let flood = '';
    for (let i = 0; i < 3000; i++) flood += `<iq type='get' id='f${i}'><ping xmlns='urn:xmpp:ping'/></iq>`;
    c.c.send(flood);
    await c.c.waitFor("id='f2999'", 20_000);
    const ids = [...c.c.received.matchAll(/<iq [^>]*id='f(\d+)'/g)].map((m) => Number(m[1]));
    expect(ids).toEqual(Array.from({ length: 3000 }, (_, i) => i));
  });

  it('counts failed logins across shards and refuses the address, sessions already open untouched', async () => {
    const alice = await loggedIn('alice', 'a3');
    const bob = await loggedIn('bob', 'b3');
    // Four guessing connections, spread over both shards, one failure each.
    for (let i = 0; i < 4; i++) {
      const g = await connect();
      g.send(STREAM_HEADER);
      await g.waitFor('</stream:features>');
      g.send(`<auth ${SASL} mechanism='PLAIN'>${plain('alice', `guess${i}`)}</auth>`);
      await g.waitFor('<not-authorized/>');
    }
    // The shard reports the failure to the main thread asynchronously: poll for the refusal.
    let refused: RawClient | null = null;
    for (let i = 0; i < 50 && !refused; i++) {
      const c = await connect();
      c.send(STREAM_HEADER);
      await c.waitFor(/<\/stream:features>|<\/stream:stream>/);
      if (c.received.includes('</stream:stream>')) refused = c;
      else await new Promise((r) => setTimeout(r, 20));
    }
    expect(refused?.received).toMatch(streamError('policy-violation'));
    expect(refused?.received).toContain('too many failed authentications from your address');
    await roundTrip(alice, bob);
  });
});

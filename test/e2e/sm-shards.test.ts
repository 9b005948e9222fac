/**
 * XEP-0198 resumption with two shards: the session lives on the shard that bound it, and the
 * reconnecting client is placed on the other one on purpose. The <resume/> moves the connection
 * to the owner (src/shard/handoff.ts), which answers as if the client had connected there.
 */
import { rmSync } from 'node:fs';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startShardedServer, type ShardedServer } from '../../src/shard/serve.js';
import { RawClient } from './harness.js';
import { makeDataDir, shardedConfig, until, wsAuth } from './shard-helpers.js';

const SM = "xmlns='urn:xmpp:sm:3'";
const RESUME_MS = 1000;

let server: ShardedServer;
let dir: string;
const fillers: RawClient[] = [];

beforeAll(async () => {
  dir = makeDataDir(['alice', 'bob', 'carol']);
  const config = shardedConfig(dir);
  config.streamManagement.resumeTimeout = RESUME_MS;
  config.listen.websocket.enabled = true;
  config.listen.websocket.port = 0;
  server = await startShardedServer(config, { adminChannel: false });
});

afterAll(async () => {
  for (const f of fillers) f.close();
  await server?.shutdown();
  rmSync(dir, { recursive: true, force: true });
});

const perShard = (): number[] => server.pool.connectionsPerShard();
const total = (): number => perShard().reduce((a, b) => a + b, 0);

async function login(user: string, resource?: string, bind = true): Promise<RawClient> {
  const c = await RawClient.connect(server.c2s.port);
  await c.login(user, { tls: false, resource, bind, password: `${user}-pw` });
  return c;
}

async function enable(c: RawClient): Promise<{ id: string; owner: number }> {
  c.send(`<enable ${SM} resume='true'/>`);
  const text = await c.waitFor('<enabled');
  c.take();
  const id = /id='([0-9a-f]+)'/.exec(text)![1]!;
  // The id names the owning shard (its first four hex digits).
  return { id, owner: parseInt(id.slice(0, 4), 16) };
}

/**
 * Make shard `target` the strictly least-loaded one, so that the next connection lands there:
 * open idle connections, keeping those the pool put on the other shard and closing those it
 * put on `target` (ties are broken round-robin, so this ends quickly).
 */
async function placeNextOn(target: number): Promise<void> {
  const other = 1 - target;
  while (perShard()[target]! >= perShard()[other]!) {
    const before = perShard();
    const n = total();
    const filler = await RawClient.connect(server.c2s.port);
    await until('the filler is accepted', () => total() > n);
    if (perShard()[target]! > before[target]!) {
      filler.close();
      await until('the filler is gone', () => total() === n);
    } else {
      fillers.push(filler);
    }
  }
}

/** Authenticate (no bind) on a connection that the pool placed on shard `expected`. */
async function authOnOtherShard(user: string, owner: number): Promise<RawClient> {
  const other = 1 - owner;
  await placeNextOn(other);
  const before = perShard()[other]!;
  const c = await login(user, undefined, false);
  expect(perShard()[other]).toBe(before + 1);
  return c;
}

const count = (text: string, needle: string): number => text.split(needle).length - 1;

describe('stream management across shards (XEP-0198 §5)', () => {
  it('resumes on another shard: the unacknowledged stanzas exactly once, h right both ways', async () => {
    const bob = await login('bob', 'desk');
    const alice = await login('alice', 'phone');
    const { id, owner } = await enable(alice);
    expect(owner === 0 || owner === 1).toBe(true);

    bob.send("<message to='alice@localhost/phone' type='chat'><body>first</body></message>");
    await alice.waitFor('first');
    alice.send(`<a ${SM} h='1'/>`);
    // One stanza handled from alice before the drop: <resumed h='1'/>.
    alice.send("<message to='bob@localhost/desk' type='chat'><body>from the phone</body></message>");
    await bob.waitFor('from the phone');
    bob.send("<message to='alice@localhost/phone' type='chat'><body>second</body></message>");
    await alice.waitFor('second');
    const before = total();
    alice.close(); // the link dies before alice acknowledges 'second'
    await until('the pool notices the drop', () => total() < before);
    bob.send("<message to='alice@localhost/phone' type='chat'><body>third</body></message>");

    const again = await authOnOtherShard('alice', owner);
    // Pipelined behind the <resume/>: read on the first shard, handled on the owner, in order.
    again.send(`<resume ${SM} previd='${id}' h='1'/><r ${SM}/>`);
    const text = await again.waitFor(`<a ${SM} h='1'/>`);
    expect(text).toContain(`<resumed ${SM} h='1' previd='${id}'/>`);
    expect(text).not.toContain('first');
    expect(count(text, '<body>second</body>')).toBe(1);
    expect(count(text, '<body>third</body>')).toBe(1);
    expect(text.indexOf('<resumed')).toBeLessThan(text.indexOf('second'));
    expect(text.indexOf('second')).toBeLessThan(text.indexOf('third'));
    expect(text.indexOf('third')).toBeLessThan(text.indexOf(`<a ${SM}`));
    again.take();
    // The connection now belongs to the owner shard.
    expect(perShard()[owner]).toBeGreaterThan(0);

    // Same session both ways: still alice@localhost/phone, and its counters carry on.
    bob.send("<message to='alice@localhost/phone' type='chat'><body>fourth</body></message>");
    expect(await again.waitFor('fourth')).toContain("from='bob@localhost/desk'");
    again.send("<message to='bob@localhost/desk' type='chat'><body>back again</body></message>");
    expect(await bob.waitFor('back again')).toContain("from='alice@localhost/phone'");
    again.send(`<r ${SM}/>`);
    await again.waitFor(`<a ${SM} h='2'/>`);
    // Four stanzas were sent to alice in all (first … fourth): h=4 acknowledges them, and the
    // stream goes on; h=5 acknowledges one never sent, which ends it (XEP-0198 §4).
    again.take();
    again.send(`<a ${SM} h='4'/><r ${SM}/>`);
    await again.waitFor(`<a ${SM} h='2'/>`);
    expect(again.received).not.toContain('<stream:error');
    again.send(`<a ${SM} h='5'/>`);
    expect(await again.waitFor('</stream:stream>')).toContain('<undefined-condition');
    again.close();
    bob.close();
  });

  it('answers <failed/> on the owner for an expired session, which stored its stanzas offline', async () => {
    const bob = await login('bob', 'desk2');
    const carol = await login('carol', 'tablet');
    const { id, owner } = await enable(carol);
    bob.send("<message to='carol@localhost/tablet' type='chat'><body>did you get this?</body></message>");
    await carol.waitFor('did you get this?');
    carol.close();
    // resume_timeout is 1 s and the owner sweeps once a second: long gone after 3 s.
    await new Promise((r) => setTimeout(r, 3 * RESUME_MS));

    const back = await authOnOtherShard('carol', owner);
    back.send(`<resume ${SM} previd='${id}' h='0'/>`);
    expect(await back.waitFor('</failed>')).toContain("<item-not-found xmlns='urn:ietf:params:xml:ns:xmpp-stanzas'/>");
    back.take();
    // The stream goes on (on the owner shard): bind, and the unacknowledged message comes
    // from offline storage, once.
    back.send("<iq type='set' id='b'><bind xmlns='urn:ietf:params:xml:ns:xmpp-bind'><resource>tablet</resource></bind></iq>");
    await back.waitFor('</jid>');
    back.send('<presence/>');
    const text = await back.waitFor('did you get this?');
    expect(text).toContain("<delay xmlns='urn:xmpp:delay'");
    expect(count(text, 'did you get this?')).toBe(1);
    back.close();
    bob.close();
  });

  it('resumes on the owning shard itself, and the session then reads its new connection', async () => {
    const alice = await login('alice', 'home');
    const { id, owner } = await enable(alice);
    const before = total();
    alice.close();
    await until('the pool notices the drop', () => total() < before);
    await placeNextOn(owner);
    const onOwner = perShard()[owner]!;
    const again = await login('alice', undefined, false);
    expect(perShard()[owner]).toBe(onOwner + 1);
    again.send(`<resume ${SM} previd='${id}' h='0'/>`);
    await again.waitFor('<resumed');
    // Later reads go to the resumed session (not to the connection's first stream).
    again.send("<iq type='get' id='ping1'><ping xmlns='urn:xmpp:ping'/></iq><r xmlns='urn:xmpp:sm:3'/>");
    expect(await again.waitFor(`<a ${SM} h='1'/>`)).toMatch(/<iq [^>]*id='ping1'/);
    again.close();
  });

  it('replaces a session whose old connection still looks alive (RFC 6120 §4.9.3.3)', async () => {
    const bob = await login('bob', 'desk3');
    const alice = await login('alice', 'tab');
    const { id, owner } = await enable(alice);
    const again = await authOnOtherShard('alice', owner);
    again.send(`<resume ${SM} previd='${id}' h='0'/>`);
    await again.waitFor('<resumed');
    expect(await alice.waitFor('</stream:stream>')).toContain('<conflict');
    bob.send("<message to='alice@localhost/tab' type='chat'><body>to the new link</body></message>");
    await again.waitFor('to the new link');
    again.close();
    bob.close();
  });

  it('ends a stream that pipelines a second cross-shard <resume/> cleanly (no hang)', async () => {
    const alice = await login('alice', 'twice');
    const { owner } = await enable(alice);
    const c = await authOnOtherShard('alice', owner);
    const other = 1 - owner;
    const fake = (shard: number): string => shard.toString(16).padStart(4, '0') + '0'.repeat(32);
    // The first names the owner (unknown there); the second names the shard the client is on.
    c.send(`<resume ${SM} previd='${fake(owner)}' h='0'/><resume ${SM} previd='${fake(other)}' h='0'/>`);
    const text = await c.waitFor(/<policy-violation|<failed[^]*<failed/);
    expect(text).toContain('<item-not-found');
    c.close();
    alice.close();
  });

  it('resumes a WebSocket session (RFC 7395) on another shard, one element per frame', async () => {
    const bob = await login('bob', 'desk4');
    const first = await wsAuth(server.websocket!.port, 'alice');
    first.ws.send("<iq type='set' id='b1' xmlns='jabber:client'><bind xmlns='urn:ietf:params:xml:ns:xmpp-bind'><resource>web</resource></bind></iq>");
    await first.frame(/alice@localhost\/web/);
    first.ws.send(`<enable ${SM} resume='true'/>`);
    const enabled = await first.frame(/^<enabled/);
    const id = /id='([0-9a-f]+)'/.exec(enabled)![1]!;
    const owner = parseInt(id.slice(0, 4), 16);
    const before = total();
    first.ws.terminate(); // no <close/>: the link just dies
    await until('the pool notices the drop', () => total() < before);
    bob.send("<message to='alice@localhost/web' type='chat'><body>while the tab was closed</body></message>");

    await placeNextOn(1 - owner);
    const onOther = perShard()[1 - owner]!;
    const again = await wsAuth(server.websocket!.port, 'alice');
    expect(perShard()[1 - owner]).toBe(onOther + 1);
    again.ws.send(`<resume ${SM} previd='${id}' h='0'/>`);
    expect(await again.frame(/^<resumed/)).toBe(`<resumed ${SM} h='0' previd='${id}'/>`);
    expect(await again.frame(/while the tab was closed/)).toMatch(/^<message [^]*<\/message>$/);
    again.ws.send("<message xmlns='jabber:client' to='bob@localhost/desk4' type='chat'><body>tab is back</body></message>");
    expect(await bob.waitFor('tab is back')).toContain("from='alice@localhost/web'");
    expect(again.frames.filter((f) => f.includes('while the tab was closed'))).toEqual([]);
    again.ws.close();
    bob.close();
  });

  it('judges RFC 7395 framing on the shard too: a third <open/> gets <bad-format/>, two elements in a message <not-well-formed/>', async () => {
    // wsAuth opened twice, the second time after SASL success (the restart, §3.7).
    const a = await wsAuth(server.websocket!.port, 'alice');
    a.ws.send("<open xmlns='urn:ietf:params:xml:ns:xmpp-framing' to='localhost' version='1.0'/>");
    expect(await a.frame(/^<stream:error/)).toMatch(/<bad-format xmlns='urn:ietf:params:xml:ns:xmpp-streams'\/>/);
    expect(await a.frame(/^<close /)).toBe("<close xmlns='urn:ietf:params:xml:ns:xmpp-framing'/>");
    const b = await wsAuth(server.websocket!.port, 'carol');
    b.ws.send("<iq type='get' id='x' xmlns='jabber:client'><ping xmlns='urn:xmpp:ping'/></iq><presence xmlns='jabber:client'/>");
    expect(await b.frame(/^<stream:error/)).toMatch(/<not-well-formed xmlns='urn:ietf:params:xml:ns:xmpp-streams'\/>/);
    expect(b.frames.some((f) => f.includes("id='x'"))).toBe(false);
    a.ws.close();
    b.ws.close();
  });

  it("refuses another account's session with <item-not-found/>, leaving it resumable", async () => {
    const alice = await login('alice', 'laptop');
    const { id, owner } = await enable(alice);
    const bob = await authOnOtherShard('bob', owner);
    bob.send(`<resume ${SM} previd='${id}' h='0'/>`);
    expect(await bob.waitFor('</failed>')).toContain('<item-not-found');
    // alice's session was not touched: its connection still works.
    alice.send(`<r ${SM}/>`);
    await alice.waitFor(`<a ${SM} h='0'/>`);
    bob.close();
    alice.close();
  });
});

/**
 * Session lifecycle over sockets: a second login on the same resource replaces the first
 * (RFC 6120 §7.7.2.2, Hermod's conflict policy), and the closing handshake (RFC 6120 §4.4).
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { RawClient, startTestServer, type TestServer } from './harness.js';

let t: TestServer;

beforeAll(async () => {
  t = await startTestServer(['--tls', 'optional']);
});

afterAll(async () => {
  await t?.stop();
});

describe('session lifecycle', () => {
  it('replaces the older session of a resource with <conflict/>, and the newer one works', async () => {
    const first = await RawClient.connect(t.port);
    expect(await first.login('alice', { tls: false, resource: 'same' })).toBe('alice@localhost/same');
    const second = await RawClient.connect(t.port);
    expect(await second.login('alice', { tls: false, resource: 'same' })).toBe('alice@localhost/same');
    await first.waitClosed();
    expect(first.received).toContain("<stream:error><conflict xmlns='urn:ietf:params:xml:ns:xmpp-streams'/>");
    expect(first.received.endsWith('</stream:stream>')).toBe(true);
    second.send("<iq type='get' id='p' to='localhost'><ping xmlns='urn:xmpp:ping'/></iq>");
    expect(await second.waitFor("id='p'")).toMatch(/type='result'/);
    second.close();
  });

  it("answers the client's </stream:stream> with its own and closes the connection (§4.4)", async () => {
    const c = await RawClient.connect(t.port);
    await c.login('bob', { tls: false, resource: 'bye' });
    c.send('</stream:stream>');
    await c.waitClosed();
    expect(c.received).toBe('</stream:stream>');
    for (let i = 0; i < 100 && t.server.streams.size > 0; i++) await new Promise((r) => setTimeout(r, 10));
    expect(t.server.streams.size).toBe(0);
  });

  it('lets a bound client see unavailable presence of a contact whose connection drops (RFC 6121 §4.5.2)', async () => {
    // bob and carol subscribe to each other, both available; carol's TCP connection dies.
    const bob = await RawClient.connect(t.port);
    await bob.login('bob', { tls: false, resource: 'watch' });
    const carol = await RawClient.connect(t.port);
    await carol.login('carol', { tls: false, resource: 'gone' });
    // Subscription traffic reaches available resources (RFC 6121 §3.1.3, §3.1.6).
    carol.send('<presence/>');
    bob.send('<presence/>');
    bob.send("<presence to='carol@localhost' type='subscribe'/>");
    await carol.waitFor(/type=["']subscribe["']/);
    carol.send("<presence to='bob@localhost' type='subscribed'/>");
    await bob.waitFor(/type=["']subscribed["']/);
    await bob.waitFor(/<presence from=["']carol@localhost\/gone["'](?![^>]*type=)/);
    bob.take();
    carol.close();
    expect(await bob.waitFor(/<presence [^>]*type=["']unavailable["']/)).toMatch(/from=["']carol@localhost\/gone["']/);
    bob.close();
  });
});

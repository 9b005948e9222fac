/**
 * XEP-0191 blocking through a real Hermod over real sockets (raw clients): the blocklist is
 * stored in SQLite, pushed to an interested resource, and enforced in both directions.
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

describe('XEP-0191 over a real server', () => {
  it('blocks, pushes, refuses outbound, hides inbound, and survives in storage until unblocked', async () => {
    const pc = await RawClient.connect(t.port);
    await pc.login('alice', { tls: false, resource: 'pc' });
    const phone = await RawClient.connect(t.port);
    await phone.login('alice', { tls: false, resource: 'phone' });
    const bob = await RawClient.connect(t.port);
    await bob.login('bob', { tls: false, resource: 'x' });

    phone.send("<iq type='get' id='g1'><blocklist xmlns='urn:xmpp:blocking'/></iq>");
    expect(await phone.waitFor(/id='g1'[^>]*>?[\s\S]*?(<\/iq>|\/>)/)).toContain("<blocklist xmlns='urn:xmpp:blocking'/>");
    phone.take();
    pc.send("<iq type='set' id='b1'><block xmlns='urn:xmpp:blocking'><item jid='bob@localhost'/></block></iq>");
    await pc.waitFor("id='b1'");
    expect(await phone.waitFor('</iq>')).toContain("<block xmlns='urn:xmpp:blocking'><item jid='bob@localhost'/></block>");
    expect(t.server.storage.blocklist.list('alice@localhost')).toEqual(['bob@localhost']);

    pc.take();
    pc.send("<message to='bob@localhost' id='o1' type='chat'><body>hi</body></message>");
    expect(await pc.waitFor(/id='o1'[\s\S]*?<\/message>/)).toContain("<blocked xmlns='urn:xmpp:blocking:errors'/>");

    bob.send("<message to='alice@localhost/pc' id='i1' type='chat'><body>let me in</body></message>");
    expect(await bob.waitFor(/id='i1'[\s\S]*?<\/message>/)).toContain('<service-unavailable');
    expect(pc.received).not.toContain('let me in');

    pc.send("<iq type='set' id='u1'><unblock xmlns='urn:xmpp:blocking'/></iq>");
    await pc.waitFor("id='u1'");
    expect(t.server.storage.blocklist.list('alice@localhost')).toEqual([]);
    bob.send("<message to='alice@localhost/pc' id='i2' type='chat'><body>hello again</body></message>");
    expect(await pc.waitFor('hello again')).toMatch(/from='bob@localhost\/x'/);
    for (const c of [pc, phone, bob]) c.close();
  });
});

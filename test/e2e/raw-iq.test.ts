/**
 * The seed's IQ rules over a real socket (RFC 6120 §8.2.3, §8.3): a get/set nobody handles is
 * answered service-unavailable, malformed IQs get bad-request, and a result is never answered.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { RawClient, startTestServer, type TestServer } from './harness.js';

let t: TestServer;
let alice: RawClient;
let bob: RawClient;

beforeAll(async () => {
  t = await startTestServer(['--tls', 'optional']);
  alice = await RawClient.connect(t.port);
  bob = await RawClient.connect(t.port);
  await alice.login('alice', { tls: false, resource: 'raw' });
  await bob.login('bob', { tls: true, resource: 'raw' });
});

afterAll(async () => {
  alice?.close();
  bob?.close();
  await t?.stop();
});

const STANZAS = 'urn:ietf:params:xml:ns:xmpp-stanzas';

describe('IQ rules from a raw socket (RFC 6120 §8.2.3)', () => {
  it('answers an iq without id with bad-request', async () => {
    alice.send("<iq type='get'><ping xmlns='urn:xmpp:ping'/></iq>");
    const text = await alice.waitFor('</iq>');
    alice.take();
    expect(text).toContain("type='error'");
    expect(text).toContain(`<bad-request xmlns='${STANZAS}'/>`);
  });

  it('answers a get with two children with bad-request', async () => {
    alice.send("<iq type='get' id='two'><ping xmlns='urn:xmpp:ping'/><query xmlns='jabber:iq:version'/></iq>");
    const text = await alice.waitFor('</iq>');
    alice.take();
    expect(text).toMatch(/<iq [^>]*id='two'/);
    expect(text).toContain(`<bad-request xmlns='${STANZAS}'/>`);
  });

  it('answers a get in an unknown namespace with service-unavailable', async () => {
    alice.send("<iq type='get' id='unk' to='localhost'><query xmlns='urn:example:nobody-handles-this'/></iq>");
    const text = await alice.waitFor('</iq>');
    alice.take();
    expect(text).toMatch(/<iq [^>]*id='unk'/);
    expect(text).toContain(`<service-unavailable xmlns='${STANZAS}'/>`);
  });

  it('never answers a result, and the stream stays usable', async () => {
    alice.send("<iq type='result' id='r1' to='localhost'/>");
    alice.send("<iq type='get' id='after' to='localhost'><ping xmlns='urn:xmpp:ping'/></iq>");
    const text = await alice.waitFor(/id='after'/);
    alice.take();
    expect(text).not.toContain("id='r1'");
    expect(text).toMatch(/<iq [^>]*type='result'/);
  });

  it('delivers a message round trip with the sender stamped as from', async () => {
    alice.send("<message to='bob@localhost/raw' type='chat' from='mallory@localhost/x' id='m1'><body>hello bob</body></message>");
    const got = await bob.waitFor('hello bob');
    bob.take();
    expect(got).toContain("from='alice@localhost/raw'");
    expect(got).not.toContain('mallory');
    bob.send("<message to='alice@localhost/raw' type='chat' id='m2'><body>hello alice</body></message>");
    const back = await alice.waitFor('hello alice');
    alice.take();
    expect(back).toContain("from='bob@localhost/raw'");
  });
});

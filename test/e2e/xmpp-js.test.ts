/**
 * @xmpp/client (xmpp.js) against Hermod over real sockets: STARTTLS with the generated
 * self-signed certificate, SCRAM-SHA-1 (the best mechanism xmpp.js implements), resource
 * binding, messages, mutual subscription and presence, roster and ping.
 */
import { client, xml, type Client } from '@xmpp/client';
import type { Element } from '@xmpp/xml';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { PASSWORDS, startTestServer, type TestServer } from './harness.js';

// The server's certificate is self-signed; xmpp.js's STARTTLS has no option to trust it.
process.env.NODE_TLS_REJECT_UNAUTHORIZED = '0';

interface Peer {
  xmpp: Client;
  jid: string;
  mechanism: string | null;
  startedTls: boolean;
  smEnabled: boolean;
  stanzas: Element[];
  waitFor(test: (el: Element) => boolean, what: string): Promise<Element>;
}

async function login(port: number, user: string, resource: string, scheme = 'xmpp'): Promise<Peer> {
  const xmpp = client({
    service: `${scheme}://127.0.0.1:${port}`,
    domain: 'localhost',
    username: user,
    password: PASSWORDS[user],
    resource,
  });
  xmpp.reconnect.stop();
  const stanzas: Element[] = [];
  const waiters: { test: (el: Element) => boolean; resolve: (el: Element) => void }[] = [];
  const peer: Peer = {
    xmpp,
    jid: '',
    mechanism: null,
    startedTls: false,
    smEnabled: false,
    stanzas,
    waitFor(test, what) {
      const found = stanzas.find(test);
      if (found) return Promise.resolve(found);
      return new Promise((resolve, reject) => {
        const timer = setTimeout(() => reject(new Error(`${user}: timed out waiting for ${what}`)), 10_000);
        waiters.push({
          test,
          resolve: (el) => {
            clearTimeout(timer);
            resolve(el);
          },
        });
      });
    },
  };
  xmpp.on('send', (el: Element) => {
    if (el.is('auth', 'urn:ietf:params:xml:ns:xmpp-sasl')) peer.mechanism = el.attrs.mechanism as string;
    if (el.is('starttls', 'urn:ietf:params:xml:ns:xmpp-tls')) peer.startedTls = true;
  });
  xmpp.on('nonza', (el: Element) => {
    if (el.is('enabled', 'urn:xmpp:sm:3')) peer.smEnabled = true;
  });
  xmpp.on('stanza', (el: Element) => {
    stanzas.push(el);
    for (const w of [...waiters]) {
      if (w.test(el)) {
        waiters.splice(waiters.indexOf(w), 1);
        w.resolve(el);
      }
    }
  });
  xmpp.on('error', () => {});
  const address = await xmpp.start();
  peer.jid = address.toString();
  return peer;
}

let t: TestServer;
let alice: Peer;
let bob: Peer;

beforeAll(async () => {
  t = await startTestServer([]);
  alice = await login(t.port, 'alice', 'laptop');
  bob = await login(t.port, 'bob', 'phone');
});

afterAll(async () => {
  await Promise.allSettled([alice?.xmpp.stop(), bob?.xmpp.stop()]);
  await t?.stop();
});

describe('@xmpp/client (xmpp.js) end to end', () => {
  it('logs in with SCRAM-SHA-1 over STARTTLS and binds the requested resource', () => {
    expect(alice.mechanism).toBe('SCRAM-SHA-1');
    expect(alice.jid).toBe('alice@localhost/laptop');
    expect(bob.jid).toBe('bob@localhost/phone');
    expect(alice.startedTls).toBe(true);
    expect(bob.startedTls).toBe(true);
    // xmpp.js turns XEP-0198 on by itself when offered; everything below runs with it.
    expect(alice.smEnabled).toBe(true);
  });

  it('exchanges messages both ways with the sender as from', async () => {
    await alice.xmpp.send(xml('message', { to: 'bob@localhost/phone', type: 'chat', id: 'x1' }, xml('body', {}, 'hi bob, from xmpp.js')));
    const got = await bob.waitFor((el) => el.is('message') && el.getChildText('body') === 'hi bob, from xmpp.js', 'message from alice');
    expect(got.attrs.from).toBe('alice@localhost/laptop');
    // To the full JID: alice has sent no presence yet, so a bare-JID message would go offline
    // (RFC 6121 §8.5.2.1.1).
    await bob.xmpp.send(xml('message', { to: 'alice@localhost/laptop', type: 'chat', id: 'x2' }, xml('body', {}, 'hi alice')));
    const back = await alice.waitFor((el) => el.is('message') && el.getChildText('body') === 'hi alice', 'reply from bob');
    expect(back.attrs.from).toBe('bob@localhost/phone');
  });

  it('sees presence after mutual subscription (RFC 6121 §3)', async () => {
    await alice.xmpp.send(xml('presence'));
    await bob.xmpp.send(xml('presence'));
    // alice asks, bob approves and asks back, alice approves.
    await alice.xmpp.send(xml('presence', { to: 'bob@localhost', type: 'subscribe' }));
    await bob.waitFor((el) => el.is('presence') && el.attrs.type === 'subscribe' && el.attrs.from === 'alice@localhost', 'subscribe from alice');
    await bob.xmpp.send(xml('presence', { to: 'alice@localhost', type: 'subscribed' }));
    await bob.xmpp.send(xml('presence', { to: 'alice@localhost', type: 'subscribe' }));
    await alice.waitFor((el) => el.is('presence') && el.attrs.type === 'subscribe' && el.attrs.from === 'bob@localhost', 'subscribe from bob');
    await alice.xmpp.send(xml('presence', { to: 'bob@localhost', type: 'subscribed' }));

    await alice.waitFor((el) => el.is('presence') && el.attrs.from === 'bob@localhost/phone' && !el.attrs.type, "bob's presence");
    await bob.waitFor((el) => el.is('presence') && el.attrs.from === 'alice@localhost/laptop' && !el.attrs.type, "alice's presence");

    // A new broadcast reaches the subscriber.
    await bob.xmpp.send(xml('presence', {}, xml('show', {}, 'away'), xml('status', {}, 'in a meeting')));
    const away = await alice.waitFor((el) => el.is('presence') && el.attrs.from === 'bob@localhost/phone' && el.getChildText('show') === 'away', 'away');
    expect(away.getChildText('status')).toBe('in a meeting');

    // Now available, alice receives messages to her bare JID (RFC 6121 §8.5.2.1.1).
    await bob.xmpp.send(xml('message', { to: 'alice@localhost', type: 'chat' }, xml('body', {}, 'to your bare JID')));
    const bare = await alice.waitFor((el) => el.is('message') && el.getChildText('body') === 'to your bare JID', 'bare-JID message');
    expect(bare.attrs.from).toBe('bob@localhost/phone');
  });

  it('gets the roster with the contact at subscription both (RFC 6121 §2.1.3)', async () => {
    const result = await alice.xmpp.iqCaller.get(xml('query', { xmlns: 'jabber:iq:roster' }));
    const items = result.getChildren('item');
    const bobItem = items.find((i: Element) => i.attrs.jid === 'bob@localhost');
    expect(bobItem?.attrs.subscription).toBe('both');
  });

  it('logs in over Direct TLS (XEP-0368) and talks to a STARTTLS user', async () => {
    const carol = await login(t.tlsPort, 'carol', 'tablet', 'xmpps');
    try {
      expect(carol.jid).toBe('carol@localhost/tablet');
      expect(carol.mechanism).toBe('SCRAM-SHA-1');
      expect(carol.startedTls).toBe(false);
      await carol.xmpp.send(xml('message', { to: 'alice@localhost/laptop', type: 'chat' }, xml('body', {}, 'over direct TLS')));
      const got = await alice.waitFor((el) => el.is('message') && el.getChildText('body') === 'over direct TLS', 'message from carol');
      expect(got.attrs.from).toBe('carol@localhost/tablet');
    } finally {
      await carol.xmpp.stop();
    }
  });

  it('pings the server (XEP-0199)', async () => {
    const result = await alice.xmpp.iqCaller.request(xml('iq', { type: 'get', to: 'localhost' }, xml('ping', { xmlns: 'urn:xmpp:ping' })));
    expect(result.attrs.type).toBe('result');
    expect(result.attrs.from).toBe('localhost');
  });
});

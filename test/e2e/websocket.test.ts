/**
 * XMPP over WebSocket (RFC 7395): the framing seen from a raw WebSocket, and @xmpp/client's
 * websocket transport logging in and messaging a user connected over TCP.
 */
import { client, xml } from '@xmpp/client';
import type { Element } from '@xmpp/xml';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { WebSocket } from 'ws';
import { PASSWORDS, RawClient, startTestServer, type TestServer } from './harness.js';

// @xmpp/websocket uses the global WebSocket, which Node 20 does not have.
(globalThis as { WebSocket?: unknown }).WebSocket ??= WebSocket;

let t: TestServer;
let url: string;

beforeAll(async () => {
  t = await startTestServer(['--set', 'listen.websocket.enabled=true', '--set', 'listen.websocket.port=0']);
  url = `ws://127.0.0.1:${t.server.websocket!.port}/xmpp-websocket`;
});

afterAll(async () => {
  await t?.stop();
});

/** A raw RFC 7395 client: one element per message. */
async function rawWs(protocols: string[] = ['xmpp']) {
  const ws = new WebSocket(url, protocols);
  const messages: string[] = [];
  const waiters: (() => void)[] = [];
  ws.on('message', (data) => {
    messages.push(data.toString());
    for (const w of waiters.splice(0)) w();
  });
  const closed = new Promise<number>((resolve) => ws.on('close', (code) => resolve(code)));
  await new Promise<void>((resolve, reject) => {
    ws.once('open', () => resolve());
    ws.once('error', reject);
  });
  const next = async (pattern: RegExp): Promise<string> => {
    for (;;) {
      const found = messages.find((m) => pattern.test(m));
      if (found) {
        messages.splice(messages.indexOf(found), 1);
        return found;
      }
      await new Promise<void>((resolve, reject) => {
        const timer = setTimeout(() => reject(new Error(`no message matching ${pattern}; got ${messages.join(' | ')}`)), 5000);
        waiters.push(() => {
          clearTimeout(timer);
          resolve();
        });
      });
    }
  };
  return { ws, next, closed, messages };
}

const OPEN = "<open xmlns='urn:ietf:params:xml:ns:xmpp-framing' to='localhost' version='1.0'/>";

describe('XMPP over WebSocket (RFC 7395)', () => {
  it('answers <open/> with <open/> and standalone features, one element per message (§3.3.3, §3.4)', async () => {
    const c = await rawWs();
    expect(c.ws.protocol).toBe('xmpp');
    c.ws.send(OPEN);
    const open = await c.next(/^<open /);
    expect(open).toMatch(/^<open xmlns='urn:ietf:params:xml:ns:xmpp-framing' id='[0-9a-f]{32}' from='localhost' version='1.0' xml:lang='en'\/>$/);
    const features = await c.next(/^<stream:features/);
    expect(features).toContain("xmlns:stream='http://etherx.jabber.org/streams'");
    // Loopback counts as TLS-terminated by a local proxy: SASL is offered under tls: required.
    expect(features).toContain('<mechanism>SCRAM-SHA-1</mechanism>');
    expect(features).not.toContain('starttls');
    c.ws.send("<close xmlns='urn:ietf:params:xml:ns:xmpp-framing'/>");
    expect(await c.next(/^<close/)).toBe("<close xmlns='urn:ietf:params:xml:ns:xmpp-framing'/>");
    expect(await c.closed).toBe(1000);
  });

  it('authenticates, restarts with a new <open/>, binds, and stamps stanzas with jabber:client', async () => {
    const c = await rawWs();
    c.ws.send(OPEN);
    await c.next(/^<stream:features/);
    c.ws.send(`<auth xmlns='urn:ietf:params:xml:ns:xmpp-sasl' mechanism='PLAIN'>${Buffer.from(`\0carol\0${PASSWORDS.carol}`).toString('base64')}</auth>`);
    await c.next(/^<success/);
    c.ws.send(OPEN);
    await c.next(/^<open /);
    expect(await c.next(/^<stream:features/)).toContain('xmpp-bind');
    c.ws.send("<iq type='set' id='b1' xmlns='jabber:client'><bind xmlns='urn:ietf:params:xml:ns:xmpp-bind'><resource>ws</resource></bind></iq>");
    expect(await c.next(/^<iq/)).toBe(
      "<iq xmlns='jabber:client' type='result' id='b1'><bind xmlns='urn:ietf:params:xml:ns:xmpp-bind'><jid>carol@localhost/ws</jid></bind></iq>",
    );
    c.ws.send("<iq type='get' id='p1' to='localhost' xmlns='jabber:client'><ping xmlns='urn:xmpp:ping'/></iq>");
    expect(await c.next(/id='p1'/)).toMatch(/^<iq xmlns='jabber:client' /);
    c.ws.close();
  });

  it('refuses a connection without the xmpp subprotocol (§3.1)', async () => {
    // The handshake selects no subprotocol, which the client treats as a failed handshake.
    await expect(rawWs(['chat'])).rejects.toThrow('Server sent no subprotocol');
    // A client that asks for none at all is accepted by the handshake, then closed with 1002.
    const bare = await rawWs([]);
    expect(await bare.closed).toBe(1002);
  });

  it('lets @xmpp/client log in over WebSocket and message a TCP user', async () => {
    const tcp = await RawClient.connect(t.port);
    await tcp.login('alice', { tls: true, resource: 'tcp' });
    const xmpp = client({ service: url, domain: 'localhost', username: 'bob', password: PASSWORDS.bob, resource: 'web' });
    xmpp.reconnect.stop();
    xmpp.on('error', () => {});
    const received: Element[] = [];
    xmpp.on('stanza', (el: Element) => received.push(el));
    try {
      const address = await xmpp.start();
      expect(address.toString()).toBe('bob@localhost/web');
      await xmpp.send(xml('message', { to: 'alice@localhost/tcp', type: 'chat' }, xml('body', {}, 'from the browser side')));
      const got = await tcp.waitFor('from the browser side');
      expect(got).toContain("from='bob@localhost/web'");
      tcp.send("<message to='bob@localhost/web' type='chat'><body>back over TCP</body></message>");
      for (let i = 0; i < 200 && !received.some((el) => el.getChildText('body') === 'back over TCP'); i++) {
        await new Promise((r) => setTimeout(r, 25));
      }
      const back = received.find((el) => el.getChildText('body') === 'back over TCP');
      expect(back?.attrs.from).toBe('alice@localhost/tcp');
    } finally {
      await xmpp.stop().catch(() => {});
      tcp.close();
    }
  });
});

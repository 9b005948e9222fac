/**
 * @xmpp/client as an application ships it: its reconnect plugin left on and stream management
 * (XEP-0198) enabled, over STARTTLS and over WebSocket. The TCP connection is destroyed under it (no closing handshake, as when a
 * phone changes network); the client reconnects by itself and resumes the session: same full
 * JID, the message that arrived meanwhile delivered once, and the one it wrote as the
 * connection died delivered once.
 */
import { client, xml, type Client } from '@xmpp/client';
import type { Element } from '@xmpp/xml';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { WebSocket } from 'ws';
import { PASSWORDS, RawClient, startTestServer, type TestServer } from './harness.js';

// The server's certificate is self-signed; xmpp.js's STARTTLS has no option to trust it.
process.env.NODE_TLS_REJECT_UNAUTHORIZED = '0';
// @xmpp/websocket uses the global WebSocket, which Node 20 does not have.
(globalThis as { WebSocket?: unknown }).WebSocket ??= WebSocket;

/** How each transport's connection is cut from under xmpp.js, without a closing handshake. */
const TRANSPORTS = [
  {
    name: 'STARTTLS',
    service: (t: TestServer) => `xmpp://127.0.0.1:${t.port}`,
    // xmpp.js's TLS wrapper holds the node:tls socket; destroying it drops the TCP connection.
    drop: (alice: Client) => (alice as unknown as { socket: { socket: { destroy(): void } } }).socket.socket.destroy(),
  },
  {
    name: 'WebSocket (RFC 7395)',
    service: (t: TestServer) => `ws://127.0.0.1:${t.server.websocket!.port}/xmpp-websocket`,
    // The ws package's WebSocket keeps its TCP socket in _socket: destroy it, no close frame.
    drop: (alice: Client) => (alice as unknown as { socket: { socket: { _socket: { destroy(): void } } } }).socket.socket._socket.destroy(),
  },
];

interface StreamManagement {
  enabled: boolean;
  id: string;
  on(event: 'resumed', listener: () => void): void;
}

function waitEvent(emitter: { once(e: string, l: (...a: unknown[]) => void): unknown }, event: string, ms = 15_000): Promise<void> {
  return new Promise((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error(`no '${event}' within ${ms} ms`)), ms);
    emitter.once(event, () => {
      clearTimeout(timer);
      resolve();
    });
  });
}

describe.each(TRANSPORTS)('@xmpp/client with reconnect and stream management over $name', (transport) => {
  let t: TestServer;
  let alice: Client;
  let bob: RawClient;
  let aliceJid = '';
  const bodies: string[] = [];
  const statuses: string[] = [];

  beforeAll(async () => {
    t = await startTestServer(['--set', 'listen.websocket.enabled=true', '--set', 'listen.websocket.port=0']);
    bob = await RawClient.connect(t.port);
    await bob.login('bob', { tls: true, resource: 'raw' });
    alice = client({
      service: transport.service(t),
      domain: 'localhost',
      username: 'alice',
      password: PASSWORDS.alice,
      resource: 'mobile',
    });
    // Reconnect quickly (the default waits a second).
    (alice.reconnect as unknown as { delay: number }).delay = 100;
    alice.on('error', () => {});
    alice.on('status', (s: string) => statuses.push(s));
    alice.on('stanza', (el: Element) => {
      if (el.is('message')) bodies.push(el.getChildText('body') ?? '');
    });
    aliceJid = (await alice.start()).toString();
    await alice.send(xml('presence'));
  }, 60_000);

  afterAll(async () => {
    alice.reconnect.stop();
    await alice.stop().catch(() => {});
    bob?.close();
    await t?.stop();
  });

  it('enables stream management with resumption after binding (XEP-0198 §3)', async () => {
    const sm = (alice as unknown as { streamManagement: StreamManagement }).streamManagement;
    for (let i = 0; i < 50 && !sm.enabled; i++) await new Promise((r) => setTimeout(r, 100));
    expect(aliceJid).toBe('alice@localhost/mobile');
    expect(sm.enabled).toBe(true);
    expect(sm.id).not.toBe('');
  });

  it('reconnects by itself after the connection is destroyed and resumes the same session (XEP-0198 §5)', async () => {
    const sm = (alice as unknown as { streamManagement: StreamManagement }).streamManagement;
    const resumed = waitEvent(sm as never, 'resumed');
    const gone = waitEvent(alice as never, 'disconnect');
    // A stanza written just before the drop: either the server handled it (and says so in
    // <resumed h=…/>) or xmpp.js resends it after resuming; bob gets it exactly once either way.
    const lastWords = alice.send(xml('message', { to: 'bob@localhost/raw', type: 'chat' }, xml('body', {}, 'last words')));
    transport.drop(alice);
    await lastWords.catch(() => {});
    await gone;
    // While alice is away: bob writes to her full JID; the server holds it for the session.
    bob.send(`<message to='${aliceJid}' type='chat' id='m1'><body>sent while you were away</body></message>`);
    await resumed;
    expect(statuses).toContain('disconnect');
    // Resumption keeps the bound resource: the reconnected client is the same full JID.
    expect(alice.jid?.toString()).toBe(aliceJid);
    for (let i = 0; i < 50 && !bodies.includes('sent while you were away'); i++) await new Promise((r) => setTimeout(r, 100));
    expect(bodies.filter((b) => b === 'sent while you were away')).toHaveLength(1);
    await bob.waitFor('last words</body>', 10_000);
    await new Promise((r) => setTimeout(r, 300));
    expect(bob.received.split('last words</body>').length - 1).toBe(1);
    expect(bob.received).toMatch(/<message[^>]*from=['"]alice@localhost\/mobile['"]/);
  }, 40_000);

  it('keeps working after the resumption: a new message each way', async () => {
    bob.take();
    bob.send(`<message to='alice@localhost' type='chat'><body>after resume</body></message>`);
    for (let i = 0; i < 50 && !bodies.includes('after resume'); i++) await new Promise((r) => setTimeout(r, 100));
    expect(bodies).toContain('after resume');
    await alice.send(xml('message', { to: 'bob@localhost/raw', type: 'chat' }, xml('body', {}, 'still here')));
    await bob.waitFor('still here</body>');
  });
});

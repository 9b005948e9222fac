/**
 * Limits enforced by the stream layer over real sockets: connections per address, the
 * pre-authentication timeout, and back-off after a wrong password.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { PASSWORDS, RawClient, SASL, STREAM_HEADER, plain, startTestServer, type TestServer } from './harness.js';

let t: TestServer;

beforeAll(async () => {
  t = await startTestServer([
    '--tls', 'optional',
    '--set', 'limits.connections_per_ip=2',
    '--set', 'limits.preauth_timeout=1s',
    '--set', 'limits.auth_failure_delay=0.3s',
  ]);
});

afterAll(async () => {
  await t?.stop();
});


describe('stream limits over sockets', () => {
  it('refuses a connection past the per-address cap with policy-violation, others untouched', async () => {
    const first = await RawClient.connect(t.port);
    const second = await RawClient.connect(t.port);
    const third = await RawClient.connect(t.port);
    try {
      await third.waitClosed();
      expect(third.received).toMatch(/^<\?xml version='1.0'\?><stream:stream /);
      expect(third.received).toContain("<policy-violation xmlns='urn:ietf:params:xml:ns:xmpp-streams'/>");
      expect(third.received).toContain('too many connections from your address');
      await first.login('alice', { tls: false });
      expect(second.closed).toBe(false);
    } finally {
      first.close();
      second.close();
      third.close();
    }
    // The next tests need the slots back: wait until the server has seen the closes.
    for (let i = 0; i < 200 && t.server.streams.size > 0; i++) await new Promise((r) => setTimeout(r, 10));
    expect(t.server.streams.size).toBe(0);
  });

  it('closes a stream that does not authenticate in time with connection-timeout', async () => {
    const idle = await RawClient.connect(t.port);
    idle.send(STREAM_HEADER);
    await idle.waitFor('</stream:features>');
    await idle.waitClosed(5000);
    expect(idle.received).toContain("<connection-timeout xmlns='urn:ietf:params:xml:ns:xmpp-streams'/>");
  });

  it('answers a wrong password with not-authorized after the back-off, then accepts the right one', async () => {
    const c = await RawClient.connect(t.port);
    try {
      c.send(STREAM_HEADER);
      await c.waitFor('</stream:features>');
      c.take();
      c.send(`<auth ${SASL} mechanism='PLAIN'>${plain('bob', 'wrong')}</auth>`);
      // The back-off's length (limits.auth_failure_delay, doubling per failure) is a unit test
      // on a fake clock (test/unit/stream-limits.test.ts, stream.test.ts); here: the answer is
      // RFC 6120 §6.5.10 not-authorized and the stream stays usable.
      await c.waitFor('<not-authorized/>');
      expect(c.closed).toBe(false);
      c.take();
      c.send(`<auth ${SASL} mechanism='PLAIN'>${plain('bob', PASSWORDS.bob!)}</auth>`);
      await c.waitFor('<success');
    } finally {
      c.close();
    }
  });
});

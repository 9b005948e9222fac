/**
 * Memory a client can make the server hold: a client that enables XEP-0198 and never
 * acknowledges keeps every stanza sent to it in the server's unacknowledged queue. The stanza
 * count bound (stream_management.max_unacked, 5000) alone let large stanzas hold over a gigabyte
 * for one session (measured: +250 MB for 1549 messages of 200 KiB); the byte bound
 * (stream_management.max_unacked_bytes) closes such a stream with <resource-constraint/>, keeps
 * what it never acknowledged for its next login, and leaves the sender alone.
 *
 * And the other side of that policy: a reply the server writes at once can pass the slow-reader
 * bound (limits.output_queue_bytes) by far — the offline store at login, an archive page, a large
 * roster. Cut at once, a client that read and acknowledged promptly lost its stream, and with
 * XEP-0198 the messages went back offline for the next login, again and again; now both backlogs
 * (unread output, unacknowledged bytes) are tolerated while they shrink.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { RawClient, startTestServer, type TestServer } from './harness.js';

const SM = "xmlns='urn:xmpp:sm:3'";

describe('a stream-managed client that never acknowledges', () => {
  let t: TestServer;

  beforeAll(async () => {
    t = await startTestServer(['--tls', 'optional', '--set', 'stream_management.max_unacked_bytes=1MiB', '--set', 'limits.byte_rate.rate=0']);
  });

  afterAll(async () => {
    await t?.stop();
  });

  it('is closed with resource-constraint once its unacknowledged stanzas pass max_unacked_bytes, far below max_unacked', async () => {
    const bob = await RawClient.connect(t.port);
    await bob.login('bob', { tls: false, resource: 'hold' });
    bob.send(`<presence/><enable ${SM}/>`);
    await bob.waitFor('<enabled');
    const alice = await RawClient.connect(t.port);
    await alice.login('alice', { tls: false, resource: 'send' });

    const body = 'x'.repeat(200 * 1024);
    // 8 × 200 KiB: past 1 MiB after the sixth, while the count (8) is nowhere near 5000
    for (let i = 0; i < 8; i++) alice.send(`<message to='bob@localhost/hold' type='chat' id='m${i}'><body>n${i}.${body}</body></message>`);
    await bob.waitFor(/<resource-constraint xmlns='urn:ietf:params:xml:ns:xmpp-streams'\/>/, 10_000);
    await bob.waitClosed();

    // the sender is untouched
    alice.send("<iq type='get' id='p' to='localhost'><ping xmlns='urn:xmpp:ping'/></iq>");
    await alice.waitFor(/<iq [^>]*id='p'/);
    expect(alice.closed).toBe(false);

    // XEP-0198 §4: what bob never acknowledged waits for his next login
    const again = await RawClient.connect(t.port);
    await again.login('bob', { tls: false, resource: 'back' });
    again.send('<presence/>');
    const text = await again.waitFor('n7.', 10_000);
    for (let i = 0; i < 8; i++) expect(text.split(`n${i}.`).length - 1 + bob.received.split(`n${i}.`).length - 1, `m${i}`).toBeGreaterThanOrEqual(1);
  }, 30_000);
});

describe('an account with more offline messages than the output queue and the unacknowledged bound hold', () => {
  let t: TestServer;

  beforeAll(async () => {
    // 6 MB of offline messages: past output_queue_bytes (1 MiB) and past max_unacked_bytes (2 MiB
    // here), within both caps; the client reads and acknowledges as they come
    t = await startTestServer(['--tls', 'optional', '--set', 'limits.byte_rate.rate=0', '--set', 'stream_management.max_unacked_bytes=2MiB']);
  });

  afterAll(async () => {
    await t?.stop();
  });

  /** Log bob in with XEP-0198, acknowledging whatever arrives; the numbers of the messages seen. */
  async function loginAcking(resource: string): Promise<{ got: Set<number>; error: string | null }> {
    const bob = await RawClient.connect(t.port);
    await bob.login('bob', { tls: false, resource });
    bob.send(`<enable ${SM} resume='true'/><presence/>`);
    const ack = setInterval(() => {
      if (bob.closed) return;
      // h counts every stanza handled (XEP-0198 §4), the bind result and presence included
      bob.send(`<a ${SM} h='${(bob.received.match(/<(message|presence|iq)[\s>/]/g) ?? []).length}'/>`);
    }, 20);
    await bob.waitFor(/o59\.|<stream:error>/, 15_000).catch(() => {});
    await new Promise((r) => setTimeout(r, 500));
    clearInterval(ack);
    const got = new Set([...bob.received.matchAll(/<body>o(\d+)\./g)].map((m) => Number(m[1])));
    const error = /<stream:error><([a-z-]+)/.exec(bob.received)?.[1] ?? null;
    bob.send('</stream:stream>');
    await bob.waitClosed().catch(() => {});
    return { got, error };
  }

  it('delivers them once to a client that reads and acknowledges promptly, without cutting it as a slow reader', async () => {
    const alice = await RawClient.connect(t.port);
    await alice.login('alice', { tls: false, resource: 'send' });
    const body = 'y'.repeat(100 * 1024);
    for (let i = 0; i < 60; i++) alice.send(`<message to='bob@localhost' type='chat' id='o${i}'><body>o${i}.${body}</body></message>`);
    alice.send("<iq type='get' id='p' to='localhost'><ping xmlns='urn:xmpp:ping'/></iq>");
    await alice.waitFor(/<iq [^>]*id='p'/);
    const first = await loginAcking('one');
    expect(first.got.size).toBe(60);
    expect(first.error).toBeNull();
    const second = await loginAcking('two');
    expect(second.got.size).toBe(0);
  }, 40_000);
});

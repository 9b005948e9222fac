/**
 * XEP-0198 over real sockets: a client whose TCP connection dies resumes on a new one and gets
 * what it had not acknowledged; a session never resumed leaves its unacknowledged messages in
 * offline storage, delivered at the next login (nothing the server accepted is lost).
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { RawClient, startTestServer, type TestServer } from './harness.js';

let t: TestServer;
const SM = "xmlns='urn:xmpp:sm:3'";

beforeAll(async () => {
  t = await startTestServer(['--tls', 'optional', '--set', 'stream_management.resume_timeout=2s']);
});

afterAll(async () => {
  await t?.stop();
});

async function enable(c: RawClient): Promise<string> {
  c.send(`<enable ${SM} resume='true'/>`);
  const text = await c.waitFor('<enabled');
  c.take();
  return /id='([0-9a-f]+)'/.exec(text)![1]!;
}

/** Authenticate on a fresh connection without binding (to resume instead). */
async function authOnly(user: string): Promise<RawClient> {
  const c = await RawClient.connect(t.port);
  await c.login(user, { tls: false, bind: false });
  return c;
}

describe('stream management over sockets (XEP-0198)', () => {
  it('resumes a dropped session on a new connection and resends what was not acknowledged', async () => {
    const bob = await RawClient.connect(t.port);
    await bob.login('bob', { tls: false, resource: 'desk' });
    const alice = await RawClient.connect(t.port);
    await alice.login('alice', { tls: false, resource: 'phone' });
    const id = await enable(alice);

    bob.send("<message to='alice@localhost/phone' type='chat'><body>first</body></message>");
    await alice.waitFor('first');
    alice.send(`<a ${SM} h='1'/>`);
    bob.send("<message to='alice@localhost/phone' type='chat'><body>second</body></message>");
    await alice.waitFor('second');
    alice.close(); // the link dies before alice acknowledges 'second'
    await new Promise((r) => setTimeout(r, 100));
    bob.send("<message to='alice@localhost/phone' type='chat'><body>third</body></message>");

    const again = await authOnly('alice');
    again.send(`<resume ${SM} previd='${id}' h='1'/>`);
    const text = await again.waitFor('third');
    expect(text).toMatch(new RegExp(`<resumed ${SM} h='0' previd='${id}'/>`));
    expect(text).not.toContain('first');
    expect(text.indexOf('second')).toBeLessThan(text.indexOf('third'));
    again.take();
    // Same session: still alice@localhost/phone, bob reaches it there.
    bob.send("<message to='alice@localhost/phone' type='chat'><body>fourth</body></message>");
    expect(await again.waitFor('fourth')).toContain("from='bob@localhost/desk'");
    again.close();
    bob.close();
  });

  it('stores the unacknowledged messages of a session never resumed, for the next login', async () => {
    const bob = await RawClient.connect(t.port);
    await bob.login('bob', { tls: false, resource: 'desk2' });
    const carol = await RawClient.connect(t.port);
    await carol.login('carol', { tls: false, resource: 'tablet' });
    await enable(carol);
    carol.send('<presence/>');
    bob.send("<message to='carol@localhost/tablet' type='chat'><body>did you get this?</body></message>");
    await carol.waitFor('did you get this?');
    carol.close();
    // resume_timeout is 2s; the sweep runs every second.
    for (let i = 0; i < 60 && t.server.storage.offline.count('carol@localhost') === 0; i++) {
      await new Promise((r) => setTimeout(r, 100));
    }
    expect(t.server.storage.offline.count('carol@localhost')).toBe(1);
    const back = await RawClient.connect(t.port);
    await back.login('carol', { tls: false, resource: 'tablet' });
    back.send('<presence/>');
    const text = await back.waitFor('did you get this?');
    expect(text).toContain("<delay xmlns='urn:xmpp:delay'");
    back.close();
    bob.close();
  });

  it('answers <resume/> with an unknown id by <failed/>, and the client binds normally', async () => {
    const c = await authOnly('alice');
    c.send(`<resume ${SM} previd='0123' h='0'/>`);
    expect(await c.waitFor('</failed>')).toContain("<item-not-found xmlns='urn:ietf:params:xml:ns:xmpp-stanzas'/>");
    c.take();
    c.send("<iq type='set' id='b'><bind xmlns='urn:ietf:params:xml:ns:xmpp-bind'/></iq>");
    expect(await c.waitFor('</jid>')).toMatch(/<jid>alice@localhost\/[^<]+<\/jid>/);
    c.close();
  });
});

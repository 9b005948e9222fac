/**
 * XEP-0163 PEP with a real client: slixmpp's xep_0163 / xep_0084 / xep_0172 plugins
 * (interop_slixmpp_pep.py) over TCP, with the server inline (--workers 0) and sharded
 * (--workers 2, where the publisher and its contacts may sit on different shards).
 */
import { fileURLToPath } from 'node:url';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { PASSWORDS, runPythonClient, startTestServer, type TestServer } from './harness.js';

const SCRIPT = fileURLToPath(new URL('./interop_slixmpp_pep.py', import.meta.url));

describe.each([['--workers', '0'], ['--workers', '2']])('slixmpp PEP plugins (%s %s)', (...flags) => {
  let t: TestServer;
  let r: Record<string, unknown>;

  beforeAll(async () => {
    t = await startTestServer(flags);
    const rosters = t.server.storage.rosters;
    // alice shares presence with bob and carol both ways: the presence access model lets them read.
    for (const [owner, contact] of [['alice', 'bob'], ['bob', 'alice'], ['alice', 'carol'], ['carol', 'alice']]) {
      rosters.set(`${owner}@localhost`, { jid: `${contact}@localhost`, name: null, groups: [], subscription: 'both', ask: null, approved: false });
    }
    r = await runPythonClient(SCRIPT, ['127.0.0.1', String(t.port), PASSWORDS.alice!, PASSWORDS.bob!, PASSWORDS.carol!], 80_000);
  }, 90_000);

  afterAll(async () => {
    await t?.stop();
  });

  it('delivers avatar metadata and nickname events to a contact whose caps ask for them (XEP-0163 §4.2)', () => {
    expect(r.bob_avatar).toBe('a1b2c3');
    expect(r.bob_nick).toBe('Alice in Wonderland');
    expect(r.alice_own_avatar).toBe('a1b2c3');
    expect(r.bob_extra_avatars).toBe(0);
  });

  it('sends nothing to a contact whose caps do not list +notify', () => {
    expect(r.carol_events).toBe(0);
  });

  it('sends the last published items to a resource that comes online later (XEP-0163 §4.3.4)', () => {
    expect(r.laptop_avatar).toBe('a1b2c3');
    expect(r.laptop_nick).toBe('Alice in Wonderland');
  });

  it("lets slixmpp's xep_0060 subscribe explicitly, then unsubscribe: the last item, each new one while subscribed, none after (XEP-0060 §6.1, §6.1.7, §6.2; XEP-0163 §5)", () => {
    expect(r.carol_subscription).toBe('subscribed');
    expect(r.carol_subscriptions).toEqual(['http://jabber.org/protocol/nick']);
    expect(r.carol_explicit_events).toEqual(['http://jabber.org/protocol/nick', 'http://jabber.org/protocol/nick']);
  });

  it('serves items to contacts with a presence subscription and advertises the PEP service (XEP-0163 §6.1)', () => {
    expect(r.bob_items).toEqual(['a1b2c3']);
    expect(r.carol_reads_nick).toEqual(['current']);
    expect(r.account_identities).toEqual(expect.arrayContaining([['pubsub', 'pep']]));
    expect(r.account_features).toEqual(expect.arrayContaining(['http://jabber.org/protocol/pubsub#publish-options', 'http://jabber.org/protocol/pubsub#auto-create']));
  });
});

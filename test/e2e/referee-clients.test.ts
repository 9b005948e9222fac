/**
 * Everyday use with a real client that the other interop tests leave out (referee_slixmpp_everyday.py):
 * a vCard avatar set and fetched (XEP-0054, XEP-0153 presence hash), a roster group renamed and
 * pushed to the second resource, bookmarks in private storage, an offline contact who gets the
 * subscription request and the message at login, a MUC nickname change and leave. Inline and
 * sharded.
 */
import { fileURLToPath } from 'node:url';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { PASSWORDS, runPythonClient, startTestServer, type TestServer } from './harness.js';

const SCRIPT = fileURLToPath(new URL('./referee_slixmpp_everyday.py', import.meta.url));
const ROOM = 'tea@conference.localhost';

describe.each([['--workers', '0'], ['--workers', '2']])('slixmpp, an everyday user (%s %s)', (...flags) => {
  let t: TestServer;
  let r: Record<string, unknown>;

  beforeAll(async () => {
    t = await startTestServer(flags);
    for (const [owner, contact] of [['alice', 'bob'], ['bob', 'alice']]) {
      t.server.storage.rosters.set(`${owner}@localhost`, { jid: `${contact}@localhost`, name: null, groups: [], subscription: 'both', ask: null, approved: false });
    }
    r = await runPythonClient(SCRIPT, ['127.0.0.1', String(t.port), PASSWORDS.alice!, PASSWORDS.bob!, PASSWORDS.carol!], 60_000);
  }, 70_000);

  afterAll(async () => {
    await t?.stop();
  });

  it('stores a vCard avatar set through the bare JID, serves it to a contact, and relays the XEP-0153 hash in presence', () => {
    expect(r.avatar_hash_seen_by_bob).toBe(true);
    expect(r.avatar_binval_equal).toBe(true);
    expect(r.avatar_type).toBe('image/png');
    expect(r.own_vcard_after_set).toBe(true);
  });

  it('pushes renamed roster groups to the other resource and keeps them (RFC 6121 §2.4)', () => {
    expect(r.roster_groups_after_rename).toEqual({ 'carol@localhost': ['Pals', 'Tea'], 'dave@localhost': ['Pals', 'Tea'] });
  });

  it('keeps XEP-0048 bookmarks in private storage for the other resource', () => {
    expect(r.bookmarks).toEqual([[ROOM, 'Alice', 'Tea room']]);
  });

  it('gives a contact who was offline the message (delayed) and the subscription request at login', () => {
    expect(r.offline_from).toBe('alice@localhost/laptop');
    expect(r.offline_delayed).toBe(true);
    expect(r.offline_subscribe).toBe(true);
    // slixmpp approves and subscribes back by default (auto_subscribe)
    expect(r.subscription_after_approval).toBe('both');
  });

  it('changes a MUC nickname with 303, routes groupchat under the new nick, and sees the leave (XEP-0045 §7.6, §7.14)', () => {
    expect(r.nick_change_303).toBe(true);
    expect(r.groupchat_from).toBe(`${ROOM}/Robert`);
    expect(r.leave_seen).toBe(true);
  });
});

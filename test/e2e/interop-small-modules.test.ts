/**
 * XEP-0202 entity time, XEP-0012 last activity and XEP-0157 contact addresses with a real
 * client: slixmpp's xep_0202, xep_0012 and xep_0128 plugins (interop_slixmpp_small.py) over TCP,
 * with the server inline and sharded.
 */
import { fileURLToPath } from 'node:url';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { PASSWORDS, runPythonClient, startTestServer, type TestServer } from './harness.js';

const SCRIPT = fileURLToPath(new URL('./interop_slixmpp_small.py', import.meta.url));

// --workers 2: the three clients are spread over two shards, so bob's logout is recorded on one
// shard and read on another, and bob's availability is seen through its mirror.
describe.each([['--workers', '0'], ['--workers', '2']])('slixmpp entity time, last activity and contact addresses (%s %s)', (...flags) => {
  let t: TestServer;
  let r: Record<string, unknown>;
  let before: number;

  beforeAll(async () => {
    t = await startTestServer([
      ...flags,
      '--set',
      'contact.abuse=mailto:abuse@localhost',
      '--set',
      'contact.admin=["xmpp:admin@localhost", "mailto:admin@localhost"]',
    ]);
    for (const [owner, contact] of [['alice', 'bob'], ['bob', 'alice']]) {
      t.server.storage.rosters.set(`${owner}@localhost`, { jid: `${contact}@localhost`, name: null, groups: [], subscription: 'both', ask: null, approved: false });
    }
    before = Date.now();
    r = await runPythonClient(SCRIPT, ['127.0.0.1', String(t.port), PASSWORDS.alice!, PASSWORDS.bob!, PASSWORDS.carol!], 60_000);
  }, 70_000);

  afterAll(async () => {
    await t?.stop();
  });

  it("reads the server's UTC time and offset (XEP-0202 §2)", () => {
    const utc = Date.parse(String(r.server_utc));
    // Whole seconds: the answer can be up to a second behind the moment the run started.
    expect(utc).toBeGreaterThanOrEqual(Math.floor(before / 1000) * 1000);
    expect(utc).toBeLessThanOrEqual(Date.now());
    expect(r.server_tzo).toMatch(/^[+-]\d\d:\d\d$/);
  });

  it("gets a contact's time and idle time from the contact's own client (XEP-0202, XEP-0012 Online User Query)", () => {
    expect(r.bob_time_from).toBe('bob@localhost/desk');
    expect(r.bob_client_from).toBe('bob@localhost/desk');
  });

  it('gets the uptime from the server and 0 for a contact online (XEP-0012 Server and Component Query)', () => {
    expect(typeof r.uptime).toBe('number');
    expect(r.uptime as number).toBeGreaterThanOrEqual(0);
    expect(r.bob_online_seconds).toBe(0);
  });

  it("gets a contact's logout time and status, and refuses someone without a subscription (XEP-0012 Offline User Query)", () => {
    expect(r.bob_last_seconds as number).toBeGreaterThanOrEqual(2);
    expect(r.bob_last_status).toBe('Gone fishing');
    expect(r.carol_asks_bob).toBe('forbidden');
  });

  it("reads the contact addresses from the server's disco#info form (XEP-0157, XEP-0128)", () => {
    expect(r.features).toEqual(expect.arrayContaining(['jabber:iq:last', 'urn:xmpp:time']));
    // slixmpp returns every value of a field in a result form as a list, FORM_TYPE's too.
    expect(r.forms).toEqual([
      {
        FORM_TYPE: ['http://jabber.org/network/serverinfo'],
        'abuse-addresses': ['mailto:abuse@localhost'],
        'admin-addresses': ['xmpp:admin@localhost', 'mailto:admin@localhost'],
      },
    ]);
  });
});

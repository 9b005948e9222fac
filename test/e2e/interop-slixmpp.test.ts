/**
 * slixmpp (Debian python3-slixmpp) with the plugins a typical client loads — XEP-0030 disco,
 * XEP-0115 caps, XEP-0199 keepalive, XEP-0280 carbons, XEP-0352 CSI, XEP-0198 stream management,
 * XEP-0191 blocking, XEP-0077 password change — over STARTTLS, including a resumption after
 * alice's TCP connection drops without a closing handshake. The Python side (interop_slixmpp_plugins.py) reports what it saw as JSON.
 */
import { fileURLToPath } from 'node:url';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { PASSWORDS, runPythonClient, startTestServer, type TestServer } from './harness.js';

const SCRIPT = fileURLToPath(new URL('./interop_slixmpp_plugins.py', import.meta.url));

let t: TestServer;
let r: Record<string, unknown>;

beforeAll(async () => {
  t = await startTestServer([]);
  r = await runPythonClient(SCRIPT, ['127.0.0.1', String(t.port), PASSWORDS.alice!, PASSWORDS.bob!], 80_000);
}, 90_000);

afterAll(async () => {
  await t?.stop();
});

describe('slixmpp with its usual XEP plugins', () => {
  it('binds three resources with all plugins loaded', () => {
    expect(r.jids).toEqual(['alice@localhost/phone', 'alice@localhost/laptop', 'bob@localhost/desk']);
  });

  it('discovers the server features (XEP-0030) and a peer client answers disco with its caps feature (XEP-0115)', () => {
    expect(r.server_features).toEqual(
      expect.arrayContaining(['http://jabber.org/protocol/disco#info', 'urn:xmpp:carbons:2', 'urn:xmpp:ping']),
    );
    expect(r.peer_features_have_caps).toBe(true);
  });

  it('answers pings to the server and routes pings to a full JID (XEP-0199); keepalive drops nobody', () => {
    expect(r.ping_server).toBe(true);
    expect(r.ping_peer).toBe(true);
    expect(r.disconnects_before_drop).toEqual([0, 0, 0]);
  });

  it('copies received and sent chat messages to the other resource (XEP-0280 §6, §7)', () => {
    expect(r.a1_got).toBe('to the phone');
    expect(r.a2_carbon).toEqual(['received', 'to the phone']);
    expect(r.bob_got).toBe('from the phone');
    expect(r.a2_sent_carbon).toEqual(['sent', 'from the phone']);
  });

  it('offers CSI and still delivers a chat message to an inactive client at once (XEP-0352 §5)', () => {
    expect(r.csi_offered).toBe(true);
    expect(r.inactive_got).toBe('while inactive');
  });

  it('blocks and unblocks a contact with the client\'s XEP-0191 plugin', () => {
    expect(r.blocklist).toEqual(['bob@localhost']);
    expect(r.blocked_delivered).toBe(0);
    expect(r.after_unblock).toBe('after unblock');
  });

  it('changes the password in band and the new one logs in (XEP-0077 §3.3)', () => {
    expect(r.new_password_works).toBe(true);
  });

  it('resumes after a dropped TCP connection: same JID, consistent h, the missed message once (XEP-0198 §5)', () => {
    expect(r.sm_id).toBe(true);
    expect(r.resume_h_in_range).toBe(true);
    expect(r.resumed_jid).toBe('alice@localhost/phone');
    expect(r.after_resume).toBe('while the phone was away');
    expect(r.after_resume_2).toBe('after the resume');
    expect(r.duplicates).toBe(0);
  });
});

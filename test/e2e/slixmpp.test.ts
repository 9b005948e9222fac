/**
 * slixmpp (Debian python3-slixmpp) against Hermod: one client over STARTTLS, one over Direct TLS
 * (XEP-0368), both with SCRAM (slixmpp picks the strongest offered: SCRAM-SHA-256). The Python
 * side (slixmpp_pair.py) reports what it saw as JSON.
 */
import { fileURLToPath } from 'node:url';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { PASSWORDS, runPythonClient, startTestServer, type TestServer } from './harness.js';

const SCRIPT = fileURLToPath(new URL('./slixmpp_pair.py', import.meta.url));

let t: TestServer;
let outcome: Record<string, unknown>;

beforeAll(async () => {
  t = await startTestServer([]);
  outcome = await runPythonClient(SCRIPT, ['127.0.0.1', String(t.port), String(t.tlsPort), PASSWORDS.alice!, PASSWORDS.bob!], 60_000);
}, 90_000);

afterAll(async () => {
  await t?.stop();
});

describe('slixmpp end to end', () => {
  it('logs in over STARTTLS and over Direct TLS with SCRAM-SHA-256 and binds', () => {
    expect(outcome.jids).toEqual(['alice@localhost/sli', 'bob@localhost/sli']);
    expect(outcome.mechanisms).toEqual(['SCRAM-SHA-256', 'SCRAM-SHA-256']);
  });

  it('sees presence after mutual subscription, and later status changes', () => {
    expect(outcome.alice_sees).toContain('bob@localhost/sli');
    expect(outcome.bob_sees).toContain('alice@localhost/sli');
    expect(outcome.status_update).toBe('reading RFC 6121');
  });

  it('exchanges messages (full and bare JID) with the sender as from', () => {
    expect(outcome.bob_got).toEqual({ from: 'alice@localhost/sli', body: 'hello from slixmpp' });
    expect(outcome.alice_got).toEqual({ from: 'bob@localhost/sli', body: 'hello back' });
  });

  it('gets the roster with the contact at subscription both', () => {
    expect(outcome.roster).toMatchObject({ 'bob@localhost': 'both' });
  });

  it('pings the server (XEP-0199)', () => {
    expect(outcome.ping).toBe(true);
  });

  it('runs with stream management enabled, every stanza acknowledged (XEP-0198)', () => {
    expect(outcome.sm).toEqual([true, true]);
    expect(outcome.sm_unacked).toBe(0);
  });
});

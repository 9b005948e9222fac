/**
 * XEP-0313 end to end with a real client library: slixmpp's xep_0313 / xep_0059 / xep_0359
 * plugins against `hermod serve` (SQLite storage) with mam.default always: alice and bob are not
 * in each other's rosters, which the default ('roster') would not archive.
 */
import { fileURLToPath } from 'node:url';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { PASSWORDS, runPythonClient, startTestServer, type TestServer } from './harness.js';

const SCRIPT = fileURLToPath(new URL('./mam_slixmpp.py', import.meta.url));

let t: TestServer;
let outcome: Record<string, unknown>;

beforeAll(async () => {
  t = await startTestServer(['--set', 'mam.default=always']);
  outcome = await runPythonClient(SCRIPT, ['127.0.0.1', String(t.port), PASSWORDS.alice!, PASSWORDS.bob!], 60_000);
}, 90_000);

afterAll(async () => {
  await t?.stop();
});

describe('slixmpp XEP-0313 end to end', () => {
  it('delivers live messages with a stanza-id by each archiving account, one id per message (XEP-0359)', () => {
    expect(outcome.live_bodies).toEqual([0, 1, 2, 3, 4].map((i) => `message ${i}`));
    expect(outcome.live_by).toEqual(['alice@localhost', 'bob@localhost']);
    expect(new Set(outcome.live_ids as string[]).size).toBe(5);
    // The one slixmpp's xep_0359 plugin reports is bob's own archive's.
    expect(outcome.plugin_id).toEqual(outcome.live_ids);
  });

  it('advertises the archive on the account bare JID', () => {
    expect(outcome.features).toEqual(['urn:xmpp:mam:2', 'urn:xmpp:mam:2#extended', 'urn:xmpp:sid:0']);
  });

  it("lets the account's second resource page through the conversation, ids matching the live stanza-ids", () => {
    const archived = outcome.archived as { id: string; body: string; from: string; stamp: string | null }[];
    expect(archived.map((m) => m.body)).toEqual(outcome.live_bodies);
    expect(archived.map((m) => m.id)).toEqual(outcome.live_ids);
    expect(archived.every((m) => m.from === 'alice@localhost/sli' && m.stamp !== null)).toBe(true);
  });

  it('pages backwards from the end (XEP-0059 empty <before/>)', () => {
    expect(outcome.newest).toEqual(['message 4']);
  });
});

/**
 * XEP-0012 over real sockets, with the logout record written per event-loop turn
 * (XmlStore.setSoon): a query right after the logout finds the record, and a session ended by a
 * clean shutdown (SIGTERM) has its record on disk when the server comes back.
 */
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import { openStorage } from '../../src/storage/index.js';
import { killServed, PASSWORDS, RawClient, spawnServe, startTestServer, type TestServer } from './harness.js';

const LAST = "<query xmlns='jabber:iq:last'/>";
const dirs: string[] = [];
let running: TestServer | null = null;

afterEach(async () => {
  killServed();
  await running?.stop();
  running = null;
  for (const d of dirs.splice(0)) rmSync(d, { recursive: true, force: true });
});

/** bob's roster lets alice see his presence (RFC 6121 'from'), so she may ask for his last activity. */
const aliceMaySeeBob = {
  jid: 'alice@localhost',
  name: null,
  groups: [],
  subscription: 'from' as const,
  ask: null,
  approved: false,
};

describe('XEP-0012 logout records (real server)', () => {
  it('answers a query sent right after the logout with the status of the unavailable presence', async () => {
    running = await startTestServer(['--tls', 'optional']);
    running.server.storage.rosters.set('bob@localhost', aliceMaySeeBob);
    const alice = await RawClient.connect(running.port);
    await alice.login('alice', { tls: false, resource: 'q' });
    const bob = await RawClient.connect(running.port);
    await bob.login('bob', { tls: false, resource: 'away' });
    bob.send('<presence/>');
    bob.send("<presence type='unavailable'><status>gone fishing</status></presence></stream:stream>");
    await bob.waitClosed();
    alice.send(`<iq to='bob@localhost' type='get' id='l1'>${LAST}</iq>`);
    const reply = await alice.waitFor(/<iq[^>]*id='l1'[^>]*>.*?<\/iq>|<iq[^>]*id='l1'[^>]*\/>/);
    expect(reply).toMatch(/type='result'/);
    expect(reply).toMatch(/<query xmlns='jabber:iq:last' seconds='\d+'>gone fishing<\/query>/);
  });

  it('writes the logout of a session that a clean shutdown ends, so the restarted server knows it', async () => {
    const dataDir = mkdtempSync(join(tmpdir(), 'hermod-e2e-last-'));
    dirs.push(dataDir);
    const setup = openStorage({ dataDir });
    for (const [user, password] of Object.entries(PASSWORDS)) setup.users.create(`${user}@localhost`, password);
    setup.rosters.set('bob@localhost', aliceMaySeeBob);
    setup.close();

    const first = await spawnServe(dataDir);
    const bob = await RawClient.connect(first.port);
    await bob.login('bob', { tls: false, resource: 'until-shutdown' });
    bob.send('<presence/>');
    // Available until the server stops: the shutdown ends the session, which records the logout.
    first.proc.kill('SIGTERM');
    expect((await first.exited).code).toBe(0);

    const second = await spawnServe(dataDir);
    const alice = await RawClient.connect(second.port);
    await alice.login('alice', { tls: false, resource: 'q' });
    alice.send(`<iq to='bob@localhost' type='get' id='l2'>${LAST}</iq>`);
    const reply = await alice.waitFor(/<iq[^>]*id='l2'[^>]*\/>|<iq[^>]*id='l2'[^>]*>.*?<\/iq>/);
    expect(reply).toMatch(/type='result'/);
    expect(reply).toMatch(/<query xmlns='jabber:iq:last' seconds='\d+'\/>/);
    second.proc.kill('SIGTERM');
    await second.exited;
  });
});

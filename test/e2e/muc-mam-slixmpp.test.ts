/**
 * XEP-0313 room archives end to end with a real client library: slixmpp's xep_0045 / xep_0313 /
 * xep_0059 plugins (muc_mam_slixmpp.py) against the server with its default configuration (rooms
 * archive), inline (--workers 0) and sharded (--workers 2: the rooms and their archive connection
 * on the main thread). The server is then stopped and started again on the same data directory,
 * and the persistent room's archive is read once more.
 */
import { rmSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startServer } from '../../src/server.js';
import { startShardedServer } from '../../src/shard/serve.js';
import { PASSWORDS, runPythonClient } from './harness.js';
import { makeDataDir, shardedConfig } from './shard-helpers.js';
import { openStorage } from '../../src/storage/index.js';

const SCRIPT = fileURLToPath(new URL('./muc_mam_slixmpp.py', import.meta.url));

interface Archived {
  id: string;
  body: string;
  from: string;
  type: string;
  real: string | null;
  stamped: boolean;
}

/** The server on `dataDir` (default configuration but for ports and TLS): its port and stop. */
async function start(dataDir: string, workers: number): Promise<{ port: number; stop: () => Promise<void> }> {
  const config = shardedConfig(dataDir, workers);
  // Every message into user archives: the room's query results must still stay out of them.
  config.mam.default = 'always';
  if (workers === 0) {
    const server = await startServer(config);
    return { port: server.c2s.port, stop: () => server.shutdown() };
  }
  const server = await startShardedServer(config, { adminChannel: false });
  return { port: server.c2s.port, stop: () => server.shutdown() };
}

const run = (port: number, phase: 'write' | 'read') =>
  runPythonClient(SCRIPT, ['127.0.0.1', String(port), PASSWORDS.alice!, PASSWORDS.bob!, PASSWORDS.carol!, phase], 70_000);

describe.each([0, 2])('slixmpp xep_0313 against a room archive, --workers %i', (workers) => {
  let dataDir: string;
  let written: Record<string, unknown>;
  let reread: Record<string, unknown>;

  beforeAll(async () => {
    dataDir = makeDataDir([]);
    const storage = openStorage({ dataDir, offlineLimit: 100 });
    for (const [user, password] of Object.entries(PASSWORDS)) storage.users.create(`${user}@localhost`, password);
    storage.close();
    let t = await start(dataDir, workers);
    try {
      written = await run(t.port, 'write');
    } finally {
      await t.stop();
    }
    t = await start(dataDir, workers);
    try {
      reread = await run(t.port, 'read');
    } finally {
      await t.stop();
    }
  }, 120_000);

  afterAll(() => {
    if (dataDir) rmSync(dataDir, { recursive: true, force: true });
  });

  const bodies = [0, 1, 2, 3, 4].map((i) => `room message ${i}`);

  it("advertises the archive and XEP-0359 on the room's disco#info", () => {
    expect(written.room_features).toEqual(['urn:xmpp:mam:2', 'urn:xmpp:mam:2#extended', 'urn:xmpp:sid:0']);
  });

  it('gives each live copy a distinct stanza-id by the room', () => {
    expect(written.live_bodies).toEqual(bodies);
    const ids = written.live_ids as (string | null)[];
    expect(ids.every((id) => typeof id === 'string')).toBe(true);
    expect(new Set(ids).size).toBe(5);
  });

  it('lets someone who never entered the open room page through it, ids matching the live stanza-ids, without real JIDs (semi-anonymous)', () => {
    const archived = written.carol_archive as Archived[];
    expect(archived.map((m) => m.body)).toEqual(bodies);
    expect(archived.map((m) => m.id)).toEqual(written.live_ids);
    expect(archived.map((m) => m.from)).toEqual(['Alice', 'Bob', 'Alice', 'Bob', 'Alice'].map((n) => `history@conference.localhost/${n}`));
    expect(archived.every((m) => m.type === 'groupchat' && m.stamped && m.real === null)).toBe(true);
  });

  it('pages backwards to the newest message and filters by occupant JID', () => {
    expect(written.carol_newest).toEqual(['room message 4']);
    expect(written.carol_bob_only).toEqual(['room message 1', 'room message 3']);
  });

  it("shows the room's owner (a moderator) the senders' real JIDs", () => {
    const archived = written.alice_archive as Archived[];
    expect(archived.map((m) => m.real)).toEqual(['alice@localhost/desk', 'bob@localhost/phone', 'alice@localhost/desk', 'bob@localhost/phone', 'alice@localhost/desk']);
  });

  it("keeps the room's query results out of the asker's own archive (they are no messages to her), inline and across shards", () => {
    expect(written.carol_own).toEqual([]);
  });

  it("refuses a non-member the archive of a members-only room with forbidden (XEP-0313 'MUC Archives', 'Data privacy')", () => {
    expect(written.club).toBe('forbidden');
  });

  it("keeps the persistent room's archive across a restart", () => {
    const archived = reread.carol_archive as Archived[];
    expect(archived.map((m) => m.body)).toEqual(bodies);
    expect(archived.map((m) => m.id)).toEqual(written.live_ids);
  });
});

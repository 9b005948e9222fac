/**
 * Durability over a real `hermod serve` process (dist/, so `npm run build` first): what the
 * server accepted survives `kill -9` (SQLite WAL, docs/storage.md), SIGTERM ends every stream
 * with <system-shutdown/> and exits 0, and a message a dying XEP-0198 session never acknowledged
 * is in offline storage that also survives a crash, delivered at the next login.
 */
import { rmSync } from 'node:fs';
import { afterEach, describe, expect, it } from 'vitest';
import { openStorage } from '../../src/storage/index.js';
import { RawClient, killServed, spawnServe, type ServeProcess } from './harness.js';
import { makeDataDir, until } from './shard-helpers.js';

const SM = "xmlns='urn:xmpp:sm:3'";

const dirs: string[] = [];

afterEach(() => {
  killServed();
  for (const dir of dirs.splice(0)) rmSync(dir, { recursive: true, force: true });
});

async function login(port: number, user: string, resource: string): Promise<RawClient> {
  const c = await RawClient.connect(port);
  await c.login(user, { tls: false, resource, password: `${user}-pw` });
  return c;
}

/** Stanzas of one stream are handled in order: once this is answered, all before it were. */
async function roundTrip(c: RawClient, id: string): Promise<void> {
  c.send(`<iq type='get' id='${id}' to='localhost'><ping xmlns='urn:xmpp:ping'/></iq>`);
  await c.waitFor(new RegExp(`<iq [^>]*id='${id}'`));
}

async function crash(s: ServeProcess): Promise<void> {
  s.proc.kill('SIGKILL');
  expect((await s.exited).signal).toBe('SIGKILL');
}

describe('durability of a hermod serve process', () => {
  it('delivers an offline message and keeps a roster and a pending subscription across kill -9', async () => {
    const dir = makeDataDir(['alice', 'bob']);
    dirs.push(dir);
    const first = await spawnServe(dir);
    const alice = await login(first.port, 'alice', 'phone');
    alice.send(
      "<iq type='set' id='r1'><query xmlns='jabber:iq:roster'><item jid='bob@localhost' name='Bob'><group>Friends</group></item></query></iq>",
    );
    expect(/<iq [^>]*id='r1'[^>]*>/.exec(await alice.waitFor(/<iq [^>]*id='r1'/))![0]).toContain("type='result'");
    alice.send("<presence to='bob@localhost' type='subscribe'/>");
    alice.send("<message to='bob@localhost' type='chat' id='m1'><body>written before the crash</body></message>");
    await roundTrip(alice, 'sync1');
    // RFC 6121 §8.5.2.1.1 stores the message silently: nothing comes back but the ping result.
    expect(alice.received).not.toContain("type='error'");
    await crash(first);
    alice.close();

    const second = await spawnServe(dir);
    const bob = await login(second.port, 'bob', 'desk');
    bob.send('<presence/>');
    const text = await bob.waitFor('written before the crash');
    // XEP-0160 / XEP-0203: delivered from storage, stamped with when the server took it.
    expect(text).toMatch(/<message [^>]*from='alice@localhost\/phone'[^>]*>.*<delay xmlns='urn:xmpp:delay' from='localhost' stamp='[^']+'/s);
    // RFC 6121 §3.1.3: the subscription request waited too.
    const request = /<presence [^>]*type=["']subscribe["'][^>]*>/.exec(await bob.waitFor(/<presence [^>]*type=["']subscribe["']/))![0];
    expect(request).toMatch(/from=["']alice@localhost["']/);

    const again = await login(second.port, 'alice', 'laptop');
    again.send("<iq type='get' id='r2'><query xmlns='jabber:iq:roster'/></iq>");
    const roster = await again.waitFor('</query>');
    expect(roster).toMatch(/<item [^>]*jid='bob@localhost'[^>]*>/);
    const item = /<item [^>]*jid='bob@localhost'[^>]*>.*?<\/item>/s.exec(roster)![0];
    expect(item).toContain("name='Bob'");
    expect(item).toContain("ask='subscribe'");
    expect(item).toContain('<group>Friends</group>');
    bob.close();
    again.close();
    second.proc.kill('SIGTERM');
    expect((await second.exited).code).toBe(0);
  });

  it('on SIGTERM ends every stream with <system-shutdown/>, exits 0, and loses nothing accepted', async () => {
    const dir = makeDataDir(['alice', 'bob', 'carol', 'dave']);
    dirs.push(dir);
    const first = await spawnServe(dir);
    const alice = await login(first.port, 'alice', 'phone');
    // carol (connected) and dave (connection gone, session waiting for a resume) have XEP-0198
    // on and have not acknowledged what they got when the server stops.
    const smUsers: RawClient[] = [];
    for (const user of ['carol', 'dave']) {
      const c = await login(first.port, user, 'mobile');
      c.send(`<enable ${SM} resume='true'/>`);
      await c.waitFor('<enabled');
      c.send('<presence/>');
      await roundTrip(c, 'p');
      alice.send(`<message to='${user}@localhost/mobile' type='chat'><body>unacknowledged at shutdown</body></message>`);
      await c.waitFor('unacknowledged at shutdown');
      smUsers.push(c);
    }
    const [carol, dave] = smUsers as [RawClient, RawClient];
    dave.close();
    await roundTrip(alice, 'sync-dave');
    const waiting = await RawClient.connect(first.port); // not even past the header yet
    waiting.send("<?xml version='1.0'?><stream:stream xmlns='jabber:client' xmlns:stream='http://etherx.jabber.org/streams' to='localhost' version='1.0'>");
    await waiting.waitFor('</stream:features>');
    alice.send("<message to='bob@localhost' type='chat' id='m2'><body>sent just before shutdown</body></message>");
    await roundTrip(alice, 'sync2');

    first.proc.kill('SIGTERM');
    const shutdown = "<stream:error><system-shutdown xmlns='urn:ietf:params:xml:ns:xmpp-streams'/></stream:error></stream:stream>";
    for (const c of [alice, carol, waiting]) {
      await c.waitClosed(10_000);
      expect(c.received).toContain(shutdown);
    }
    const exit = await first.exited;
    expect(exit).toEqual({ code: 0, signal: null });
    expect(first.output()).toMatch(/SIGTERM: closing 4 stream/);

    const second = await spawnServe(dir);
    const bob = await login(second.port, 'bob', 'desk');
    bob.send('<presence/>');
    expect(await bob.waitFor('sent just before shutdown')).toContain("<delay xmlns='urn:xmpp:delay'");
    // XEP-0198 §4: a session ended by the shutdown keeps what its client never acknowledged.
    for (const user of ['carol', 'dave']) {
      const back = await login(second.port, user, 'mobile');
      back.send('<presence/>');
      expect(await back.waitFor('unacknowledged at shutdown')).toContain("<delay xmlns='urn:xmpp:delay'");
      back.close();
    }
    bob.close();
  });

  it('keeps a message a dead XEP-0198 session never acknowledged, through kill -9, for the next login', async () => {
    const dir = makeDataDir(['alice', 'bob']);
    dirs.push(dir);
    const first = await spawnServe(dir, ['--set', 'stream_management.resume_timeout=1s']);
    const bob = await login(first.port, 'bob', 'mobile');
    bob.send(`<enable ${SM} resume='true'/>`);
    await bob.waitFor('<enabled');
    bob.send('<presence/>');
    const alice = await login(first.port, 'alice', 'phone');
    alice.send("<message to='bob@localhost/mobile' type='chat' id='m3'><body>never acknowledged</body></message>");
    await bob.waitFor('never acknowledged');
    bob.close(); // the link dies without an <a/> for it

    // Past the resumption timeout the session ends and the message moves to offline storage;
    // watched through the database file, as `hermod adduser` would open it beside the server.
    const watcher = openStorage({ dataDir: dir });
    try {
      await until('the unacknowledged message in offline storage', () => watcher.offline.count('bob@localhost') === 1, 15_000);
    } finally {
      watcher.close();
    }
    await crash(first);
    alice.close();

    const second = await spawnServe(dir);
    const back = await login(second.port, 'bob', 'mobile');
    back.send('<presence/>');
    const text = await back.waitFor('never acknowledged');
    expect(text).toContain("<delay xmlns='urn:xmpp:delay'");
    expect(text.split('never acknowledged').length - 1).toBe(1);
    back.close();
  });
});

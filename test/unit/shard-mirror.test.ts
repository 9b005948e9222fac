import { beforeEach, describe, expect, it } from 'vitest';
import type { StreamError } from '../../src/errors.js';
import { Jid } from '../../src/jid.js';
import { createRouter, type HermodRouter } from '../../src/router/index.js';
import type { ClientSession, Router } from '../../src/router/types.js';
import { MirrorSession, ShardMesh } from '../../src/shard/mirror.js';
import { RingSender } from '../../src/shard/protocol.js';
import { createRing, RingReader, RingWriter } from '../../src/shard/ring.js';
import { createMemoryStorage } from '../../src/storage/index.js';
import { jsView } from '../scenario/js-view.js';

const DOMAIN = 'localhost';
let nextId = 1;

/** A client session as the router sees it, recording what it is sent. */
class FakeSession implements ClientSession {
  readonly id = nextId++;
  readonly account: Jid;
  jid: Jid | null = null;
  sent: string[] = [];
  closedWith: StreamError | undefined | null = null;
  constructor(account: string) {
    this.account = Jid.parse(account);
  }
  send(data: Uint8Array | string): void {
    this.sent.push(typeof data === 'string' ? data : Buffer.from(data).toString('utf8'));
  }
  close(error?: StreamError): void {
    this.closedWith = error;
  }
  take(): string {
    const all = this.sent.join('');
    this.sent = [];
    return all;
  }
}

/** Two shards in one thread: two routers over one storage, meshed by real rings. */
function twoShards() {
  const storage = createMemoryStorage({ iterations: 4096 });
  for (const u of ['alice', 'bob']) storage.users.create(`${u}@${DOMAIN}`, 'secret');
  const routers: HermodRouter[] = [createRouter({ domain: DOMAIN, storage }), createRouter({ domain: DOMAIN, storage })];
  const ring01 = createRing(1 << 16);
  const ring10 = createRing(1 << 16);
  const s01 = new RingSender(new RingWriter(ring01, { autoCommit: false }));
  let s10 = new RingSender(new RingWriter(ring10, { autoCommit: false }));
  const meshes = [new ShardMesh(0, routers[0]!, [null, s01]), new ShardMesh(1, routers[1]!, [s10, null])];
  const readers = [new RingReader(ring10), new RingReader(ring01)]; // what shard k reads
  /** Move records between the shards until both rings are quiet. */
  const pump = (): void => {
    for (let round = 0; round < 20; round++) {
      s01.commit();
      s10.commit();
      const n = readers[0]!.drain((r) => meshes[0]!.onPeerRecord(1, r)) + readers[1]!.drain((r) => meshes[1]!.onPeerRecord(0, r));
      if (n === 0) return;
    }
  };
  const shardRouters: Router[] = meshes.map((m) => m.router());
  const connect = (shard: number, account: string, resource: string): FakeSession => {
    const s = new FakeSession(`${account}@${DOMAIN}`);
    s.jid = shardRouters[shard]!.bind(s, resource);
    pump();
    return s;
  };
  const send = (shard: number, from: FakeSession, xml: string): void => {
    shardRouters[shard]!.route(from, jsView(xml));
    pump();
  };
  /** Shard 0 restarted: shard 1 gets a fresh ring towards it. */
  const relink = (): void => {
    const fresh = createRing(1 << 16);
    s10 = new RingSender(new RingWriter(fresh, { autoCommit: false }));
    readers[0] = new RingReader(fresh);
    meshes[1]!.peerUp(0, s10);
  };
  return { routers, meshes, shardRouters, pump, connect, send, relink };
}

describe('cross-shard session mirrors', () => {
  beforeEach(() => {
    nextId = 1;
  });

  it('shows a session bound on one shard to the other shard and forgets it on unbind', () => {
    const { routers, shardRouters, connect, pump } = twoShards();
    const alice = connect(0, 'alice', 'phone');
    const mirror = routers[1]!.sessions.full('alice@localhost/phone');
    expect(mirror?.session).toBeInstanceOf(MirrorSession);
    shardRouters[0]!.unbind(alice);
    pump();
    expect(routers[1]!.sessions.full('alice@localhost/phone')).toBeUndefined();
  });

  it('delivers a message from a session on shard 1 to a full JID on shard 0, from stamped (RFC 6120 §8.1.2.1)', () => {
    const { connect, send } = twoShards();
    const alice = connect(0, 'alice', 'phone');
    const bob = connect(1, 'bob', 'pc');
    send(1, bob, "<message to='alice@localhost/phone' type='chat' id='m1'><body>hi</body></message>");
    const got = alice.take();
    expect(got).toContain('<body>hi</body>');
    expect(got).toContain("from='bob@localhost/pc'");
    expect(bob.take()).toBe('');
  });

  it('exchanges presence between contacts on different shards (RFC 6121 §4.2, §4.5)', () => {
    const { connect, send, meshes } = twoShards();
    const alice = connect(0, 'alice', 'phone');
    const bob = connect(1, 'bob', 'pc');
    // Mutual subscription through the real protocol, each request crossing the shards.
    send(0, alice, "<presence to='bob@localhost' type='subscribe'/>");
    expect(bob.take()).toBe(''); // bob is not available yet: the request waits in storage
    send(1, bob, "<iq type='get' id='r1'><query xmlns='jabber:iq:roster'/></iq>");
    send(1, bob, '<presence/>');
    expect(bob.take()).toMatch(/<presence[^>]*type=["']subscribe["']/);
    send(1, bob, "<presence to='alice@localhost' type='subscribed'/>");
    send(1, bob, "<presence to='alice@localhost' type='subscribe'/>");
    send(0, alice, "<presence to='bob@localhost' type='subscribed'/>");
    alice.take();
    bob.take();
    // alice comes online: bob hears it, and alice learns bob's presence from his mirror.
    send(0, alice, '<presence><show>chat</show></presence>');
    const atBob = bob.take();
    expect(atBob).toContain("from='alice@localhost/phone'");
    expect(atBob).toContain('<show>chat</show>');
    const atAlice = alice.take();
    expect(atAlice).toContain("from='bob@localhost/pc'");
    // bob's bare-JID message goes to alice's available resource on the other shard.
    send(1, bob, "<message to='alice@localhost' type='chat'><body>yo</body></message>");
    expect(alice.take()).toContain('<body>yo</body>');
    // Shard 0 dies: shard 1 announces alice unavailable to her contacts (RFC 6121 §4.5.2).
    meshes[1]!.peerDown(0, true);
    expect(bob.take()).toMatch(/from='alice@localhost\/phone'[^>]*type='unavailable'|type='unavailable'[^>]*from='alice@localhost\/phone'/);
  });

  it('lets contacts who come online at the same moment on different shards see each other (RFC 6121 §4.2.2)', () => {
    const { connect, send, shardRouters, pump } = twoShards();
    const alice = connect(0, 'alice', 'phone');
    const bob = connect(1, 'bob', 'pc');
    send(0, alice, "<presence to='bob@localhost' type='subscribe'/>");
    send(1, bob, "<presence to='alice@localhost' type='subscribed'/>");
    send(1, bob, "<presence to='alice@localhost' type='subscribe'/>");
    send(0, alice, "<presence to='bob@localhost' type='subscribed'/>");
    alice.take();
    bob.take();
    // Both initial presences are routed before either shard hears of the other's.
    shardRouters[0]!.route(alice, jsView('<presence/>'));
    shardRouters[1]!.route(bob, jsView('<presence/>'));
    pump();
    expect(alice.take()).toMatch(/<presence[^>]*from=["']bob@localhost\/pc["']/);
    expect(bob.take()).toMatch(/<presence[^>]*from=["']alice@localhost\/phone["']/);
  });

  it('delivers a subscription request stored while the contact already came online on its shard (RFC 6121 §3.1.3)', () => {
    const { connect, shardRouters, pump } = twoShards();
    const alice = connect(0, 'alice', 'phone');
    const bob = connect(1, 'bob', 'pc');
    // bob's initial presence (which delivers stored requests) runs before shard 0 hears of it.
    shardRouters[1]!.route(bob, jsView('<presence/>'));
    shardRouters[0]!.route(alice, jsView("<presence to='bob@localhost' type='subscribe'/>"));
    pump();
    expect(bob.take()).toMatch(/<presence[^>]*type=["']subscribe["']/);
  });

  it('delivers a message stored offline while its addressee already came online on another shard (RFC 6121 §8.5.2.2.1)', () => {
    const { connect, shardRouters, pump, routers } = twoShards();
    const alice = connect(0, 'alice', 'phone');
    const bob = connect(1, 'bob', 'pc');
    // bob's initial presence (which delivers stored messages) runs before shard 0 hears of it,
    // so shard 0 stores alice's message offline.
    shardRouters[1]!.route(bob, jsView('<presence/>'));
    shardRouters[0]!.route(alice, jsView("<message to='bob@localhost' type='chat' id='m1'><body>early</body></message>"));
    bob.take();
    pump();
    const got = bob.take();
    expect(got).toContain('<body>early</body>');
    expect(got).toMatch(/<delay xmlns=["']urn:xmpp:delay["']/);
    expect(routers[0]!.storage.offline.takeAll('bob@localhost')).toEqual([]);
  });

  it('leaves a message offline when its addressee has no available session on any shard', () => {
    const { connect, shardRouters, pump, routers } = twoShards();
    const alice = connect(0, 'alice', 'phone');
    const bob = connect(1, 'bob', 'pc'); // bound, no initial presence
    shardRouters[0]!.route(alice, jsView("<message to='bob@localhost' type='chat' id='m1'><body>later</body></message>"));
    pump();
    expect(bob.take()).toBe('');
    expect(routers[0]!.storage.offline.takeAll('bob@localhost')).toHaveLength(1);
  });

  it('sends XEP-0280 carbons to a resource on another shard that enabled them', () => {
    const { connect, send } = twoShards();
    const alice = connect(0, 'alice', 'laptop');
    const bobPhone = connect(0, 'bob', 'phone');
    const bobPc = connect(1, 'bob', 'pc');
    send(1, bobPc, "<iq type='set' id='c1'><enable xmlns='urn:xmpp:carbons:2'/></iq>");
    expect(bobPc.take()).toMatch(/type=["']result["']/);
    // XEP-0280 §6: copies go to available resources.
    send(1, bobPc, '<presence/>');
    send(0, bobPhone, '<presence/>');
    bobPc.take();
    bobPhone.take();
    send(0, alice, "<message to='bob@localhost/phone' type='chat' id='m1'><body>carbon me</body></message>");
    expect(bobPhone.take()).toContain('carbon me');
    const copy = bobPc.take();
    expect(copy).toMatch(/<received xmlns=["']urn:xmpp:carbons:2["']/);
    expect(copy).toContain('carbon me');
  });

  it('closes the older session when the same full JID is bound on another shard (RFC 6120 §7.7.2.2)', () => {
    const { connect, routers } = twoShards();
    const first = connect(0, 'alice', 'phone');
    const second = connect(1, 'alice', 'phone');
    expect(first.closedWith?.condition).toBe('conflict');
    expect(routers[1]!.sessions.full('alice@localhost/phone')?.session).toBe(second);
  });

  it('answers a shard that starts late with every bound session', () => {
    const { routers, meshes, connect, pump, relink } = twoShards();
    connect(0, 'alice', 'phone');
    meshes[1]!.peerDown(0, false);
    relink();
    expect(routers[1]!.sessions.full('alice@localhost/phone')).toBeUndefined();
    meshes[1]!.requestSync();
    pump();
    expect(routers[1]!.sessions.full('alice@localhost/phone')?.session).toBeInstanceOf(MirrorSession);
  });
});

import { beforeEach, describe, expect, it } from 'vitest';
import { StanzaError, type StreamError } from '../../src/errors.js';
import { Jid } from '../../src/jid.js';
import type { IqEvent, PreRouteEvent, RoutedMessageEvent } from '../../src/router/context.js';
import { createRouter, type HermodRouter } from '../../src/router/index.js';
import { readPriority } from '../../src/router/presence.js';
import { rosterItemXml } from '../../src/router/roster.js';
import type { ClientSession } from '../../src/router/types.js';
import { createMemoryStorage } from '../../src/storage/memory.js';
import type { Storage } from '../../src/storage/types.js';
import { jsView } from '../scenario/js-view.js';

let nextId = 1;

class Fake implements ClientSession {
  readonly id = nextId++;
  jid: Jid | null = null;
  readonly sent: (Uint8Array | string)[] = [];
  closedWith: StreamError | null | undefined;
  constructor(readonly account: Jid) {}
  send(data: Uint8Array | string): void {
    this.sent.push(data);
  }
  close(error?: StreamError): void {
    this.closedWith = error ?? null;
  }
  text(i: number): string {
    const d = this.sent[i]!;
    return typeof d === 'string' ? d : Buffer.from(d).toString();
  }
}

let storage: Storage;
let router: HermodRouter;

function connect(bare: string, resource: string | null = 'r'): Fake {
  const s = new Fake(Jid.parse(bare));
  s.jid = router.bind(s, resource);
  return s;
}

beforeEach(() => {
  storage = createMemoryStorage({ iterations: 1 });
  for (const u of ['alice', 'bob', 'carol']) storage.users.create(`${u}@localhost`, 'pw');
  router = createRouter({ domain: 'localhost', storage, maxResources: 3, version: '9.9.9' });
});

describe('resource binding (RFC 6120 §7)', () => {
  it('generates distinct resources when the client asks for none (§7.6)', () => {
    const a = connect('alice@localhost', null);
    const b = connect('alice@localhost', '');
    expect(a.jid!.resource).toMatch(/^[0-9a-f]{12}$/);
    expect(b.jid!.resource).not.toBe(a.jid!.resource);
  });

  it('refuses a resourcepart that cannot be prepared with bad-request (§7.7.2.1)', () => {
    const s = new Fake(Jid.parse('alice@localhost'));
    expect(() => router.bind(s, 'bad\u0007res')).toThrow(expect.objectContaining({ condition: 'bad-request' }));
  });

  it('refuses to bind a session twice (not-allowed) and beyond the limit (resource-constraint, §7.6.2.1)', () => {
    const a = connect('alice@localhost', 'one');
    expect(() => router.bind(a, 'two')).toThrow(expect.objectContaining({ condition: 'not-allowed' }));
    connect('alice@localhost', 'two');
    connect('alice@localhost', 'three');
    expect(() => connect('alice@localhost', 'four')).toThrow(expect.objectContaining({ condition: 'resource-constraint' }));
    // Replacing an existing resource does not count as one more.
    const again = connect('alice@localhost', 'three');
    expect(again.jid!.full).toBe('alice@localhost/three');
  });

  it('closes the replaced session with conflict and delivers to the new one (§7.7.2.2)', () => {
    const old = connect('alice@localhost', 'phone');
    const fresh = connect('alice@localhost', 'phone');
    expect(old.closedWith?.condition).toBe('conflict');
    expect(fresh.closedWith).toBeUndefined();
    const bob = connect('bob@localhost');
    router.route(bob, jsView("<message to='alice@localhost/phone'><body>x</body></message>"));
    expect(old.sent).toHaveLength(0);
    expect(fresh.sent).toHaveLength(1);
  });

  it('unbind is idempotent, and stanzas from an unbound session are dropped without throwing', () => {
    const a = connect('alice@localhost');
    router.unbind(a);
    router.unbind(a);
    expect(() => router.route(a, jsView("<message to='bob@localhost'/>"))).not.toThrow();
    expect(router.sessions.size).toBe(0);
  });
});

describe('presence fan-out', () => {
  it('writes the very same buffer to every subscriber session (built once)', () => {
    storage.rosters.set('alice@localhost', { jid: 'bob@localhost', name: null, groups: [], subscription: 'from', ask: null, approved: false });
    storage.rosters.set('alice@localhost', { jid: 'carol@localhost', name: null, groups: [], subscription: 'both', ask: null, approved: false });
    const bob1 = connect('bob@localhost', 'a');
    const bob2 = connect('bob@localhost', 'b');
    const carol = connect('carol@localhost');
    for (const s of [bob1, bob2, carol]) router.route(s, jsView('<presence/>'));
    for (const s of [bob1, bob2, carol]) s.sent.length = 0;
    const alice = connect('alice@localhost');
    router.route(alice, jsView("<presence from='x@y'><status>hi</status></presence>"));
    const first = bob1.sent[0];
    expect(first).toBeInstanceOf(Uint8Array);
    expect(bob2.sent[0]).toBe(first);
    expect(carol.sent[0]).toBe(first);
    expect(alice.sent[0]).toBe(first);
    expect(bob1.text(0)).toBe("<presence from='alice@localhost/r'><status>hi</status></presence>");
  });

  it('reads priority, defaulting to 0 and refusing values outside -128..127 (RFC 6121 §4.7.2.3)', () => {
    expect(readPriority('<presence/>')).toBe(0);
    expect(readPriority('<presence><priority> -128 </priority></presence>')).toBe(-128);
    expect(readPriority('<presence><priority>127</priority></presence>')).toBe(127);
    expect(() => readPriority('<presence><priority>128</priority></presence>')).toThrow(StanzaError);
  });
});

describe('hook bus integration', () => {
  it('answers internal-server-error when a handler throws something else, and keeps routing', () => {
    router.hooks.on('iq-get/host/urn:x:boom', () => {
      throw new Error('bug');
    });
    const a = connect('alice@localhost');
    router.route(a, jsView("<iq to='localhost' type='get' id='1'><q xmlns='urn:x:boom'/></iq>"));
    expect(a.text(0)).toContain('<internal-server-error');
    router.route(a, jsView("<iq to='localhost' type='get' id='2'><ping xmlns='urn:xmpp:ping'/></iq>"));
    expect(a.text(1)).toBe("<iq type='result' id='2' from='localhost' to='alice@localhost/r'/>");
  });

  it('lets a handler answer later (it took the event by returning true)', () => {
    let pending: IqEvent | null = null;
    router.hooks.on('iq-get/host/urn:x:slow', (ev: IqEvent) => {
      pending = ev;
      return true;
    });
    const a = connect('alice@localhost');
    router.route(a, jsView("<iq to='localhost' type='get' id='s'><q xmlns='urn:x:slow'/></iq>"));
    expect(a.sent).toHaveLength(0);
    pending!.reply("<q xmlns='urn:x:slow'>done</q>");
    expect(a.text(0)).toBe("<iq type='result' id='s' from='localhost' to='alice@localhost/r'><q xmlns='urn:x:slow'>done</q></iq>");
  });

  it("runs 'stanza/pre-route' before routing; returning true consumes the stanza (XEP-0191 will use it)", () => {
    const seen: string[] = [];
    router.hooks.on('stanza/pre-route', (ev: PreRouteEvent) => {
      seen.push(ev.to?.full ?? '');
      return ev.to?.bare === 'carol@localhost';
    });
    const a = connect('alice@localhost');
    const carol = connect('carol@localhost');
    const bob = connect('bob@localhost');
    router.route(a, jsView("<message to='carol@localhost/r'/>"));
    router.route(a, jsView("<message to='bob@localhost/r'/>"));
    expect(seen).toEqual(['carol@localhost/r', 'bob@localhost/r']);
    expect(carol.sent).toHaveLength(0);
    expect(bob.sent).toHaveLength(1);
  });

  it("reports each routed message with the sessions it reached ('message/routed', for XEP-0280)", () => {
    const events: RoutedMessageEvent[] = [];
    router.hooks.on('message/routed', (ev: RoutedMessageEvent) => void events.push(ev));
    const a = connect('alice@localhost');
    const b = connect('bob@localhost');
    router.route(b, jsView('<presence/>'));
    router.route(a, jsView("<message to='bob@localhost' type='chat'><body>x</body></message>"));
    expect(events).toHaveLength(1);
    expect(events[0]!.type).toBe('chat');
    expect(events[0]!.delivered.map((s) => s.jid.full)).toEqual(['bob@localhost/r']);
    expect(events[0]!.bytes.toString()).toContain("from='alice@localhost/r'");
  });

  it('passes deliveries through session output filters (XEP-0352 will hold presence with them)', () => {
    const a = connect('alice@localhost', 'a');
    const b = connect('alice@localhost', 'b');
    const held: string[] = [];
    router.sessions.get(b)!.filters.push((bytes, kind) => {
      if (kind !== 'presence') return false;
      held.push(Buffer.from(bytes as Uint8Array).toString());
      return true;
    });
    router.route(b, jsView('<presence/>'));
    router.route(a, jsView('<presence/>'));
    expect(held).toEqual(["<presence from='alice@localhost/b'/>", "<presence from='alice@localhost/a'/>"]);
    router.route(a, jsView("<message to='alice@localhost/b'/>"));
    expect(b.sent).toHaveLength(1);
  });
});

describe('unauthenticated IQs', () => {
  it('refuses non-IQ elements and IQs nobody handles before authentication', () => {
    const replies: string[] = [];
    expect(router.routeUnauthenticated(jsView("<message to='bob@localhost'/>"), (d) => replies.push(d))).toBe(false);
    expect(router.routeUnauthenticated(jsView("<iq type='get' id='1'><ping xmlns='urn:xmpp:ping'/></iq>"), (d) => replies.push(d))).toBe(false);
    expect(replies).toEqual([]);
  });

  it('answers a semantically broken IQ with bad-request, and never an error/result', () => {
    const replies: string[] = [];
    expect(router.routeUnauthenticated(jsView("<iq type='get'><query xmlns='jabber:iq:register'/></iq>"), (d) => replies.push(d))).toBe(true);
    expect(replies[0]).toContain('<bad-request');
    expect(router.routeUnauthenticated(jsView("<iq type='error' id='e'/>"), (d) => replies.push(d))).toBe(true);
    expect(replies).toHaveLength(1);
  });
});

describe('roster items (RFC 6121 §2.1.2)', () => {
  it('escapes names and groups and shows approved only while unused', () => {
    expect(
      rosterItemXml({ jid: 'b@x', name: "O'Brien & co", groups: ['<friends>'], subscription: 'none', ask: 'subscribe', approved: true }),
    ).toBe("<item jid='b@x' name='O&apos;Brien &amp; co' subscription='none' ask='subscribe' approved='true'><group>&lt;friends&gt;</group></item>");
    expect(rosterItemXml({ jid: 'b@x', name: null, groups: [], subscription: 'both', ask: null, approved: true })).toBe(
      "<item jid='b@x' subscription='both'/>",
    );
    expect(rosterItemXml({ jid: 'b@x', subscription: 'remove' })).toBe("<item jid='b@x' subscription='remove'/>");
  });
});

describe('stream features', () => {
  it('offers roster versioning, pre-approval and client state indication after authentication (RFC 6121 §2.6.1, §3.4.1, XEP-0352)', () => {
    expect(router.streamFeatures()).toBe(
      "<ver xmlns='urn:xmpp:features:rosterver'/><sub xmlns='urn:xmpp:features:pre-approval'/><csi xmlns='urn:xmpp:csi:0'/>",
    );
  });
});

describe("'presence/blocked' hook (for XEP-0191)", () => {
  it('keeps broadcasts, probe answers and directed presence away when a handler says so', () => {
    for (const [a, b] of [['alice', 'bob'], ['bob', 'alice']]) {
      storage.rosters.set(`${a}@localhost`, { jid: `${b}@localhost`, name: null, groups: [], subscription: 'both', ask: null, approved: false });
    }
    router.hooks.on('presence/blocked', (ev: { from: string; to: string }) => ev.from === 'alice@localhost' && ev.to === 'bob@localhost');
    const bob = connect('bob@localhost');
    router.route(bob, jsView('<presence/>'));
    const alice = connect('alice@localhost');
    router.route(alice, jsView('<presence/>'));
    router.route(alice, jsView("<presence to='bob@localhost/r'><show>dnd</show></presence>"));
    // bob hears only himself; alice hears herself and bob (the block is one-way).
    expect(bob.sent.map((_, i) => bob.text(i))).toEqual(["<presence from='bob@localhost/r'/>"]);
    expect(alice.sent.map((_, i) => alice.text(i))).toEqual(["<presence from='alice@localhost/r'/>", "<presence from='bob@localhost/r'/>"]);
  });
});

describe('answers to the server', () => {
  it("hands IQ results addressed to the server to 'iq-result/<target>' and never answers them", () => {
    const got: (string | null)[] = [];
    router.hooks.on('iq-result/host', (ev: { id: string | null }) => void got.push(ev.id));
    const a = connect('alice@localhost');
    router.route(a, jsView("<iq to='localhost' type='result' id='srv1'/>"));
    router.route(a, jsView("<iq to='localhost' type='error' id='srv2'><error type='cancel'><gone xmlns='urn:ietf:params:xml:ns:xmpp-stanzas'/></error></iq>"));
    expect(got).toEqual(['srv1']);
    expect(a.sent).toHaveLength(0);
  });

  it('never throws out of route(), even when the error reply itself cannot be written', () => {
    const a = connect('alice@localhost');
    a.send = () => {
      throw new Error('socket gone');
    };
    expect(() => router.route(a, jsView("<iq to='localhost' type='get' id='x'><nothing xmlns='urn:x'/></iq>"))).not.toThrow();
  });
});

describe("'stanza/remote' hook (for XEP-0114 components)", () => {
  it('offers stanzas for other domains to a module before refusing them with remote-server-not-found', () => {
    const taken: string[] = [];
    router.hooks.on('stanza/remote', (ev: { to: Jid }) => {
      if (ev.to.domain !== 'component.localhost') return false;
      taken.push(ev.to.full);
      return true;
    });
    const a = connect('alice@localhost');
    router.route(a, jsView("<message to='bot@component.localhost'><body>x</body></message>"));
    router.route(a, jsView("<iq to='elsewhere.example' type='get' id='1'><ping xmlns='urn:xmpp:ping'/></iq>"));
    router.route(a, jsView("<iq to='elsewhere.example' type='result' id='2'/>"));
    expect(taken).toEqual(['bot@component.localhost']);
    expect(a.sent).toHaveLength(1);
    expect(a.text(0)).toContain('<remote-server-not-found');
  });
});

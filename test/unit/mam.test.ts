/**
 * XEP-0313 module through the router (JS StanzaView, memory storage): what is archived for whom
 * and with which id, XEP-0441 preferences, query parsing and errors, paging, retention.
 */
import { afterEach, beforeEach, describe, expect, it, vi } from 'vitest';
import { Jid } from '../../src/jid.js';
import { DEFAULT_PAGE, MAX_PAGE, purgeArchives, readQuery, type MamSettings } from '../../src/modules/mam.js';
import { createRouter, type HermodRouter } from '../../src/router/index.js';
import type { ClientSession } from '../../src/router/types.js';
import { createMemoryStorage } from '../../src/storage/memory.js';
import type { Storage } from '../../src/storage/types.js';
import { parseElement } from '../../src/xml/element.js';
import { xmlDiff } from '../scenario/canonical.js';
import { jsView } from '../scenario/js-view.js';

let nextId = 1;

class Fake implements ClientSession {
  readonly id = nextId++;
  jid: Jid | null = null;
  readonly sent: string[] = [];
  constructor(readonly account: Jid) {}
  send(data: Uint8Array | string): void {
    this.sent.push(typeof data === 'string' ? data : Buffer.from(data).toString());
  }
  close(): void {}
  /** Everything received since the last call, parsed. */
  take() {
    return this.sent.splice(0).map((x) => parseElement(x));
  }
}

let storage: Storage;
let router: HermodRouter;
let clock: Date;

function setup(settings: Partial<MamSettings> = {}): void {
  storage = createMemoryStorage({ iterations: 1 });
  for (const u of ['alice', 'bob', 'carol']) storage.users.create(`${u}@localhost`, 'pw');
  clock = new Date('2026-03-01T10:00:00.000Z');
  router = createRouter({
    domain: 'localhost',
    storage,
    now: () => clock,
    mam: { default: 'always', maxAge: 0, maxPerUser: 0, purgeInterval: 0, ...settings },
  });
}

function connect(bare: string, resource = 'r'): Fake {
  const s = new Fake(Jid.parse(bare));
  s.jid = router.bind(s, resource);
  return s;
}

const send = (s: Fake, xml: string) => router.route(s, jsView(xml));
const chat = (from: Fake, to: string, body: string, extra = '') => send(from, `<message to='${to}' type='chat'><body>${body}</body>${extra}</message>`);
const archiveIds = (bare: string) => storage.mam.query(bare, { max: 100 }).items.map((m) => m.id);

/** Run a query as `s`, return the result messages' ids and bodies, and the <fin/>. */
function query(s: Fake, inner = '', attrs = "queryid='q'") {
  send(s, `<iq type='set' id='i'><query xmlns='urn:xmpp:mam:2' ${attrs}>${inner}</query></iq>`);
  const got = s.take();
  const iq = got.pop()!;
  return {
    iq,
    results: got.map((m) => {
      const r = m.getChild('result', 'urn:xmpp:mam:2')!;
      const inner = r.getChild('forwarded', 'urn:xmpp:forward:0')!.getChild('message')!;
      return { id: r.attrs.id as string, queryid: r.attrs.queryid, to: m.attrs.to, body: inner.getChildText('body') };
    }),
    fin: iq.getChild('fin', 'urn:xmpp:mam:2'),
  };
}

const rsm = (inner: string) => `<set xmlns='http://jabber.org/protocol/rsm'>${inner}</set>`;
const form = (fields: Record<string, string | string[]>) =>
  `<x xmlns='jabber:x:data' type='submit'><field var='FORM_TYPE' type='hidden'><value>urn:xmpp:mam:2</value></field>` +
  Object.entries(fields)
    .map(([k, v]) => `<field var='${k}'>${(Array.isArray(v) ? v : [v]).map((x) => `<value>${x}</value>`).join('')}</field>`)
    .join('') +
  `</x>`;
const errorOf = (iq: ReturnType<typeof parseElement>) => iq.getChild('error')?.children.find((c) => typeof c !== 'string' && c.name !== 'text');

beforeEach(() => setup());

describe('archiving (XEP-0313 business rules, XEP-0359)', () => {
  it('stores one message in both archives under the same id, the id the recipient sees in <stanza-id/>', () => {
    const alice = connect('alice@localhost');
    const bob = connect('bob@localhost');
    chat(alice, 'bob@localhost/r', 'hi');
    const [msg] = bob.take();
    const sids = msg!.getChildren('stanza-id', 'urn:xmpp:sid:0').map((c) => [c.attrs.by, c.attrs.id]);
    const [aliceIds, bobIds] = [archiveIds('alice@localhost'), archiveIds('bob@localhost')];
    expect(aliceIds).toHaveLength(1);
    expect(bobIds).toEqual(aliceIds);
    expect(sids).toEqual([
      ['alice@localhost', aliceIds[0]],
      ['bob@localhost', aliceIds[0]],
    ]);
    expect(aliceIds[0]).toMatch(/^[0-9a-v]{20}$/);
    // The contact is the recipient as addressed (outgoing) and the sender's full JID (incoming).
    expect(storage.mam.query('alice@localhost', { max: 1 }).items[0]!.with).toBe('bob@localhost/r');
    expect(storage.mam.query('bob@localhost', { max: 1 }).items[0]!.with).toBe('alice@localhost/r');
  });

  it('stores the message as routed, without its stanza-ids, stamped with the router clock', () => {
    const alice = connect('alice@localhost');
    connect('bob@localhost');
    chat(alice, 'bob@localhost', 'hi');
    const [m] = storage.mam.query('bob@localhost', { max: 1 }).items;
    expect(m!.stanza).toBe("<message from='alice@localhost/r' to='bob@localhost' type='chat'><body>hi</body></message>");
    expect(m!.stamp).toEqual(clock);
  });

  it('gives every message a new id', () => {
    const alice = connect('alice@localhost');
    connect('bob@localhost');
    for (let i = 0; i < 50; i++) chat(alice, 'bob@localhost', `m${i}`);
    expect(new Set(archiveIds('bob@localhost')).size).toBe(50);
  });

  it('archives a message to oneself once', () => {
    const alice = connect('alice@localhost');
    send(alice, "<message type='chat'><body>note to self</body></message>");
    expect(archiveIds('alice@localhost')).toHaveLength(1);
  });

  it('archives nothing for a message that is refused (no such account, groupchat to a bare JID)', () => {
    const alice = connect('alice@localhost');
    chat(alice, 'nobody@localhost', 'x');
    send(alice, "<message to='bob@localhost' type='groupchat'><body>x</body></message>");
    expect(alice.take().map((e) => e.attrs.type)).toEqual(['error', 'error']);
    expect(archiveIds('alice@localhost')).toEqual([]);
    expect(archiveIds('bob@localhost')).toEqual([]);
  });

  it('archives for nobody, and adds no stanza-id, with the server default never', () => {
    setup({ default: 'never' });
    const alice = connect('alice@localhost');
    const bob = connect('bob@localhost');
    chat(alice, 'bob@localhost/r', 'hi');
    expect(bob.take()[0]!.getChild('stanza-id')).toBeUndefined();
    expect(archiveIds('alice@localhost')).toEqual([]);
  });

  it("with default roster, archives only for the side whose roster holds the other", () => {
    setup({ default: 'roster' });
    storage.rosters.set('bob@localhost', { jid: 'alice@localhost', name: null, groups: [], subscription: 'both', ask: null, approved: false });
    const alice = connect('alice@localhost');
    const bob = connect('bob@localhost');
    chat(alice, 'bob@localhost/r', 'hi');
    expect(bob.take()[0]!.getChildren('stanza-id').map((c) => c.attrs.by)).toEqual(['bob@localhost']);
    expect(archiveIds('alice@localhost')).toEqual([]);
    expect(archiveIds('bob@localhost')).toHaveLength(1);
  });
});

describe('preferences (XEP-0441)', () => {
  it("returns the server default for an account that set none", () => {
    const alice = connect('alice@localhost');
    send(alice, "<iq type='get' id='p'><prefs xmlns='urn:xmpp:mam:2'/></iq>");
    const prefs = alice.take()[0]!.getChild('prefs', 'urn:xmpp:mam:2')!;
    expect(xmlDiff("<prefs xmlns='urn:xmpp:mam:2' default='always'><always/><never/></prefs>", prefs.toString())).toBeNull();
  });

  it('stores prefs and answers with them; never wins over always, and a full JID matches only that resource', () => {
    const alice = connect('alice@localhost');
    const bob = connect('bob@localhost');
    const carol = connect('carol@localhost');
    send(
      alice,
      "<iq type='set' id='p'><prefs xmlns='urn:xmpp:mam:2' default='never'><always><jid>Bob@localhost</jid><jid>carol@localhost/r</jid></always><never><jid>carol@localhost</jid></never></prefs></iq>",
    );
    const reply = alice.take()[0]!;
    expect(reply.attrs.type).toBe('result');
    const stored =
      "<prefs xmlns='urn:xmpp:mam:2' default='never'><always><jid>bob@localhost</jid><jid>carol@localhost/r</jid></always><never><jid>carol@localhost</jid></never></prefs>";
    expect(xmlDiff(stored, reply.getChild('prefs')!.toString())).toBeNull();
    chat(bob, 'alice@localhost', 'from bob'); // always
    chat(carol, 'alice@localhost', 'from carol'); // in both lists: never wins
    chat(alice, 'carol@localhost/r', 'to carol'); // in both lists: never wins
    chat(alice, 'bob@localhost/x', 'to bob elsewhere'); // bare bob in always: any resource
    expect(storage.mam.query('alice@localhost', { max: 10 }).items.map((m) => m.with)).toEqual(['bob@localhost/r', 'bob@localhost/x']);
    // Bob and carol archive by the server default as before.
    expect(archiveIds('carol@localhost')).toHaveLength(2);
  });

  it('refuses a prefs set without a valid default (bad-request) or with a malformed JID (jid-malformed), keeping the old prefs', () => {
    const alice = connect('alice@localhost');
    send(alice, "<iq type='set' id='p1'><prefs xmlns='urn:xmpp:mam:2' default='sometimes'/></iq>");
    send(alice, "<iq type='set' id='p2'><prefs xmlns='urn:xmpp:mam:2' default='never'><always><jid>a@b@c</jid></always></prefs></iq>");
    expect(alice.take().map((e) => errorOf(e)?.name)).toEqual(['bad-request', 'jid-malformed']);
    expect(storage.mam.prefs('alice@localhost')).toBeNull();
  });

  it("refuses another account's archive and prefs with forbidden", () => {
    const alice = connect('alice@localhost');
    send(alice, "<iq type='get' id='p' to='bob@localhost'><prefs xmlns='urn:xmpp:mam:2'/></iq>");
    send(alice, "<iq type='set' id='q' to='bob@localhost'><query xmlns='urn:xmpp:mam:2'/></iq>");
    expect(alice.take().map((e) => errorOf(e)?.name)).toEqual(['forbidden', 'forbidden']);
  });
});

describe('queries (XEP-0313 §4, XEP-0059)', () => {
  let alice: Fake;
  let phone: Fake;
  beforeEach(() => {
    alice = connect('alice@localhost');
    phone = connect('alice@localhost', 'phone');
    const bob = connect('bob@localhost');
    const carol = connect('carol@localhost');
    for (let i = 0; i < 6; i++) {
      clock = new Date(Date.UTC(2026, 2, 1, 10, i));
      chat(i % 2 === 0 ? bob : carol, 'alice@localhost/r', `m${i}`);
    }
    for (const s of [alice, phone, bob, carol]) s.take();
  });

  it('sends results to the asking resource only, each wrapped with its delay, then the fin', () => {
    const { results, fin, iq } = query(phone);
    expect(results.map((r) => r.body)).toEqual(['m0', 'm1', 'm2', 'm3', 'm4', 'm5']);
    expect(results.every((r) => r.queryid === 'q' && r.to === 'alice@localhost/phone')).toBe(true);
    expect(iq.attrs.type).toBe('result');
    expect(fin!.attrs.complete).toBe('true');
    expect(fin!.getChild('set')!.getChildText('count')).toBe('6');
    expect(fin!.getChild('set')!.getChildText('first')).toBe(results[0]!.id);
    expect(fin!.getChild('set')!.getChildText('last')).toBe(results[5]!.id);
    expect(alice.take()).toEqual([]);
    // The forwarded copy is in jabber:client and carries XEP-0203 delay with the archive stamp.
    send(phone, `<iq type='set' id='i'><query xmlns='urn:xmpp:mam:2'>${rsm('<max>1</max>')}</query></iq>`);
    const fwd = phone.take()[0]!.getChild('result')!.getChild('forwarded')!;
    expect(fwd.getChild('delay', 'urn:xmpp:delay')!.attrs.stamp).toBe('2026-03-01T10:00:00.000Z');
    expect(fwd.getChild('message')!.attrs.xmlns).toBe('jabber:client');
  });

  it('filters by with (bare) and by start/end', () => {
    expect(query(alice, form({ with: 'carol@localhost' })).results.map((r) => r.body)).toEqual(['m1', 'm3', 'm5']);
    const ranged = query(alice, form({ start: '2026-03-01T10:02:00Z', end: '2026-03-01T11:03:00+01:00' }));
    expect(ranged.results.map((r) => r.body)).toEqual(['m2', 'm3']);
  });

  it('pages forwards with after and backwards from an empty before, marking the final page complete', () => {
    const p1 = query(alice, rsm('<max>4</max>'));
    expect([p1.results.map((r) => r.body), p1.fin!.attrs.complete]).toEqual([['m0', 'm1', 'm2', 'm3'], undefined]);
    const last = p1.fin!.getChild('set')!.getChildText('last');
    const p2 = query(alice, rsm(`<max>4</max><after>${last}</after>`));
    expect([p2.results.map((r) => r.body), p2.fin!.attrs.complete]).toEqual([['m4', 'm5'], 'true']);
    const back = query(alice, rsm('<max>2</max><before/>'));
    expect([back.results.map((r) => r.body), back.fin!.attrs.complete]).toEqual([['m4', 'm5'], undefined]);
    const first = back.fin!.getChild('set')!.getChildText('first');
    const back2 = query(alice, rsm(`<max>5</max><before>${first}</before>`));
    expect([back2.results.map((r) => r.body), back2.fin!.attrs.complete]).toEqual([['m0', 'm1', 'm2', 'm3'], 'true']);
  });

  it('flips the page order on request, first/last staying in archive order (#extended flip-page)', () => {
    const { results, fin } = query(alice, `${rsm('<max>3</max><before/>')}<flip-page/>`);
    expect(results.map((r) => r.body)).toEqual(['m5', 'm4', 'm3']);
    expect(fin!.getChild('set')!.getChildText('first')).toBe(results[2]!.id);
  });

  it('answers ids, after-id and before-id (#extended)', () => {
    const all = query(alice).results;
    expect(query(alice, form({ ids: [all[4]!.id, all[1]!.id] })).results.map((r) => r.body)).toEqual(['m1', 'm4']);
    expect(query(alice, form({ 'after-id': all[1]!.id, 'before-id': all[4]!.id })).results.map((r) => r.body)).toEqual(['m2', 'm3']);
  });

  it('answers a query that matches nothing with a complete fin holding only the count', () => {
    const none = query(alice, form({ with: 'nobody@localhost' }));
    expect(none.results).toEqual([]);
    const expected = "<fin xmlns='urn:xmpp:mam:2' complete='true'><set xmlns='http://jabber.org/protocol/rsm'><count>0</count></set></fin>";
    expect(xmlDiff(expected, none.fin!.toString())).toBeNull();
  });

  it('answers unknown ids with item-not-found and bad input with the specific condition', () => {
    const cases: [string, string][] = [
      [rsm('<after>nope</after>'), 'item-not-found'],
      [rsm('<before>nope</before>'), 'item-not-found'],
      [form({ 'after-id': 'nope' }), 'item-not-found'],
      [rsm('<max>-1</max>'), 'bad-request'],
      [rsm('<after></after>'), 'bad-request'],
      [rsm('<index>3</index>'), 'feature-not-implemented'],
      [form({ start: 'yesterday' }), 'bad-request'],
      [form({ with: 'a@b@c' }), 'bad-request'],
      [form({ 'full-text-search': 'x' }), 'feature-not-implemented'],
      [`<x xmlns='jabber:x:data' type='submit'><field var='FORM_TYPE'><value>urn:xmpp:mam:1</value></field></x>`, 'bad-request'],
    ];
    for (const [inner, condition] of cases) {
      const { iq, results } = query(alice, inner);
      expect([inner, results.length, errorOf(iq)?.name]).toEqual([inner, 0, condition]);
    }
    expect(errorOf(query(alice, '', "queryid='q' node='urn:xmpp:mucsub:nodes:messages'").iq)?.name).toBe('item-not-found');
  });

  it('returns the query form and the archive metadata', () => {
    send(alice, "<iq type='get' id='f'><query xmlns='urn:xmpp:mam:2'/></iq>");
    const vars = alice.take()[0]!.getChild('query')!.getChild('x', 'jabber:x:data')!.getChildren('field').map((f) => f.attrs.var);
    expect(vars).toEqual(['FORM_TYPE', 'with', 'start', 'end', 'after-id', 'before-id', 'ids']);
    send(alice, "<iq type='get' id='m'><metadata xmlns='urn:xmpp:mam:2'/></iq>");
    const meta = alice.take()[0]!.getChild('metadata')!;
    const all = query(alice).results;
    expect([meta.getChild('start')!.attrs.id, meta.getChild('start')!.attrs.timestamp]).toEqual([all[0]!.id, '2026-03-01T10:00:00.000Z']);
    expect([meta.getChild('end')!.attrs.id, meta.getChild('end')!.attrs.timestamp]).toEqual([all[5]!.id, '2026-03-01T10:05:00.000Z']);
  });
});

describe('query parsing limits', () => {
  it(`defaults to ${DEFAULT_PAGE} per page and caps max at ${MAX_PAGE}`, () => {
    expect(readQuery(parseElement("<query xmlns='urn:xmpp:mam:2'/>")).query.max).toBe(DEFAULT_PAGE);
    const big = parseElement(`<query xmlns='urn:xmpp:mam:2'>${rsm('<max>100000</max>')}</query>`);
    expect(readQuery(big).query.max).toBe(MAX_PAGE);
  });

  it('treats empty form fields as absent (clients echo the whole form)', () => {
    const q = parseElement(`<query xmlns='urn:xmpp:mam:2'>${form({ with: '', start: '' })}</query>`);
    expect(readQuery(q).query).toEqual({ max: DEFAULT_PAGE });
  });
});

describe('retention and account deletion', () => {
  it('purges by max_age and max_per_user', () => {
    const alice = connect('alice@localhost');
    connect('bob@localhost');
    for (let day = 1; day <= 5; day++) {
      clock = new Date(Date.UTC(2026, 2, day));
      chat(alice, 'bob@localhost', `d${day}`);
    }
    expect(purgeArchives(storage, { maxAge: 0, maxPerUser: 0 }, clock)).toBe(0);
    // Older than two days before March 5: March 1 and 2, in both archives.
    expect(purgeArchives(storage, { maxAge: 2 * 86_400_000, maxPerUser: 0 }, clock)).toBe(4);
    expect(purgeArchives(storage, { maxAge: 0, maxPerUser: 1 }, clock)).toBe(4);
    expect(storage.mam.query('bob@localhost', { max: 10 }).items.map((m) => m.stanza.includes('d5'))).toEqual([true]);
  });

  describe('on its timer', () => {
    afterEach(() => {
      vi.useRealTimers();
    });

    it('applies mam.max_per_user every purge_interval', () => {
      vi.useFakeTimers();
      setup({ maxPerUser: 2, purgeInterval: 60_000 });
      const alice = connect('alice@localhost');
      connect('bob@localhost');
      for (let i = 0; i < 5; i++) chat(alice, 'bob@localhost', `m${i}`);
      vi.advanceTimersByTime(59_999);
      expect(archiveIds('bob@localhost')).toHaveLength(5);
      vi.advanceTimersByTime(1);
      expect(storage.mam.query('bob@localhost', { max: 10 }).items.map((m) => m.stanza.match(/m\d/)![0])).toEqual(['m3', 'm4']);
      expect(archiveIds('alice@localhost')).toHaveLength(2);
    });
  });

  it('removes the archive with the account (XEP-0077 cancel)', () => {
    const alice = connect('alice@localhost');
    connect('bob@localhost');
    chat(alice, 'bob@localhost', 'bye');
    send(alice, "<iq type='set' id='c'><query xmlns='jabber:iq:register'><remove/></query></iq>");
    expect(storage.users.exists('alice@localhost')).toBe(false);
    expect(archiveIds('alice@localhost')).toEqual([]);
    expect(archiveIds('bob@localhost')).toHaveLength(1);
  });
});

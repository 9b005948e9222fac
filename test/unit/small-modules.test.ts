import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import { loadConfig } from '../../src/config/file.js';
import { Jid } from '../../src/jid.js';
import { contactForm } from '../../src/modules/contact.js';
import { decodeLast, encodeLast, LAST_KEY, statusOf } from '../../src/modules/last.js';
import { utcStamp, zoneOffset } from '../../src/modules/time.js';
import { createRouter } from '../../src/router/index.js';
import type { RouterOptions } from '../../src/router/router.js';
import type { ClientSession } from '../../src/router/types.js';
import { createMemoryStorage } from '../../src/storage/memory.js';
import { openStorage } from '../../src/storage/index.js';
import type { Storage, Subscription } from '../../src/storage/types.js';
import { jsView } from '../scenario/js-view.js';

let nextId = 1;

function client(bare: string, id = nextId++): ClientSession & { out: string[] } {
  const out: string[] = [];
  return { id, account: Jid.parse(bare), jid: null, out, send: (d) => void out.push(String(d)), close() {} };
}

/** A router on `storage` whose clock the test moves; accounts alice, bob, carol. */
function setup(storage: Storage = createMemoryStorage({ iterations: 1 }), options: Partial<RouterOptions> = {}) {
  for (const u of ['alice', 'bob', 'carol']) if (!storage.users.exists(`${u}@localhost`)) storage.users.create(`${u}@localhost`, 'pw');
  const clock = { t: Date.parse('2026-03-01T12:00:00.000Z') };
  const router = createRouter({ domain: 'localhost', storage, now: () => new Date(clock.t), ...options });
  const connect = (bare: string, resource = 'r', id?: number) => {
    const s = client(bare, id);
    router.bind(s, resource);
    return s;
  };
  const send = (s: ClientSession & { out: string[] }, xml: string): string | undefined => {
    s.out.length = 0;
    router.route(s, jsView(xml));
    return s.out[s.out.length - 1];
  };
  const contact = (owner: string, jid: string, subscription: Subscription) =>
    storage.rosters.set(owner, { jid, name: null, groups: [], subscription, ask: null, approved: false });
  return { storage, router, clock, connect, send, contact };
}

/** alice (connected as alice@localhost/r) is in bob's roster with subscription both. */
function aliceSeesBob() {
  const env = setup();
  env.contact('bob@localhost', 'alice@localhost', 'both');
  return { ...env, alice: env.connect('alice@localhost') };
}

const LAST = "<query xmlns='jabber:iq:last'/>";
const lastTo = (to: string | null, id = 'l') => `<iq${to ? ` to='${to}'` : ''} type='get' id='${id}'>${LAST}</iq>`;

describe('XEP-0202 Entity Time', () => {
  it('answers a query to the server with its UTC time and zone offset (XEP-0202 §2)', () => {
    const { connect, send } = setup();
    const alice = connect('alice@localhost');
    const reply = send(alice, "<iq to='localhost' type='get' id='t'><time xmlns='urn:xmpp:time'/></iq>");
    const now = new Date('2026-03-01T12:00:00.000Z');
    expect(reply).toBe(
      `<iq type='result' id='t' from='localhost' to='alice@localhost/r'><time xmlns='urn:xmpp:time'><tzo>${zoneOffset(now)}</tzo><utc>2026-03-01T12:00:00Z</utc></time></iq>`,
    );
  });

  it("answers a query without 'to' as the server (RFC 6120 §10.3.3)", () => {
    const { connect, send } = setup();
    expect(send(connect('alice@localhost'), "<iq type='get' id='t0'><time xmlns='urn:xmpp:time'/></iq>")).toContain(
      '<utc>2026-03-01T12:00:00Z</utc>',
    );
  });

  it('formats the offset as XEP-0082 TZD ±hh:mm and the time without milliseconds', () => {
    expect(utcStamp(new Date('2026-03-01T12:34:56.789Z'))).toBe('2026-03-01T12:34:56Z');
    const tz = process.env.TZ;
    try {
      process.env.TZ = 'UTC';
      expect(zoneOffset(new Date('2026-03-01T00:00:00Z'))).toBe('+00:00');
      process.env.TZ = 'Asia/Kolkata';
      expect(zoneOffset(new Date('2026-03-01T00:00:00Z'))).toBe('+05:30');
      process.env.TZ = 'America/St_Johns';
      expect(zoneOffset(new Date('2026-01-15T00:00:00Z'))).toBe('-03:30');
    } finally {
      if (tz === undefined) delete process.env.TZ;
      else process.env.TZ = tz;
    }
  });

  it('routes a time query to a full JID to that client (RFC 6121 §8.5.3.1)', () => {
    const { connect, send } = setup();
    const alice = connect('alice@localhost');
    const bob = connect('bob@localhost', 'phone');
    send(alice, "<iq to='bob@localhost/phone' type='get' id='t2'><time xmlns='urn:xmpp:time'/></iq>");
    expect(bob.out).toEqual(["<iq from='alice@localhost/r' to='bob@localhost/phone' type='get' id='t2'><time xmlns='urn:xmpp:time'/></iq>"]);
    expect(alice.out).toEqual([]);
  });

  it('refuses a time set and a payload that is not <time/> (RFC 6120 §8.2.3)', () => {
    const { connect, send } = setup();
    const alice = connect('alice@localhost');
    expect(send(alice, "<iq to='localhost' type='set' id='t3'><time xmlns='urn:xmpp:time'/></iq>")).toContain('<service-unavailable');
    expect(send(alice, "<iq to='localhost' type='get' id='t4'><clock xmlns='urn:xmpp:time'/></iq>")).toContain('<bad-request');
  });
});

describe('XEP-0012 Last Activity', () => {
  it("answers a query to the server with the seconds since it started (XEP-0012 Server and Component Query)", () => {
    const { connect, send, clock } = setup();
    const alice = connect('alice@localhost');
    clock.t += 3_725_400;
    expect(send(alice, lastTo('localhost'))).toBe(
      "<iq type='result' id='l' from='localhost' to='alice@localhost/r'><query xmlns='jabber:iq:last' seconds='3725'/></iq>",
    );
  });

  it('forbids the query to a user who does not share presence with the requester (XEP-0012 Offline User Query)', () => {
    const { connect, send, contact } = setup();
    const alice = connect('alice@localhost');
    connect('bob@localhost');
    expect(send(alice, lastTo('bob@localhost'))).toContain("<error type='auth'><forbidden");
    // 'to' (bob subscribes to alice, not the other way round) is not enough either.
    contact('bob@localhost', 'alice@localhost', 'to');
    expect(send(alice, lastTo('bob@localhost'))).toContain("<error type='auth'><forbidden");
    // A pending inbound request is not an approval.
    contact('bob@localhost', 'alice@localhost', 'none');
    expect(send(alice, lastTo('bob@localhost'))).toContain('<forbidden');
  });

  it('answers 0 seconds while the contact has an available resource, without asking it', () => {
    const { connect, send, contact } = setup();
    contact('bob@localhost', 'alice@localhost', 'from');
    const alice = connect('alice@localhost');
    const bob = connect('bob@localhost');
    send(bob, '<presence/>');
    bob.out.length = 0;
    expect(send(alice, lastTo('bob@localhost'))).toBe(
      "<iq type='result' id='l' from='bob@localhost' to='alice@localhost/r'><query xmlns='jabber:iq:last' seconds='0'/></iq>",
    );
    expect(bob.out).toEqual([]);
  });

  it('gives the seconds since the last unavailable presence and its status text (XEP-0012 Offline User Query)', () => {
    const { connect, send, clock, router, alice } = aliceSeesBob();
    const bob = connect('bob@localhost');
    send(bob, '<presence/>');
    send(bob, "<presence type='unavailable'><status xml:lang='de'>Weg</status><status>Gone &amp; back on Monday</status></presence>");
    clock.t += 90_000;
    router.unbind(bob); // the stream ends after the unavailable: the status stays
    clock.t += 30_500;
    expect(send(alice, lastTo('bob@localhost'))).toBe(
      "<iq type='result' id='l' from='bob@localhost' to='alice@localhost/r'><query xmlns='jabber:iq:last' seconds='120'>Gone &amp; back on Monday</query></iq>",
    );
  });

  it('records a logout without unavailable presence when the last session ends, without status', () => {
    const { connect, send, clock, router, alice } = aliceSeesBob();
    const phone = connect('bob@localhost', 'phone');
    const desk = connect('bob@localhost', 'desk');
    send(phone, "<presence><status>here</status></presence>");
    send(desk, '<presence/>');
    clock.t += 10_000;
    router.unbind(phone);
    // One resource is still available: active now.
    expect(send(alice, lastTo('bob@localhost'))).toContain("seconds='0'");
    clock.t += 5_000;
    router.unbind(desk);
    clock.t += 7_000;
    expect(send(alice, lastTo('bob@localhost'))).toBe(
      "<iq type='result' id='l' from='bob@localhost' to='alice@localhost/r'><query xmlns='jabber:iq:last' seconds='7'/></iq>",
    );
  });

  it('records a new logout after the account came back (unavailable, available, stream closed)', () => {
    const { connect, send, clock, router, alice } = aliceSeesBob();
    const bob = connect('bob@localhost');
    send(bob, "<presence type='unavailable'><status>brb</status></presence>");
    clock.t += 60_000;
    send(bob, '<presence/>');
    clock.t += 60_000;
    router.unbind(bob);
    clock.t += 2_000;
    expect(send(alice, lastTo('bob@localhost'))).toContain("<query xmlns='jabber:iq:last' seconds='2'/>");
  });

  it("answers the account's own query (no 'to') even without a subscription to itself", () => {
    const { connect, send, clock, router } = setup();
    const old = connect('alice@localhost', 'old');
    send(old, "<presence type='unavailable'><status>bye</status></presence>");
    router.unbind(old);
    clock.t += 42_000;
    const alice = connect('alice@localhost', 'new');
    expect(send(alice, lastTo(null))).toBe("<iq type='result' id='l' to='alice@localhost/new'><query xmlns='jabber:iq:last' seconds='42'>bye</query></iq>");
  });

  it('answers item-not-found for an account with no recorded logout', () => {
    const { connect, send, contact } = setup();
    contact('carol@localhost', 'alice@localhost', 'both');
    const alice = connect('alice@localhost');
    expect(send(alice, lastTo('carol@localhost'))).toContain('<item-not-found');
  });

  it('routes a query to a full JID to that client: its idle time is its own to tell (XEP-0012 Online User Query)', () => {
    const { connect, send } = setup();
    const alice = connect('alice@localhost');
    const bob = connect('bob@localhost', 'phone');
    send(alice, lastTo('bob@localhost/phone'));
    expect(bob.out).toEqual([`<iq from='alice@localhost/r' to='bob@localhost/phone' type='get' id='l'>${LAST}</iq>`]);
  });

  it('does not record the logout of a session mirrored from another shard (its own shard does)', () => {
    const { connect, storage, router } = setup();
    const mirror = connect('bob@localhost', 'elsewhere', -777);
    router.unbind(mirror);
    expect(storage.xml.get('bob@localhost', LAST_KEY)).toBeNull();
    const local = connect('bob@localhost', 'here');
    router.unbind(local);
    expect(storage.xml.get('bob@localhost', LAST_KEY)).not.toBeNull();
  });

  it('keeps the record across a restart (SQLite) and drops it with the account', () => {
    const dir = mkdtempSync(join(tmpdir(), 'hermod-last-'));
    try {
      const first = setup(openStorage({ dataDir: dir }));
      const bob = first.connect('bob@localhost');
      first.send(bob, "<presence type='unavailable'><status>away for good</status></presence>");
      first.router.unbind(bob);
      first.storage.close();
      const second = setup(openStorage({ dataDir: dir }));
      const rec = decodeLast(second.storage.xml.get('bob@localhost', LAST_KEY)!);
      expect(rec).toEqual({ stamp: new Date('2026-03-01T12:00:00.000Z'), status: 'away for good' });
      second.storage.users.delete('bob@localhost');
      expect(second.storage.xml.get('bob@localhost', LAST_KEY)).toBeNull();
      second.storage.close();
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });

  it('reads back what it stores, and treats an unreadable record as none', () => {
    const rec = { stamp: new Date('2026-01-02T03:04:05.000Z'), status: "<b>'quoted'</b> & more" };
    expect(decodeLast(encodeLast(rec))).toEqual(rec);
    expect(decodeLast('<last/>')).toBeNull();
    expect(decodeLast('not xml')).toBeNull();
    expect(statusOf("<presence type='unavailable'/>")).toBe('');
    expect(statusOf("<presence><status xml:lang='fr'>parti</status></presence>")).toBe('parti');
  });
});

describe('XEP-0157 Contact Addresses', () => {
  const DISCO = "<iq to='localhost' type='get' id='d'><query xmlns='http://jabber.org/protocol/disco#info'/></iq>";

  it("adds the serverinfo form to the server's disco#info after its features (XEP-0157, XEP-0128)", () => {
    const { connect, send } = setup(undefined, {
      contact: { abuse: ['mailto:abuse@example.org'], admin: ['xmpp:admin@localhost', 'mailto:admin@example.org'], support: ['https://example.org/help?a=1&b=2'] },
    });
    const alice = connect('alice@localhost');
    const reply = send(alice, DISCO)!;
    expect(reply).toContain(
      "<feature var='vcard-temp'/><x xmlns='jabber:x:data' type='result'>" +
        "<field var='FORM_TYPE' type='hidden'><value>http://jabber.org/network/serverinfo</value></field>" +
        "<field var='abuse-addresses' type='list-multi'><value>mailto:abuse@example.org</value></field>" +
        "<field var='admin-addresses' type='list-multi'><value>xmpp:admin@localhost</value><value>mailto:admin@example.org</value></field>" +
        "<field var='support-addresses' type='list-multi'><value>https://example.org/help?a=1&amp;b=2</value></field></x></query>",
    );
  });

  it('publishes no form when no address is configured', () => {
    expect(contactForm({})).toBeNull();
    expect(contactForm({ abuse: [], admin: [] })).toBeNull();
    const { connect, send } = setup();
    expect(send(connect('alice@localhost'), DISCO)).not.toContain('jabber:x:data');
  });

  it('takes URI lists from the configuration file and refuses an address without a scheme', () => {
    const dir = mkdtempSync(join(tmpdir(), 'hermod-contact-'));
    try {
      const file = join(dir, 'hermod.yml');
      writeFileSync(file, 'contact:\n  abuse: ["mailto:abuse@example.org"]\n  admin: xmpp:admin@example.org\n');
      const { config } = loadConfig({ file });
      expect(config.contact.abuse).toEqual(['mailto:abuse@example.org']);
      expect(config.contact.admin).toEqual(['xmpp:admin@example.org']);
      expect(config.contact.support).toEqual([]);
      writeFileSync(file, 'contact:\n  abuse: [abuse@example.org]\n');
      expect(() => loadConfig({ file })).toThrow(/contact\.abuse[^]*xmpp:abuse@example\.org/);
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });
});

describe("the server's disco#info", () => {
  it('lists exactly the features the installed modules implement (XEP-0030 §3.1)', () => {
    const { connect, send } = setup();
    const reply = send(connect('alice@localhost'), "<iq to='localhost' type='get' id='d'><query xmlns='http://jabber.org/protocol/disco#info'/></iq>")!;
    const vars = [...reply.matchAll(/<feature var='([^']+)'\/>/g)].map((m) => m[1]);
    expect(vars).toEqual([
      'http://jabber.org/protocol/disco#info',
      'http://jabber.org/protocol/disco#items',
      'jabber:iq:last',
      'jabber:iq:private',
      'jabber:iq:register',
      'jabber:iq:version',
      'msgoffline',
      'urn:xmpp:blocking',
      'urn:xmpp:carbons:2',
      'urn:xmpp:ping',
      'urn:xmpp:time',
      'vcard-temp',
    ]);
  });
});

afterEach(() => {
  nextId = 1;
});

describe('XEP-0012 Last Activity, addressing', () => {
  it('answers service-unavailable for an account that does not exist, as for any stanza to it (RFC 6121 §8.5.1)', () => {
    const { connect, send } = setup();
    expect(send(connect('alice@localhost'), lastTo('nobody@localhost'))).toContain('<service-unavailable');
  });

  it('answers a requester the account blocks as if the account were not there, even with a subscription (XEP-0191)', () => {
    const { connect, send, alice } = aliceSeesBob();
    const bob = connect('bob@localhost');
    send(bob, "<iq type='set' id='b1'><block xmlns='urn:xmpp:blocking'><item jid='alice@localhost'/></block></iq>");
    expect(send(alice, lastTo('bob@localhost'))).toContain('<service-unavailable');
  });
});

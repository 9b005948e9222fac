/**
 * XEP-0313 room archives (src/muc/archive.ts) on the room logic: what is archived (XEP-0313
 * 'MUC Archives'), the XEP-0359 stanza-id by the room, queries to the room's JID with paging,
 * access at the time of the query, real JIDs only for those allowed, configuration, disco, and
 * the archive's end with the room; then persistence in SQLite (schema 8) across a restart.
 */
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import { StanzaError } from '../../src/errors.js';
import { Jid } from '../../src/jid.js';
import { purgeArchives } from '../../src/modules/mam.js';
import { RoomArchives } from '../../src/muc/archive.js';
import type { Kind } from '../../src/muc/room.js';
import { MucService, type MucSettings } from '../../src/muc/service.js';
import type { ArchiveStore } from '../../src/storage/archive.js';
import { createMemoryStorage } from '../../src/storage/memory.js';
import { DATABASE_FILE, openSqliteStorage, SCHEMA_VERSION } from '../../src/storage/sqlite.js';
import type { MucStore } from '../../src/storage/types.js';
import { parseElement } from '../../src/xml/element.js';

const SETTINGS: MucSettings = {
  domain: 'muc.example',
  maxRooms: 10,
  maxOccupants: 10,
  historySize: 5,
  maxMessageBytes: 2000,
  archive: true,
  archiveDefault: true,
};
const ROOM = 'r@muc.example';
const MUC_NS = "<x xmlns='http://jabber.org/protocol/muc'/>";

interface Sent {
  to: string;
  xml: string;
  kind: Kind;
}

function harness(archive: ArchiveStore = createMemoryStorage({ iterations: 1 }).mam, store: MucStore | null = null, settings = SETTINGS) {
  const sent: Sent[] = [];
  let now = Date.parse('2026-01-01T00:00:00Z');
  const clock = () => new Date(now);
  const service = new MucService(settings, (to, xml, kind) => sent.push({ to, xml, kind }), clock, store, null, settings.archive ? new RoomArchives(archive, clock) : null);
  const replies: string[] = [];
  const send = (from: string, xml: string) => service.handle(Jid.parse(from), parseElement(xml), (x) => replies.push(x));
  const join = (from: string, nick: string, room = 'r') => send(from, `<presence to='${room}@muc.example/${nick}'>${MUC_NS}</presence>`);
  const configure = (from: string, fields = '', room = 'r') =>
    send(
      from,
      `<iq type='set' id='c' to='${room}@muc.example'><query xmlns='http://jabber.org/protocol/muc#owner'><x xmlns='jabber:x:data' type='submit'>${fields}</x></query></iq>`,
    );
  const say = (from: string, inner: string, id?: string) =>
    send(from, `<message type='groupchat'${id ? ` id='${id}'` : ''} to='${ROOM}'>${inner}</message>`);
  /** A query to the room's archive from `from`; returns the result messages and the <fin/> IQ. */
  const query = (from: string, inner = '', type = 'set') => {
    const before = sent.length;
    const replied = replies.length;
    send(from, `<iq type='${type}' id='q' to='${ROOM}'><query xmlns='urn:xmpp:mam:2' queryid='f'>${inner}</query></iq>`);
    return { results: sent.slice(before).filter((s) => s.kind === 'message'), answer: replies.slice(replied).join('') };
  };
  const field = (name: string, value: string) => `<field var='${name}'><value>${value}</value></field>`;
  const form = (...fields: string[]) => `<x xmlns='jabber:x:data' type='submit'>${field('FORM_TYPE', 'urn:xmpp:mam:2')}${fields.join('')}</x>`;
  const rsm = (inner: string) => `<set xmlns='http://jabber.org/protocol/rsm'>${inner}</set>`;
  return { service, sent, replies, send, join, configure, say, query, field, form, rsm, advance: (ms: number) => (now += ms), clear: () => (sent.length = 0) };
}

function condition(fn: () => void): string {
  try {
    fn();
  } catch (err) {
    if (err instanceof StanzaError) return err.condition;
    throw err;
  }
  return 'none';
}

const bodies = (results: Sent[]) => results.map((s) => /<body>([^<]*)<\/body>/.exec(s.xml)?.[1] ?? null);
const resultIds = (results: Sent[]) => results.map((s) => /<result [^>]*id='([^']+)'/.exec(s.xml)![1]!);

/** alice owns an instant room (semi-anonymous by default); bob is in it. */
function room(h: ReturnType<typeof harness>, fields = '') {
  h.join('alice@x/pc', 'Alice');
  h.configure('alice@x/pc', fields);
  h.join('bob@x/phone', 'Bob');
  h.clear();
}

describe('XEP-0313 room archive: what is stored and the stanza-id by the room', () => {
  it('gives every reflected copy of an archived message the same stanza-id by the room, the one the archive answers to (XEP-0359)', () => {
    const h = harness();
    room(h);
    h.say('bob@x/phone', '<body>hi all</body>', 'm1');
    const copies = h.sent.filter((s) => s.kind === 'message');
    expect(copies.map((s) => s.to).sort()).toEqual(['alice@x/pc', 'bob@x/phone']);
    const ids = copies.map((s) => /<stanza-id xmlns='urn:xmpp:sid:0' by='r@muc.example' id='([^']+)'\/>/.exec(s.xml)![1]);
    expect(new Set(ids).size).toBe(1);
    const { results } = h.query('alice@x/pc');
    expect(resultIds(results)).toEqual([ids[0]]);
    // XEP-0313 'MUC Archives': from the occupant JID, no 'to', type groupchat, id kept.
    expect(results[0]!.xml).toContain(
      "<message xmlns='jabber:client' type='groupchat' id='m1' from='r@muc.example/Bob'><body>hi all</body>",
    );
    expect(results[0]!.to).toBe('alice@x/pc');
    expect(results[0]!.xml.startsWith(`<message from='r@muc.example' to='alice@x/pc'><result xmlns='urn:xmpp:mam:2' queryid='f'`)).toBe(true);
  });

  it('stores subject changes and messages with a body; not chat states, private messages, no-store hints or refused messages', () => {
    const h = harness();
    room(h);
    h.say('alice@x/pc', '<subject>Plans</subject>');
    h.say('bob@x/phone', "<active xmlns='http://jabber.org/protocol/chatstates'/>");
    h.send('bob@x/phone', `<message type='chat' to='${ROOM}/Alice'><body>psst</body></message>`);
    h.say('bob@x/phone', "<body>off the record</body><no-permanent-store xmlns='urn:xmpp:hints'/>");
    // A participant may not change the subject here: refused, so not archived either.
    expect(condition(() => h.say('bob@x/phone', '<subject>mine</subject>'))).toBe('forbidden');
    h.say('bob@x/phone', '<body>kept</body>');
    const { results } = h.query('alice@x/pc');
    expect(results.map((r) => /<(subject|body)>([^<]*)</.exec(r.xml)![2])).toEqual(['Plans', 'kept']);
    // The private message and the hinted one went out without a stanza-id by the room.
    const unarchived = h.sent.filter((s) => /psst|off the record/.test(s.xml));
    expect(unarchived.length).toBeGreaterThan(0);
    expect(unarchived.some((s) => s.xml.includes('urn:xmpp:sid:0'))).toBe(false);
  });

  it("strips a stanza-id claiming to be the room's and the sender's own muc#user <x/> (XEP-0359 §5, XEP-0313 'MUC message spoofing')", () => {
    const h = harness();
    room(h);
    h.say(
      'bob@x/phone',
      "<body>sneaky</body><stanza-id xmlns='urn:xmpp:sid:0' by='R@muc.example' id='fake'/><stanza-id xmlns='urn:xmpp:sid:0' by='bob@x' id='own'/>" +
        "<x xmlns='http://jabber.org/protocol/muc#user'><item jid='ceo@x'/></x>",
    );
    const live = h.sent.find((s) => s.to === 'alice@x/pc')!.xml;
    expect(live).not.toContain("id='fake'");
    expect(live).toContain("by='bob@x' id='own'");
    expect(live.match(/by='r@muc.example'/g)).toHaveLength(1);
    const archived = h.query('alice@x/pc').results[0]!.xml;
    expect(archived).not.toContain('ceo@x');
    expect(archived).not.toContain("id='fake'");
  });

  it("strips the sender's muc#user <x/> and honours its XEP-0334 hints written with a prefix too (the recipients' parsers read them by expanded name)", () => {
    const h = harness();
    room(h);
    h.say('bob@x/phone', "<body>sneaky</body><u:x xmlns:u='http://jabber.org/protocol/muc#user'><u:item jid='ceo@x'/></u:x>");
    h.say('bob@x/phone', "<body>off the record</body><h:no-store xmlns:h='urn:xmpp:hints'/>");
    // bob is a participant of a semi-anonymous room: the archive adds no real JID of its own.
    const { results } = h.query('bob@x/phone');
    expect(bodies(results)).toEqual(['sneaky']);
    expect(results[0]!.xml).not.toContain('ceo@x');
    expect(results[0]!.xml).not.toContain('muc#user');
  });

  it('carries the stanza-id into the join history too (clients match it with the archive)', () => {
    const h = harness();
    room(h);
    h.say('bob@x/phone', '<body>before carol</body>');
    const id = /by='r@muc.example' id='([^']+)'/.exec(h.sent[0]!.xml)![1];
    h.clear();
    h.join('carol@x/1', 'Carol');
    const history = h.sent.find((s) => s.to === 'carol@x/1' && s.xml.includes('<delay'))!;
    expect(history.xml).toContain(`by='r@muc.example' id='${id}'`);
  });

  it('archives nothing, adds no stanza-id and advertises no archive when the room turns archiving off', () => {
    const h = harness();
    room(h, "<field var='muc#roomconfig_enablearchiving'><value>0</value></field>");
    h.say('bob@x/phone', '<body>ephemeral</body>');
    expect(h.sent.some((s) => s.xml.includes('urn:xmpp:sid:0'))).toBe(false);
    expect(condition(() => h.query('alice@x/pc'))).toBe('service-unavailable');
    h.send('bob@x/phone', `<iq type='get' id='d' to='${ROOM}'><query xmlns='http://jabber.org/protocol/disco#info'/></iq>`);
    expect(h.replies.at(-1)).not.toContain('urn:xmpp:mam:2');
    // Turned on again: archived from then on, and advertised.
    h.configure('alice@x/pc', "<field var='muc#roomconfig_enablearchiving'><value>1</value></field>");
    h.say('bob@x/phone', '<body>kept</body>');
    expect(bodies(h.query('alice@x/pc').results)).toEqual(['kept']);
    h.send('bob@x/phone', `<iq type='get' id='d' to='${ROOM}'><query xmlns='http://jabber.org/protocol/disco#info'/></iq>`);
    const info = h.replies.at(-1)!;
    for (const f of ['urn:xmpp:mam:2', 'urn:xmpp:mam:2#extended', 'urn:xmpp:sid:0']) expect(info).toContain(`<feature var='${f}'/>`);
  });

  it('offers the configuration field only when the service archives, with the server default as its value', () => {
    const on = harness();
    on.join('alice@x/pc', 'Alice');
    on.send('alice@x/pc', `<iq type='get' id='g' to='${ROOM}'><query xmlns='http://jabber.org/protocol/muc#owner'/></iq>`);
    expect(on.replies.at(-1)).toMatch(/<field var='muc#roomconfig_enablearchiving' type='boolean'[^>]*><value>1<\/value>/);
    const offByDefault = harness(undefined, null, { ...SETTINGS, archiveDefault: false });
    offByDefault.join('alice@x/pc', 'Alice');
    offByDefault.send('alice@x/pc', `<iq type='get' id='g' to='${ROOM}'><query xmlns='http://jabber.org/protocol/muc#owner'/></iq>`);
    expect(offByDefault.replies.at(-1)).toMatch(/<field var='muc#roomconfig_enablearchiving' type='boolean'[^>]*><value>0<\/value>/);
    const none = harness(undefined, null, { ...SETTINGS, archive: false });
    none.join('alice@x/pc', 'Alice');
    none.send('alice@x/pc', `<iq type='get' id='g' to='${ROOM}'><query xmlns='http://jabber.org/protocol/muc#owner'/></iq>`);
    expect(none.replies.at(-1)).not.toContain('enablearchiving');
    none.configure('alice@x/pc');
    none.join('bob@x/phone', 'Bob');
    none.say('bob@x/phone', '<body>x</body>');
    expect(none.sent.some((s) => s.xml.includes('urn:xmpp:sid:0'))).toBe(false);
    expect(condition(() => none.query('bob@x/phone'))).toBe('service-unavailable');
  });
});

describe('XEP-0313 room archive: queries', () => {
  function talk(h: ReturnType<typeof harness>, n: number) {
    for (let i = 0; i < n; i++) {
      h.say(i % 2 === 0 ? 'alice@x/pc' : 'bob@x/phone', `<body>m${i}</body>`);
      h.advance(1000);
    }
  }

  it('pages forwards and backwards with RSM, counts, flips a page and reports completion (XEP-0059, #extended)', () => {
    const h = harness();
    room(h);
    talk(h, 7);
    // Someone who never entered the open room may read it (XEP-0313 'MUC Archives').
    const first = h.query('dave@x/1', h.rsm('<max>3</max>'));
    expect(bodies(first.results)).toEqual(['m0', 'm1', 'm2']);
    expect(first.answer).toMatch(/<fin xmlns='urn:xmpp:mam:2'><set xmlns='http:\/\/jabber.org\/protocol\/rsm'><first>\w+<\/first><last>\w+<\/last><count>7<\/count><\/set><\/fin>/);
    const last = resultIds(first.results)[2]!;
    const next = h.query('dave@x/1', h.rsm(`<max>3</max><after>${last}</after>`));
    expect(bodies(next.results)).toEqual(['m3', 'm4', 'm5']);
    const end = h.query('dave@x/1', h.rsm(`<max>3</max><after>${resultIds(next.results)[2]}</after>`));
    expect(bodies(end.results)).toEqual(['m6']);
    expect(end.answer).toContain("complete='true'");
    const newest = h.query('dave@x/1', h.rsm('<max>2</max><before/>'));
    expect(bodies(newest.results)).toEqual(['m5', 'm6']);
    const flipped = h.query('dave@x/1', `${h.rsm('<max>2</max><before/>')}<flip-page/>`);
    expect(bodies(flipped.results)).toEqual(['m6', 'm5']);
    expect(condition(() => h.query('dave@x/1', h.rsm('<after>nosuchid</after>')))).toBe('item-not-found');
  });

  it('filters by start/end, by occupant JID, and by the #extended after-id and ids fields', () => {
    const h = harness();
    room(h);
    talk(h, 6); // m0 at 00:00:00, m1 at 00:00:01, …
    const window = h.query('dave@x/1', h.form(h.field('start', '2026-01-01T00:00:02Z'), h.field('end', '2026-01-01T00:00:03Z')));
    expect(bodies(window.results)).toEqual(['m2', 'm3']);
    const bob = h.query('dave@x/1', h.form(h.field('with', `${ROOM}/Bob`)));
    expect(bodies(bob.results)).toEqual(['m1', 'm3', 'm5']);
    const all = h.query('dave@x/1', h.form(h.field('with', ROOM)));
    expect(all.results).toHaveLength(6);
    const ids = resultIds(all.results);
    expect(bodies(h.query('dave@x/1', h.form(h.field('after-id', ids[3]!))).results)).toEqual(['m4', 'm5']);
    expect(bodies(h.query('dave@x/1', h.form(h.field('ids', ids[1]!))).results)).toEqual(['m1']);
    expect(condition(() => h.query('dave@x/1', h.form(h.field('start', 'yesterday'))))).toBe('bad-request');
    expect(condition(() => h.query('dave@x/1', h.form(h.field('include-groupchat', 'true'))))).toBe('feature-not-implemented');
  });

  it('answers the form, archive metadata, and refuses preferences and unknown payloads', () => {
    const h = harness();
    room(h);
    talk(h, 2);
    h.query('dave@x/1', '', 'get');
    expect(h.replies.at(-1)).toContain("<x xmlns='jabber:x:data' type='form'>");
    expect(h.replies.at(-1)).toContain("var='with'");
    h.send('dave@x/1', `<iq type='get' id='md' to='${ROOM}'><metadata xmlns='urn:xmpp:mam:2'/></iq>`);
    expect(h.replies.at(-1)).toMatch(/<metadata xmlns='urn:xmpp:mam:2'><start id='\w+' timestamp='2026-01-01T00:00:00.000Z'\/><end id='\w+' timestamp='2026-01-01T00:00:01.000Z'\/><\/metadata>/);
    expect(condition(() => h.send('alice@x/pc', `<iq type='set' id='p' to='${ROOM}'><prefs xmlns='urn:xmpp:mam:2' default='never'/></iq>`))).toBe('feature-not-implemented');
    expect(condition(() => h.send('alice@x/pc', `<iq type='set' id='p' to='${ROOM}'><query xmlns='urn:xmpp:mam:2' node='x'/></iq>`))).toBe('item-not-found');
  });

  it('shows real JIDs to moderators of a semi-anonymous room only, and to everyone in a non-anonymous one', () => {
    const h = harness();
    room(h);
    h.say('bob@x/phone', '<body>who am I</body>');
    const real = "<x xmlns='http://jabber.org/protocol/muc#user'><item jid='bob@x/phone'/></x>";
    // alice owns the room (a moderator): she sees bob's session; bob, a participant, does not
    // see his own either; an outsider does not.
    expect(h.query('alice@x/pc').results[0]!.xml).toContain(real);
    expect(h.query('bob@x/phone').results[0]!.xml).not.toContain('bob@x/phone</');
    expect(h.query('bob@x/phone').results[0]!.xml).not.toContain("item jid=");
    expect(h.query('dave@x/1').results[0]!.xml).not.toContain('item jid=');
    // Searching by a real JID is for those who may see them (XEP-0313 'Filtering by JID').
    expect(condition(() => h.query('dave@x/1', h.form(h.field('with', 'bob@x'))))).toBe('forbidden');
    expect(h.query('alice@x/pc', h.form(h.field('with', 'bob@x'))).results).toHaveLength(1);
    expect(h.query('alice@x/pc', h.form(h.field('with', 'bob@x/laptop'))).results).toHaveLength(0);
    expect(h.query('alice@x/pc', h.form(h.field('with', 'bo@x'))).results).toHaveLength(0);
    h.configure('alice@x/pc', "<field var='muc#roomconfig_whois'><value>anyone</value></field>");
    expect(h.query('dave@x/1').results[0]!.xml).toContain(real);
    expect(h.query('dave@x/1', h.form(h.field('with', 'bob@x/phone'))).results).toHaveLength(1);
  });
});

describe('XEP-0313 room archive: access at the time of the query', () => {
  it('refuses outcasts of an open room with forbidden', () => {
    const h = harness();
    room(h);
    h.say('bob@x/phone', '<body>x</body>');
    h.send('alice@x/pc', `<iq type='set' id='b' to='${ROOM}'><query xmlns='http://jabber.org/protocol/muc#admin'><item affiliation='outcast' jid='eve@x'/></query></iq>`);
    expect(condition(() => h.query('eve@x/1'))).toBe('forbidden');
    expect(h.query('dave@x/1').results).toHaveLength(1);
  });

  it('opens a members-only room archive to members, admins and owners only; a membership taken away closes it', () => {
    const h = harness();
    room(h);
    h.send('alice@x/pc', `<iq type='set' id='m' to='${ROOM}'><query xmlns='http://jabber.org/protocol/muc#admin'><item affiliation='member' jid='carol@x'/></query></iq>`);
    h.configure('alice@x/pc', "<field var='muc#roomconfig_membersonly'><value>1</value></field>");
    h.say('alice@x/pc', '<body>members only</body>');
    expect(h.query('carol@x/1').results).toHaveLength(1);
    expect(h.query('alice@x/pc').results).toHaveLength(1);
    // bob (no affiliation) was put out when the room became members-only, and may not read it.
    expect(condition(() => h.query('bob@x/phone'))).toBe('forbidden');
    expect(condition(() => h.query('dave@x/1'))).toBe('forbidden');
    expect(condition(() => h.send('dave@x/1', `<iq type='get' id='md' to='${ROOM}'><metadata xmlns='urn:xmpp:mam:2'/></iq>`))).toBe('forbidden');
    h.send('alice@x/pc', `<iq type='set' id='m' to='${ROOM}'><query xmlns='http://jabber.org/protocol/muc#admin'><item affiliation='none' jid='carol@x'/></query></iq>`);
    expect(condition(() => h.query('carol@x/1'))).toBe('forbidden');
  });

  it("opens a password-protected room's archive to those in it (they gave the password) and to members", () => {
    const h = harness();
    room(
      h,
      "<field var='muc#roomconfig_passwordprotectedroom'><value>1</value></field><field var='muc#roomconfig_roomsecret'><value>pw</value></field>",
    );
    h.say('alice@x/pc', '<body>secret</body>');
    // bob's join without the password was refused: he is not in the room.
    expect(condition(() => h.query('bob@x/phone'))).toBe('forbidden');
    h.send('dave@x/1', `<presence to='${ROOM}/Dave'><x xmlns='http://jabber.org/protocol/muc'><password>pw</password></x></presence>`);
    expect(h.query('dave@x/1').results).toHaveLength(1);
    h.send('alice@x/pc', `<iq type='set' id='m' to='${ROOM}'><query xmlns='http://jabber.org/protocol/muc#admin'><item affiliation='member' jid='bob@x'/></query></iq>`);
    expect(h.query('bob@x/phone').results).toHaveLength(1);
  });

  it('answers item-not-found about a room still locked for its owner, as for a room that does not exist', () => {
    const h = harness();
    h.join('alice@x/pc', 'Alice');
    expect(condition(() => h.query('dave@x/1'))).toBe('item-not-found');
    expect(h.query('alice@x/pc').results).toHaveLength(0);
    expect(condition(() => h.send('dave@x/1', `<iq type='set' id='q' to='nosuch@muc.example'><query xmlns='urn:xmpp:mam:2'/></iq>`))).toBe('item-not-found');
  });
});

describe('XEP-0313 room archive: the end of a room', () => {
  it('deletes the archive when the owner destroys the room (XEP-0045 §10.9); a new room of that name starts empty', () => {
    const archive = createMemoryStorage({ iterations: 1 }).mam;
    const h = harness(archive);
    room(h);
    h.say('bob@x/phone', '<body>gone soon</body>');
    expect(archive.query(ROOM, { max: 10 }).count).toBe(1);
    h.send('alice@x/pc', `<iq type='set' id='d' to='${ROOM}'><query xmlns='http://jabber.org/protocol/muc#owner'><destroy/></query></iq>`);
    expect(archive.query(ROOM, { max: 10 }).count).toBe(0);
  });

  it('deletes the archive of a temporary room that vanishes with its last occupant, and of a name reused after a restart', () => {
    const archive = createMemoryStorage({ iterations: 1 }).mam;
    const h = harness(archive);
    room(h);
    h.say('bob@x/phone', '<body>temporary</body>');
    h.send('bob@x/phone', `<presence type='unavailable' to='${ROOM}/Bob'/>`);
    expect(archive.query(ROOM, { max: 10 }).count).toBe(1);
    h.send('alice@x/pc', `<presence type='unavailable' to='${ROOM}/Alice'/>`);
    expect(h.service.rooms.has(ROOM)).toBe(false);
    expect(archive.query(ROOM, { max: 10 }).count).toBe(0);
    // A temporary room lost to a restart leaves its rows; whoever creates the name next starts clean.
    archive.append({ owner: ROOM, id: '00000000000000000001', stamp: new Date(0), with: `${ROOM}/Old`, stanza: '<message/>' });
    const again = harness(archive);
    again.join('mallory@x/1', 'M');
    expect(archive.query(ROOM, { max: 10 }).count).toBe(0);
  });
});

describe('XEP-0313 room archive: rooms that did not survive a restart', () => {
  const row = (owner: string, n: number) => ({ owner, id: `0000000000000000000${n}`, stamp: new Date(n), with: `${owner}/x`, stanza: '<message/>' });

  it('sweeps the archives of rooms of the service that do not exist, in slices, sparing existing rooms, other domains and accounts', async () => {
    const archive = createMemoryStorage({ iterations: 1 }).mam;
    const owners = ['alice@x', 'gone@muc.example', 'kept@muc.example', 'room@other.example', 'zed@muc.example'];
    owners.forEach((o, i) => archive.append(row(o, i)));
    // Enough vanished rooms that the walk takes several slices.
    for (let i = 0; i < 1200; i++) archive.append(row(`t${i}@muc.example`, 9));
    const removed = await new Promise<number>((done) =>
      new RoomArchives(archive, () => new Date()).sweep('muc.example', (room) => room === 'kept@muc.example', done),
    );
    expect(removed).toBe(1202);
    const left: string[] = [];
    for (let o = archive.nextOwner!(''); o !== null; o = archive.nextOwner!(o)) left.push(o);
    expect(left).toEqual(['alice@x', 'kept@muc.example', 'room@other.example']);
  });

  it('runs when the service starts over a store: a persistent room keeps its archive, a temporary one loses it', async () => {
    const storage = createMemoryStorage({ iterations: 1 });
    storage.muc!.save('kept@muc.example', JSON.stringify({ config: { persistent: true }, affiliations: [], subject: null }));
    storage.mam.append(row('kept@muc.example', 1));
    storage.mam.append(row('gone@muc.example', 2));
    harness(storage.mam, storage.muc!);
    for (let i = 0; i < 100 && storage.mam.query('gone@muc.example', { max: 0 }).count !== 0; i++) await new Promise((r) => setTimeout(r, 1));
    expect(storage.mam.query('gone@muc.example', { max: 0 }).count).toBe(0);
    expect(storage.mam.query('kept@muc.example', { max: 0 }).count).toBe(1);
  });

  it('keeps the archive of a stored room it could not read at start: unreadable is not vanished (the operator may repair it)', async () => {
    const storage = createMemoryStorage({ iterations: 1 });
    storage.muc!.save('broken@muc.example', '{"config": {"persistent": true}, "affil');
    storage.mam.append(row('broken@muc.example', 1));
    storage.mam.append(row('gone@muc.example', 2));
    harness(storage.mam, storage.muc!);
    // The walk is in owner order: once 'gone' is removed, 'broken' has been looked at.
    for (let i = 0; i < 100 && storage.mam.query('gone@muc.example', { max: 0 }).count !== 0; i++) await new Promise((r) => setTimeout(r, 1));
    expect(storage.mam.query('gone@muc.example', { max: 0 }).count).toBe(0);
    expect(storage.mam.query('broken@muc.example', { max: 0 }).count).toBe(1);
  });
});

describe('XEP-0313 room archive retention', () => {
  it("applies the user archives' retention to room archives: max_per_user keeps each room's newest, max_age drops old ones", () => {
    const storage = createMemoryStorage({ iterations: 1 });
    const h = harness(storage.mam);
    room(h);
    for (let i = 0; i < 5; i++) {
      h.say('bob@x/phone', `<body>m${i}</body>`);
      h.advance(60_000);
    }
    expect(purgeArchives(storage, { maxAge: 0, maxPerUser: 3 }, new Date())).toBe(2);
    expect(bodies(h.query('alice@x/pc').results)).toEqual(['m2', 'm3', 'm4']);
    // m2 was posted at 00:02, m3 at 00:03, m4 at 00:04: a day's age at 00:03:30 the next day keeps m4 only.
    expect(purgeArchives(storage, { maxAge: 86_400_000, maxPerUser: 0 }, new Date(Date.parse('2026-01-02T00:03:30Z')))).toBe(2);
    expect(bodies(h.query('alice@x/pc').results)).toEqual(['m4']);
  });
});

describe('XEP-0313 room archive in SQLite (schema 8)', () => {
  const dirs: string[] = [];
  afterEach(() => {
    while (dirs.length) rmSync(dirs.pop()!, { recursive: true, force: true });
  });
  const tempDir = () => {
    const d = mkdtempSync(join(tmpdir(), 'hermod-mucmam-'));
    dirs.push(d);
    return d;
  };

  it('keeps a persistent room archive, with real JIDs and ids, across a restart; destroying the room then removes it', () => {
    const dataDir = tempDir();
    const first = openSqliteStorage({ dataDir, iterations: 1 });
    const h = harness(first.mam, first.muc!);
    room(h, "<field var='muc#roomconfig_persistentroom'><value>1</value></field>");
    h.say('bob@x/phone', '<body>survives</body>', 'm1');
    h.say('alice@x/pc', '<subject>Topic &amp; more</subject>');
    const live = /by='r@muc.example' id='([^']+)'/.exec(h.sent.find((s) => s.xml.includes('survives'))!.xml)![1];
    first.close(); // the writer thread's batch is written before the connection closes

    const second = openSqliteStorage({ dataDir, iterations: 1 });
    try {
      const after = harness(second.mam, second.muc!);
      expect(after.service.rooms.get(ROOM)?.config.archive).toBe(true);
      const { results, answer } = after.query('alice@x/pc');
      expect(resultIds(results)[0]).toBe(live);
      expect(results[0]!.xml).toContain("from='r@muc.example/Bob'><body>survives</body><x xmlns='http://jabber.org/protocol/muc#user'><item jid='bob@x/phone'/></x></message>");
      expect(results[1]!.xml).toContain('<subject>Topic &amp; more</subject>');
      expect(answer).toContain('<count>2</count>');
      after.join('alice@x/pc', 'Alice');
      after.send('alice@x/pc', `<iq type='set' id='d' to='${ROOM}'><query xmlns='http://jabber.org/protocol/muc#owner'><destroy/></query></iq>`);
      expect(second.mam.query(ROOM, { max: 10 }).count).toBe(0);
    } finally {
      second.close();
    }
  });

  it('gives the first joiner after a restart the join history from the archive: newest messages with a body, with their stanza-ids and stamps (XEP-0045 §7.2.14)', () => {
    const dataDir = tempDir();
    const first = openSqliteStorage({ dataDir, iterations: 1 });
    const h = harness(first.mam, first.muc!);
    room(h, "<field var='muc#roomconfig_persistentroom'><value>1</value></field>");
    for (let i = 0; i < 7; i++) {
      h.say('bob@x/phone', `<body>m${i}</body>`, `id${i}`);
      h.advance(1000);
    }
    h.say('alice@x/pc', '<subject>not history</subject>');
    const ids = h.sent.filter((s) => s.to === 'alice@x/pc' && s.xml.includes('<body>')).map((s) => /by='r@muc.example' id='([^']+)'/.exec(s.xml)![1]);
    first.close();
    const second = openSqliteStorage({ dataDir, iterations: 1 });
    try {
      const after = harness(second.mam, second.muc!);
      after.join('carol@x/1', 'Carol');
      const history = after.sent.filter((s) => s.to === 'carol@x/1' && s.xml.includes('<delay'));
      // SETTINGS.historySize is 5.
      expect(bodies(history)).toEqual(['m2', 'm3', 'm4', 'm5', 'm6']);
      expect(history.map((s) => /by='r@muc.example' id='([^']+)'/.exec(s.xml)![1])).toEqual(ids.slice(2));
      expect(history[0]!.xml).toMatch(/^<message type='groupchat' id='id2' from='r@muc.example\/Bob' to='carol@x\/1'><body>m2<\/body><stanza-id [^>]+\/><delay xmlns='urn:xmpp:delay' from='r@muc.example' stamp='2026-01-01T00:00:02.000Z'\/><\/message>$/);
      // The subject comes on its own, as always.
      expect(after.sent.filter((s) => s.to === 'carol@x/1' && s.xml.includes('<subject>')).map((s) => /<subject>([^<]*)</.exec(s.xml)![1])).toEqual(['not history']);
    } finally {
      second.close();
    }
  });

  it("deletes at the next start the archive of a temporary room the restart ended (its occupants never left)", async () => {
    const dataDir = tempDir();
    const first = openSqliteStorage({ dataDir, iterations: 1 });
    const h = harness(first.mam, first.muc!);
    room(h); // temporary (the default)
    h.say('bob@x/phone', '<body>lost with the restart</body>');
    first.close();
    const second = openSqliteStorage({ dataDir, iterations: 1 });
    try {
      expect(second.mam.query(ROOM, { max: 0 }).count).toBe(1);
      harness(second.mam, second.muc!);
      for (let i = 0; i < 100 && second.mam.query(ROOM, { max: 0 }).count !== 0; i++) await new Promise((r) => setTimeout(r, 1));
      expect(second.mam.query(ROOM, { max: 0 }).count).toBe(0);
    } finally {
      second.close();
    }
  });

  it("filters a room archive by real JID through its own index: a bare JID matches its resources, not JIDs that merely start with it", () => {
    const s = openSqliteStorage({ dataDir: tempDir(), iterations: 1, archiveThread: false });
    try {
      const reals = ['bo@x/a', 'bo@x.org/b', 'bo@x', 'bo@x-y/c', 'bob@x/d', 'bo@x/e'];
      reals.forEach((real, i) => s.mam.append({ owner: ROOM, id: `0000000000000000000${i}`, stamp: new Date(i), with: `${ROOM}/n${i}`, stanza: '<message/>', real }));
      const senders = (q: object) => s.mam.query(ROOM, { max: 10, room: true, ...q }).items.map((m) => m.real);
      expect(senders({ real: 'bo@x' })).toEqual(['bo@x/a', 'bo@x', 'bo@x/e']);
      expect(senders({ real: 'bo@x/e' })).toEqual(['bo@x/e']);
      expect(senders({ real: 'bo@x', before: '', max: 1 })).toEqual(['bo@x/e']);
      expect(senders({ with: `${ROOM}/n4` })).toEqual(['bob@x/d']);
      expect(s.mam.query(ROOM, { max: 0, room: true, real: 'bo@x' }).count).toBe(3);
    } finally {
      s.close();
    }
  });

  it('ends the sweep of vanished rooms, reporting why, when the store closes under it (the server stopping)', async () => {
    const s = openSqliteStorage({ dataDir: tempDir(), iterations: 1, archiveThread: false });
    s.mam.append({ owner: ROOM, id: '00000000000000000001', stamp: new Date(1), with: `${ROOM}/a`, stanza: '<message/>', real: 'a@x/r' });
    const ended = new Promise<[number, string | undefined]>((done) =>
      new RoomArchives(s.mam, () => new Date()).sweep('muc.example', () => false, (n, err) => done([n, err?.message])),
    );
    s.close(); // before the sweep's first timer
    const [removed, why] = await ended;
    expect(removed).toBe(0);
    // The service logs nothing for this (src/muc/service.ts matches the same words).
    expect(why).toMatch(/closed|not open/);
  });

  it('upgrades a schema 7 file: the archive gains real_jid, user archives are kept', async () => {
    const { default: Database } = await import('better-sqlite3');
    const dataDir = tempDir();
    const old = openSqliteStorage({ dataDir, iterations: 1, archiveThread: false });
    old.mam.append({ owner: 'alice@x', id: '00000000000000000001', stamp: new Date(1), with: 'bob@x/r', stanza: '<message/>' });
    old.close();
    // Make the file look as schema 7 left it: no real_jid column, user_version 7.
    const db = new Database(join(dataDir, DATABASE_FILE));
    db.exec('DROP INDEX mam_room_by_sender; DROP INDEX mam_room_by_real; ALTER TABLE mam DROP COLUMN real_jid');
    db.pragma('user_version = 7');
    db.close();
    const up = openSqliteStorage({ dataDir, iterations: 1, archiveThread: false });
    try {
      expect(up.mam.query('alice@x', { max: 10 }).items.map((m) => [m.id, m.with, m.real])).toEqual([['00000000000000000001', 'bob@x/r', undefined]]);
      up.mam.append({ owner: ROOM, id: '00000000000000000002', stamp: new Date(2), with: `${ROOM}/Bob`, stanza: '<message/>', real: 'bob@x/phone' });
      expect(up.mam.query(ROOM, { max: 10, real: 'bob@x' }).items.map((m) => m.real)).toEqual(['bob@x/phone']);
    } finally {
      up.close();
    }
    const check = new Database(join(dataDir, DATABASE_FILE), { readonly: true });
    expect(check.pragma('user_version', { simple: true })).toBe(SCHEMA_VERSION);
    expect(SCHEMA_VERSION).toBe(8);
    check.close();
  });
});

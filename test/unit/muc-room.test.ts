import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import { defaultConfig as defaultHermodConfig } from '../../src/config/schema.js';
import { ConfigFileError, loadConfig } from '../../src/config/file.js';
import { ConfigError, StanzaError } from '../../src/errors.js';
import { Jid } from '../../src/jid.js';
import { MucService, mucSettingsOf, type MucSettings } from '../../src/muc/service.js';
import { Room, type Kind, type Limits } from '../../src/muc/room.js';
import { createMemoryStorage } from '../../src/storage/memory.js';
import { openSqliteStorage, SCHEMA_VERSION } from '../../src/storage/sqlite.js';
import type { MucStore } from '../../src/storage/types.js';
import { RoomArchives } from '../../src/muc/archive.js';
import { parseElement } from '../../src/xml/element.js';
import { parseExact } from '../../src/xml/exact.js';

const LIMITS: Limits = { maxOccupants: 3, historySize: 5, maxMessageBytes: 200 };
const SETTINGS: MucSettings = { ...LIMITS, domain: 'muc.example', maxRooms: 2 };

interface Sent {
  to: string;
  xml: string;
  kind: Kind;
}

function harness(store: MucStore | null = null, start = Date.parse('2026-01-01T00:00:00Z'), archives?: RoomArchives) {
  const sent: Sent[] = [];
  let now = start;
  const settings = archives ? { ...SETTINGS, archive: true, archiveDefault: true } : SETTINGS;
  const service = new MucService(settings, (to, xml, kind) => sent.push({ to, xml, kind }), () => new Date(now), store, null, archives ?? null);
  const replies: string[] = [];
  // As the server parses what reaches the service (src/muc/service.ts, main.ts).
  const send = (from: string, xml: string) => service.handle(Jid.parse(from), parseExact(xml), (x) => replies.push(x));
  const join = (from: string, room: string, nick: string, x = "<x xmlns='http://jabber.org/protocol/muc'/>") =>
    send(from, `<presence to='${room}@muc.example/${nick}'>${x}</presence>`);
  const instant = (from: string, room: string) =>
    send(
      from,
      `<iq type='set' id='c' to='${room}@muc.example'><query xmlns='http://jabber.org/protocol/muc#owner'><x xmlns='jabber:x:data' type='submit'/></query></iq>`,
    );
  const say = (from: string, room: string, body: string) =>
    send(from, `<message type='groupchat' to='${room}@muc.example'><body>${body}</body></message>`);
  return { service, sent, replies, send, join, instant, say, advance: (ms: number) => (now += ms), clear: () => (sent.length = 0) };
}

function condition(fn: () => void, replies?: string[]): string {
  const before = replies?.length ?? 0;
  try {
    fn();
  } catch (err) {
    if (err instanceof StanzaError) return err.condition;
    throw err;
  }
  // A refused join is answered in place (its error presence carries the MUC <x/>, §7.2).
  const answer = replies?.slice(before).find((x) => x.includes("type='error'"));
  return answer ? /<([a-z-]+) xmlns='urn:ietf:params:xml:ns:xmpp-stanzas'\/>/.exec(answer)![1]! : 'none';
}

const bodies = (sent: Sent[], to: string) =>
  sent.filter((s) => s.to === to && s.kind === 'message').map((s) => /<body>([^<]*)<\/body>/.exec(s.xml)?.[1] ?? null).filter((b) => b !== null);

describe('XEP-0045 room logic', () => {
  it('keeps only the newest historySize messages and replays them with <delay/> (§7.2.14)', () => {
    const h = harness();
    h.join('a@x/1', 'r', 'A');
    h.instant('a@x/1', 'r');
    for (let i = 1; i <= 7; i++) h.say('a@x/1', 'r', `m${i}`);
    expect(h.service.rooms.get('r@muc.example')!.historyLength()).toBe(5);
    h.clear();
    h.join('b@x/1', 'r', 'B');
    const got = h.sent.filter((s) => s.to === 'b@x/1' && s.xml.includes('<delay'));
    expect(got.map((s) => /<body>(\w+)/.exec(s.xml)![1])).toEqual(['m3', 'm4', 'm5', 'm6', 'm7']);
    expect(got[0]!.xml).toContain("stamp='2026-01-01T00:00:00.000Z'");
  });

  it('honours maxstanzas, maxchars, seconds and since on join (§7.2.14)', () => {
    const h = harness();
    h.join('a@x/1', 'r', 'A');
    h.instant('a@x/1', 'r');
    h.say('a@x/1', 'r', 'old');
    h.advance(60_000);
    h.say('a@x/1', 'r', 'new1');
    h.say('a@x/1', 'r', 'new2');
    const joinWith = (who: string, hist: string) => {
      h.clear();
      h.join(`${who}@x/1`, 'r', who, `<x xmlns='http://jabber.org/protocol/muc'>${hist}</x>`);
      return bodies(h.sent, `${who}@x/1`);
    };
    expect(joinWith('b', "<history maxstanzas='2'/>")).toEqual(['new1', 'new2']);
    h.send('b@x/1', "<presence type='unavailable' to='r@muc.example/b'/>");
    expect(joinWith('c', "<history seconds='30'/>")).toEqual(['new1', 'new2']);
    h.send('c@x/1', "<presence type='unavailable' to='r@muc.example/c'/>");
    expect(joinWith('d', "<history since='2026-01-01T00:00:30Z'/>")).toEqual(['new1', 'new2']);
    h.send('d@x/1', "<presence type='unavailable' to='r@muc.example/d'/>");
    // One reflected message is ~90 characters: a budget of 100 takes only the newest.
    expect(joinWith('e', "<history maxchars='100'/>")).toEqual(['new2']);
    h.send('e@x/1', "<presence type='unavailable' to='r@muc.example/e'/>");
    expect(joinWith('f', "<history maxstanzas='0'/>")).toEqual([]);
  });

  it("strips the sender's own muc#user <x/>, under any prefix, from every copy of a groupchat message and from the history (§7.4: the real JID is the room's to give)", () => {
    const h = harness();
    h.join('a@x/1', 'r', 'A');
    h.instant('a@x/1', 'r');
    h.join('b@x/1', 'r', 'B');
    h.clear();
    // b is a participant of a semi-anonymous room forging the item a moderator would see.
    h.send('b@x/1', "<message type='groupchat' to='r@muc.example'><body>plain</body><x xmlns='http://jabber.org/protocol/muc#user'><item jid='ceo@x'/></x></message>");
    h.send('b@x/1', "<message type='groupchat' to='r@muc.example'><u:x xmlns:u='http://jabber.org/protocol/muc#user'><u:item jid='ceo@x'/></u:x><body>prefixed</body></message>");
    h.join('c@x/1', 'r', 'C');
    const copies = h.sent.filter((s) => s.kind === 'message' && s.xml.includes('<body>'));
    // a and b see both live, c both from the history (besides the subject).
    expect(copies.map((s) => s.to).sort()).toEqual(['a@x/1', 'a@x/1', 'b@x/1', 'b@x/1', 'c@x/1', 'c@x/1']);
    for (const s of copies) {
      expect(s.xml).toMatch(/<body>(plain|prefixed)<\/body>/);
      expect(s.xml).not.toContain('ceo@x');
      expect(s.xml).not.toContain('muc#user');
    }
  });

  it("strips a joiner's own muc and muc#user <x/>, under any prefix, from the presence the room broadcasts (§7.2.3: the item is the room's to give)", () => {
    const h = harness();
    h.join('a@x/1', 'r', 'A');
    h.instant('a@x/1', 'r');
    h.clear();
    h.join('b@x/1', 'r', 'B', "<m:x xmlns:m='http://jabber.org/protocol/muc'/><u:x xmlns:u='http://jabber.org/protocol/muc#user'><u:item jid='ceo@x'/></u:x><show>away</show>");
    const toA = h.sent.filter((s) => s.to === 'a@x/1' && s.kind === 'presence');
    expect(toA).toHaveLength(1);
    expect(toA[0]!.xml).toContain('<show>away</show>');
    expect(toA[0]!.xml).not.toContain('ceo@x');
    expect(toA[0]!.xml.match(/muc#user/g)).toHaveLength(1);
  });

  it("strips the sender's own muc#user <x/> from a private message too, keeping only the room's marker (§7.5)", () => {
    const h = harness();
    h.join('a@x/1', 'r', 'A');
    h.instant('a@x/1', 'r');
    h.join('b@x/1', 'r', 'B');
    h.clear();
    h.send('b@x/1', "<message type='chat' id='pm' to='r@muc.example/A'><body>psst</body><u:x xmlns:u='http://jabber.org/protocol/muc#user'><u:item jid='ceo@x'/></u:x></message>");
    expect(h.sent.filter((s) => s.kind === 'message').map((s) => [s.to, s.xml])).toEqual([
      ['a@x/1', "<message type='chat' id='pm' from='r@muc.example/B' to='a@x/1'><body>psst</body><x xmlns='http://jabber.org/protocol/muc#user'/></message>"],
    ]);
  });

  it("keeps the message's xml:lang and its whitespace character references on every copy: live, history, archive, private (RFC 6120 §8.1.5, XML 1.0 §3.3.3, §2.11)", () => {
    const archive = createMemoryStorage().mam;
    const h = harness(null, undefined, new RoomArchives(archive, () => new Date()));
    h.join('a@x/1', 'r', 'A');
    h.instant('a@x/1', 'r');
    h.join('b@x/1', 'r', 'B');
    h.clear();
    // &#9; &#10; &#13; are data; a literal tab or line end in a value is a space (§3.3.3), a
    // literal CR LF in text a LF (§2.11): a recipient must read exactly what the sender's parser did.
    const payload = "<body>a&#13;b\r\nc</body><p xmlns='urn:example:p' v='1&#9;2&#10;3&#13;4' w='5\t6'><![CDATA[<x>&#9;]]></p>";
    h.send('b@x/1', `<message type='groupchat' id='g&#9;1' xml:lang='de' to='r@muc.example'>${payload}</message>`);
    h.send('b@x/1', `<message type='chat' id='p1' xml:lang='fr' to='r@muc.example/A'>${payload}</message>`);
    h.join('c@x/1', 'r', 'C');
    const read = (xml: string) => {
      const m = parseExact(xml);
      const p = m.getChild('p', 'urn:example:p')!;
      return { id: m.attrs.id, lang: m.attrs['xml:lang'], body: m.getChildText('body'), v: p.attrs.v, w: p.attrs.w, cdata: p.getText() };
    };
    const want = { body: 'a\rb\nc', v: '1\t2\n3\r4', w: '5 6', cdata: '<x>&#9;' };
    const copies = h.sent.filter((s) => s.kind === 'message' && s.xml.includes('<body>'));
    expect(copies.map((s) => s.to).sort()).toEqual(['a@x/1', 'a@x/1', 'b@x/1', 'c@x/1']);
    for (const s of copies) {
      expect(read(s.xml)).toEqual(s.xml.includes("type='chat'") ? { id: 'p1', lang: 'fr', ...want } : { id: 'g\t1', lang: 'de', ...want });
    }
    const stored = archive.query('r@muc.example', { max: 10 }).items;
    expect(stored.map((m) => read(m.stanza))).toEqual([{ id: 'g\t1', lang: 'de', ...want }]);
  });

  it('refuses what the bounds forbid: rooms per service, occupants per room, message size', () => {
    const h = harness();
    h.join('a@x/1', 'r1', 'A');
    h.join('a@x/1', 'r2', 'A');
    expect(condition(() => h.join('a@x/1', 'r3', 'A'), h.replies)).toBe('resource-constraint');
    h.instant('a@x/1', 'r1');
    h.join('b@x/1', 'r1', 'B');
    h.join('c@x/1', 'r1', 'C');
    expect(condition(() => h.join('d@x/1', 'r1', 'D'), h.replies)).toBe('service-unavailable');
    expect(condition(() => h.say('b@x/1', 'r1', 'x'.repeat(300)))).toBe('not-acceptable');
    expect(bodies(h.sent, 'a@x/1')).toEqual([]);
  });

  it('bounds the rooms one session may be in (muc.max_rooms_per_session): the next join is refused with resource-constraint, a room left makes room', () => {
    const sent: Sent[] = [];
    const replies: string[] = [];
    const service = new MucService({ ...SETTINGS, maxRooms: 10, maxRoomsPerSession: 2 }, (to, xml, kind) => sent.push({ to, xml, kind }), () => new Date(), null);
    const send = (from: string, xml: string) => service.handle(Jid.parse(from), parseElement(xml), (x) => replies.push(x));
    const join = (from: string, room: string) => send(from, `<presence id='${room}' to='${room}@muc.example/N'><x xmlns='http://jabber.org/protocol/muc'/></presence>`);
    join('a@x/1', 'r1');
    join('a@x/1', 'r2');
    join('a@x/1', 'r3');
    const refusal = parseElement(replies.at(-1)!);
    expect([refusal.attrs.type, refusal.attrs.id]).toEqual(['error', 'r3']);
    expect(refusal.getChild('x', 'http://jabber.org/protocol/muc')).toBeDefined();
    expect(refusal.getChild('error')!.getChild('resource-constraint')).toBeDefined();
    expect(service.rooms.has('r3@muc.example')).toBe(false);
    // Another session of the account has its own allowance; leaving one room frees one.
    join('a@x/2', 'r3');
    expect(service.rooms.has('r3@muc.example')).toBe(true);
    send('a@x/1', `<presence type='unavailable' to='r1@muc.example/N'/>`);
    join('a@x/1', 'r4');
    expect(service.rooms.get('r4@muc.example')?.occupantOf('a@x/1')).toBeDefined();
  });

  it('lets moderators kick participants but never admins or owners (§8.2), and admins not touch owners (§10.6)', () => {
    const h = harness();
    h.join('o@x/1', 'r', 'O');
    h.instant('o@x/1', 'r');
    const room = h.service.rooms.get('r@muc.example')!;
    room.setAffiliation('o@x', 'ad@x', 'admin', null);
    h.join('ad@x/1', 'r', 'Ad');
    h.join('p@x/1', 'r', 'P');
    const admin = room.occupantOf('ad@x/1')!;
    expect(admin.role).toBe('moderator');
    expect(condition(() => room.setRole(admin, 'O', 'none', null))).toBe('not-allowed');
    expect(condition(() => room.setAffiliation('ad@x', 'o@x', 'outcast', null))).toBe('not-allowed');
    expect(condition(() => room.setAffiliation('ad@x', 'p@x', 'admin', null))).toBe('not-allowed');
    expect(condition(() => room.setRole(room.occupantOf('p@x/1')!, 'Ad', 'none', null))).toBe('forbidden');
    room.setRole(admin, 'P', 'none', 'bye');
    expect(room.occupants.has('P')).toBe(false);
    expect(h.sent.some((s) => s.to === 'p@x/1' && s.xml.includes("code='307'"))).toBe(true);
  });

  it('removes a temporary room with its last occupant, and every room of a session that ends', () => {
    const h = harness();
    h.join('a@x/1', 'r1', 'A');
    h.instant('a@x/1', 'r1');
    h.join('b@x/1', 'r1', 'B');
    h.join('b@x/1', 'r2', 'B');
    h.service.gone('b@x/1');
    expect(h.service.rooms.has('r2@muc.example')).toBe(false);
    expect(h.service.rooms.get('r1@muc.example')!.occupants.has('B')).toBe(false);
    expect(h.sent.some((s) => s.to === 'a@x/1' && s.xml.includes("type='unavailable'") && s.xml.includes('r1@muc.example/B'))).toBe(true);
  });

  it('lets two resources of one account share a nick: both get the traffic, one leaving is not seen by the room', () => {
    const h = harness();
    h.join('a@x/desk', 'r', 'A');
    h.instant('a@x/desk', 'r');
    h.join('b@x/1', 'r', 'B');
    h.clear();
    h.join('a@x/phone', 'r', 'A');
    // The phone hears B, then itself with 110, then the subject; nobody else hears anything.
    expect(h.sent.map((s) => s.to)).toEqual(['a@x/phone', 'a@x/phone', 'a@x/phone']);
    expect(h.sent[1]!.xml).toContain("code='110'");
    expect(h.service.rooms.get('r@muc.example')!.occupants.size).toBe(2);
    h.clear();
    h.say('b@x/1', 'r', 'to both');
    expect(h.sent.map((s) => s.to).sort()).toEqual(['a@x/desk', 'a@x/phone', 'b@x/1']);
    h.clear();
    h.send('a@x/phone', "<presence type='unavailable' to='r@muc.example/A'/>");
    expect(h.sent.map((s) => s.to)).toEqual(['a@x/phone']);
    h.clear();
    h.service.gone('a@x/desk');
    // The last session going takes the occupant out: the room hears it (the gone session's own copy is dropped by the router).
    expect(h.sent.map((s) => [s.to, s.xml.includes("type='unavailable'")])).toEqual([
      ['a@x/desk', true],
      ['b@x/1', true],
    ]);
    expect(h.service.rooms.get('r@muc.example')!.occupants.has('A')).toBe(false);
  });

  it('does not keep rooms a session left or destroyed in its index (creating and destroying in a loop stays bounded)', () => {
    const h = harness();
    for (let i = 0; i < 50; i++) {
      h.join('a@x/1', 'r', 'A');
      h.send('a@x/1', "<iq type='set' id='d' to='r@muc.example'><query xmlns='http://jabber.org/protocol/muc#owner'><destroy/></query></iq>");
    }
    h.join('a@x/1', 'kept', 'A');
    expect(h.service.trackedRooms('a@x/1')).toBe(1);
    expect([...h.service.rooms.keys()]).toEqual(['kept@muc.example']);
  });

  it('passes a mediated invitation to the invitee and the decline back to the inviter (§7.8.2)', () => {
    const h = harness();
    h.join('a@x/1', 'r', 'A');
    h.instant('a@x/1', 'r');
    h.clear();
    h.send('a@x/1', "<message to='r@muc.example'><x xmlns='http://jabber.org/protocol/muc#user'><invite to='b@x'><reason>join us</reason></invite></x></message>");
    h.send('b@x/1', "<message to='r@muc.example'><x xmlns='http://jabber.org/protocol/muc#user'><decline to='a@x'><reason>busy</reason></decline></x></message>");
    expect(h.sent.map((s) => [s.to, s.xml])).toEqual([
      ['b@x', "<message from='r@muc.example' to='b@x'><x xmlns='http://jabber.org/protocol/muc#user'><invite from='a@x'><reason>join us</reason></invite></x></message>"],
      ['a@x', "<message from='r@muc.example' to='a@x'><x xmlns='http://jabber.org/protocol/muc#user'><decline from='b@x'><reason>busy</reason></decline></x></message>"],
    ]);
    expect(condition(() => h.send('b@x/1', "<message to='r@muc.example'><body>hi</body></message>"))).toBe('bad-request');
    // A decline for someone not in the room is not passed on: the room relays no text to strangers.
    h.clear();
    h.send('b@x/1', "<message to='r@muc.example'><x xmlns='http://jabber.org/protocol/muc#user'><decline to='z@x'><reason>spam</reason></decline></x></message>");
    expect(h.sent).toEqual([]);
  });

  it("drops a mediated invitation when the invitee blocks the inviter's bare JID, membership grant included (§7.8.2, XEP-0191 §3.5)", () => {
    const sent: Sent[] = [];
    const blocklists: Record<string, string[]> = { 'b@x': ['a@x'], 'd@x': ['x'], 'e@x': ['m@x'] };
    const blocks = (owner: string, bare: string) => (blocklists[owner] ?? []).some((j) => j === bare || j === bare.split('@')[1]);
    const service = new MucService(SETTINGS, (to, xml, kind) => sent.push({ to, xml, kind }), () => new Date(), null, null, null, blocks);
    const send = (from: string, xml: string) => service.handle(Jid.parse(from), parseElement(xml), () => {});
    const invite = (to: string) => `<message to='r@muc.example'><x xmlns='http://jabber.org/protocol/muc#user'><invite to='${to}'/></x></message>`;
    send('a@x/1', "<presence to='r@muc.example/A'><x xmlns='http://jabber.org/protocol/muc'/></presence>");
    send(
      'a@x/1',
      "<iq type='set' id='c' to='r@muc.example'><query xmlns='http://jabber.org/protocol/muc#owner'><x xmlns='jabber:x:data' type='submit'>" +
        "<field var='muc#roomconfig_membersonly'><value>1</value></field></x></query></iq>",
    );
    sent.length = 0;
    // b@x blocks a@x, d@x blocks the whole domain x: neither hears of the invitation nor becomes a member.
    send('a@x/1', invite('b@x/phone'));
    send('a@x/1', invite('d@x'));
    // c@x blocks nobody: invited, and made a member of the members-only room.
    send('a@x/1', invite('c@x'));
    expect(sent.map((s) => s.to)).toEqual(['c@x']);
    expect(sent[0]!.xml).toContain("<invite from='a@x'>");
    const room = service.rooms.get('r@muc.example')!;
    expect(room.affiliation('c@x')).toBe('member');
    expect(room.affiliation('b@x')).toBe('none');
    expect(room.affiliation('d@x')).toBe('none');
    // A member who may not invite is refused the same whether or not the invitee blocks it: the
    // answer does not reveal the block.
    send('a@x/1', "<iq type='set' id='m' to='r@muc.example'><query xmlns='http://jabber.org/protocol/muc#admin'><item jid='m@x' affiliation='member'/></query></iq>");
    send('m@x/1', "<presence to='r@muc.example/M'><x xmlns='http://jabber.org/protocol/muc'/></presence>");
    for (const to of ['e@x', 'c@x']) {
      let refused: string | null = null;
      try {
        send('m@x/1', invite(to));
      } catch (err) {
        refused = (err as StanzaError).condition;
      }
      expect(refused, to).toBe('forbidden');
    }
  });

  it('removes non-members with 322 when the room becomes members-only, and tells the rest 104 (§10.2)', () => {
    const h = harness();
    h.join('a@x/1', 'r', 'A');
    h.instant('a@x/1', 'r');
    h.send('a@x/1', "<iq type='set' id='m' to='r@muc.example'><query xmlns='http://jabber.org/protocol/muc#admin'><item jid='m@x' affiliation='member'/></query></iq>");
    h.join('m@x/1', 'r', 'M');
    h.join('b@x/1', 'r', 'B');
    h.clear();
    h.send(
      'a@x/1',
      "<iq type='set' id='c' to='r@muc.example'><query xmlns='http://jabber.org/protocol/muc#owner'><x xmlns='jabber:x:data' type='submit'><field var='muc#roomconfig_membersonly'><value>1</value></field></x></query></iq>",
    );
    const room = h.service.rooms.get('r@muc.example')!;
    expect([...room.occupants.keys()]).toEqual(['A', 'M']);
    expect(h.sent.some((s) => s.to === 'b@x/1' && s.xml.includes("code='322'") && s.xml.includes("code='110'"))).toBe(true);
    expect(h.sent.filter((s) => s.xml.includes("code='104'")).map((s) => s.to).sort()).toEqual(['a@x/1', 'b@x/1', 'm@x/1']);
  });

  it('shows real JIDs only to moderators in a semi-anonymous room, to everyone in a non-anonymous one (§7.2.3, §7.2.4)', () => {
    const seen: Sent[] = [];
    const r = new Room('r@m', LIMITS, (to, xml, kind) => seen.push({ to, xml, kind }), () => new Date(), () => {});
    r.affiliations.set('o@x', 'owner');
    r.join('o@x/1', 'o@x', 'O', '', {});
    r.join('p@x/1', 'p@x', 'P', '', {});
    const toP = seen.find((s) => s.to === 'p@x/1' && s.xml.includes("from='r@m/O'"))!;
    expect(toP.xml).not.toContain("jid='o@x/1'");
    const toO = seen.find((s) => s.to === 'o@x/1' && s.xml.includes("from='r@m/P'"))!;
    expect(toO.xml).toContain("jid='p@x/1'");
    r.config = { ...r.config, whois: 'anyone' };
    seen.length = 0;
    r.join('q@x/1', 'q@x', 'Q', '', {});
    expect(seen.find((s) => s.to === 'q@x/1' && s.xml.includes("from='r@m/O'"))!.xml).toContain("jid='o@x/1'");
    expect(seen.find((s) => s.to === 'q@x/1' && s.xml.includes("code='110'"))!.xml).toContain("code='100'");
  });

  it('answers a join presence from a session already in the room with the whole entry again: occupants, own 110, history, subject (§7.2.3)', () => {
    const h = harness();
    h.join('a@x/1', 'r', 'A');
    h.instant('a@x/1', 'r');
    h.join('b@x/1', 'r', 'B');
    h.say('a@x/1', 'r', 'before');
    h.send('a@x/1', `<message type='groupchat' to='r@muc.example'><subject>topic</subject></message>`);
    h.clear();
    // b's client lost track of its stay (a reconnect the server did not see as one) and joins again.
    h.join('b@x/1', 'r', 'B', "<x xmlns='http://jabber.org/protocol/muc'/><show>away</show>");
    const toB = h.sent.filter((s) => s.to === 'b@x/1').map((s) => s.xml);
    expect(toB.findIndex((x) => x.includes("from='r@muc.example/A'") && x.startsWith('<presence'))).toBe(0);
    const own = toB.findIndex((x) => x.includes("from='r@muc.example/B'") && x.includes("code='110'"));
    const history = toB.findIndex((x) => x.includes('<body>before</body>') && x.includes('<delay'));
    const subject = toB.findIndex((x) => x.includes('<subject>topic</subject>'));
    expect(own).toBeGreaterThan(0);
    expect(history).toBeGreaterThan(own);
    expect(subject).toBeGreaterThan(history);
    // The others see one presence of b (its new show), no leave, no second join.
    const toA = h.sent.filter((s) => s.to === 'a@x/1').map((s) => s.xml);
    expect(toA).toHaveLength(1);
    expect(toA[0]).toContain('<show>away</show>');
    expect(toA[0]).not.toContain("type='unavailable'");
    // Without the MUC <x/> it stays a plain presence update (§7.7): no replay.
    h.clear();
    h.send('b@x/1', `<presence to='r@muc.example/B'><show>dnd</show></presence>`);
    expect(h.sent.filter((s) => s.to === 'b@x/1' && s.kind === 'message')).toHaveLength(0);
  });

  it("answers a join with the join's id: on the refusal (RFC 6120 §8.3.1) and on the own presence with 110 (§7.2.3)", () => {
    const h = harness();
    h.send('a@x/1', `<presence id='j1' to='r@muc.example/A'><x xmlns='http://jabber.org/protocol/muc'/></presence>`);
    const own = h.sent.find((s) => s.to === 'a@x/1' && s.xml.includes("code='110'"))!;
    expect(parseElement(own.xml).attrs.id).toBe('j1');
    h.instant('a@x/1', 'r');
    h.send('b@x/1', `<presence id='j2' to='r@muc.example/A'><x xmlns='http://jabber.org/protocol/muc'/></presence>`);
    const refusal = parseElement(h.replies.at(-1)!);
    expect(refusal.attrs.type).toBe('error');
    expect(refusal.attrs.id).toBe('j2');
    // The others' copies of a's presence carry no id of a's.
    h.clear();
    h.send('b@x/1', `<presence id='j3' to='r@muc.example/B'><x xmlns='http://jabber.org/protocol/muc'/></presence>`);
    expect(h.sent.find((s) => s.to === 'a@x/1' && s.kind === 'presence')!.xml).not.toContain("id='j3'");
    expect(parseElement(h.sent.find((s) => s.to === 'b@x/1' && s.xml.includes("code='110'"))!.xml).attrs.id).toBe('j3');
  });

  it('bounds what a room keeps and relays by muc.max_message_bytes: presence content on join and update, private messages', () => {
    const h = harness();
    const big = `<status>${'x'.repeat(LIMITS.maxMessageBytes)}</status>`;
    // A join with an oversized presence is refused as a join (error presence with the MUC <x/>); nothing is created.
    h.join('a@x/1', 'r', 'A', `<x xmlns='http://jabber.org/protocol/muc'/>${big}`);
    expect(parseElement(h.replies.at(-1)!).getChild('error')?.getChild('not-acceptable')).toBeDefined();
    expect(h.service.rooms.size).toBe(0);
    h.join('a@x/1', 'r', 'A');
    h.instant('a@x/1', 'r');
    h.join('b@x/1', 'r', 'B');
    h.clear();
    // An occupant's oversized update is refused and its stored presence stays as it was.
    expect(condition(() => h.send('b@x/1', `<presence to='r@muc.example/B'>${big}</presence>`))).toBe('not-acceptable');
    expect(condition(() => h.send('b@x/1', `<presence to='r@muc.example/Bee'>${big}</presence>`))).toBe('not-acceptable');
    expect(h.sent).toHaveLength(0);
    expect(h.service.rooms.get('r@muc.example')!.occupants.get('B')!.presence).toBe('');
    // Private messages have the groupchat bound.
    expect(condition(() => h.send('b@x/1', `<message type='chat' to='r@muc.example/A'><body>${'y'.repeat(LIMITS.maxMessageBytes)}</body></message>`))).toBe('not-acceptable');
    expect(h.sent).toHaveLength(0);
  });

  it('lets occupants and members of a non-anonymous room read the member, admin and owner lists, never the ban list (§9.5, §10.5, §10.8)', () => {
    const h = harness();
    h.join('a@x/1', 'r', 'A');
    h.instant('a@x/1', 'r');
    h.send('a@x/1', `<iq type='set' id='m' to='r@muc.example'><query xmlns='http://jabber.org/protocol/muc#admin'><item jid='c@x' affiliation='member'/></query></iq>`);
    h.join('b@x/1', 'r', 'B');
    const list = (from: string, aff: string) => () =>
      h.send(from, `<iq type='get' id='l' to='r@muc.example'><query xmlns='http://jabber.org/protocol/muc#admin'><item affiliation='${aff}'/></query></iq>`);
    // Semi-anonymous (the default): the lists are the admins'.
    expect(condition(list('b@x/1', 'member'))).toBe('forbidden');
    h.send('a@x/1', `<iq type='set' id='w' to='r@muc.example'><query xmlns='http://jabber.org/protocol/muc#owner'><x xmlns='jabber:x:data' type='submit'><field var='muc#roomconfig_whois'><value>anyone</value></field></x></query></iq>`);
    for (const [who, aff, jid] of [['b@x/1', 'member', 'c@x'], ['b@x/1', 'owner', 'a@x'], ['c@x/9', 'owner', 'a@x']] as const) {
      list(who, aff)();
      expect(h.replies.at(-1)).toContain(`jid='${jid}'`);
    }
    expect(condition(list('b@x/1', 'outcast'))).toBe('forbidden');
    // Neither occupant nor member: nothing.
    expect(condition(list('z@x/1', 'member'))).toBe('forbidden');
  });

  it('writes the configuration form fields with <value/> before <option/> (XEP-0004 §3.2 field schema, §10.2)', () => {
    const h = harness();
    h.join('a@x/1', 'r', 'A');
    h.send('a@x/1', `<iq type='get' id='g' to='r@muc.example'><query xmlns='http://jabber.org/protocol/muc#owner'/></iq>`);
    const form = parseElement(h.replies.at(-1)!).getChild('query')!.getChild('x')!;
    for (const f of form.getChildren('field')) {
      const names = f.children.filter((c) => typeof c !== 'string').map((c) => (c as { name: string }).name);
      const firstOption = names.indexOf('option');
      if (firstOption >= 0) expect(names.lastIndexOf('value')).toBeLessThan(firstOption);
    }
    expect(form.getChildren('field').some((f) => f.getChildren('option').length > 0)).toBe(true);
  });
});

describe('XEP-0045 IQs between occupants', () => {
  it('relays an IQ to an occupant and its answer back under room JIDs only (§7.7)', () => {
    const h = harness();
    h.join('a@x/1', 'r', 'A');
    h.instant('a@x/1', 'r');
    h.join('b@x/1', 'r', 'B');
    h.clear();
    h.send('a@x/1', "<iq type='get' id='v1' to='r@muc.example/B'><query xmlns='jabber:iq:version'/></iq>");
    expect(h.sent).toEqual([
      { to: 'b@x/1', kind: 'iq', xml: `<iq type='get' id='v1' from='r@muc.example/A' to='b@x/1'><query xmlns='jabber:iq:version'/></iq>` },
    ]);
    h.clear();
    h.send('b@x/1', "<iq type='result' id='v1' to='r@muc.example/A'><query xmlns='jabber:iq:version'><name>c</name></query></iq>");
    expect(h.sent.map((s) => [s.to, s.xml])).toEqual([
      ['a@x/1', `<iq type='result' id='v1' from='r@muc.example/B' to='a@x/1'><query xmlns='jabber:iq:version'><name>c</name></query></iq>`],
    ]);
    expect(condition(() => h.send('z@x/1', "<iq type='get' id='v2' to='r@muc.example/B'><ping xmlns='urn:xmpp:ping'/></iq>"))).toBe('not-acceptable');
    expect(condition(() => h.send('a@x/1', "<iq type='get' id='v3' to='r@muc.example/Nobody'><ping xmlns='urn:xmpp:ping'/></iq>"))).toBe('item-not-found');
  });

  it('returns the answer to the session that asked when two sessions share the nick (§7.7, multi-session nicks)', () => {
    const h = harness();
    h.join('a@x/1', 'r', 'A');
    h.instant('a@x/1', 'r');
    h.join('a@x/2', 'r', 'A');
    h.join('b@x/1', 'r', 'B');
    h.clear();
    h.send('a@x/2', "<iq type='get' id='v1' to='r@muc.example/B'><query xmlns='jabber:iq:version'/></iq>");
    h.send('b@x/1', "<iq type='result' id='v1' to='r@muc.example/A'><query xmlns='jabber:iq:version'><name>c</name></query></iq>");
    expect(h.sent.filter((s) => s.xml.startsWith("<iq type='result'")).map((s) => s.to)).toEqual(['a@x/2']);
    // The first session's own request is answered to it, and a second answer with the same id to the first session (nothing remembered).
    h.clear();
    h.send('a@x/1', "<iq type='get' id='v2' to='r@muc.example/B'><query xmlns='jabber:iq:version'/></iq>");
    h.send('b@x/1', "<iq type='result' id='v2' to='r@muc.example/A'/>");
    h.send('b@x/1', "<iq type='result' id='v1' to='r@muc.example/A'/>");
    expect(h.sent.filter((s) => s.xml.startsWith("<iq type='result'")).map((s) => s.to)).toEqual(['a@x/1', 'a@x/1']);
  });
});

let dir: string | null = null;
afterEach(() => {
  if (dir) rmSync(dir, { recursive: true, force: true });
  dir = null;
});

describe('XEP-0045 persistence', () => {
  it('a persistent room keeps its configuration, affiliations and subject across a restart (SQLite, schema 7)', () => {
    dir = mkdtempSync(join(tmpdir(), 'hermod-muc-'));
    const first = openSqliteStorage({ dataDir: dir, iterations: 1, archiveThread: false });
    const h = harness(first.muc!);
    h.join('o@x/1', 'r', 'O');
    h.send(
      'o@x/1',
      `<iq type='set' id='c' to='r@muc.example'><query xmlns='http://jabber.org/protocol/muc#owner'><x xmlns='jabber:x:data' type='submit'>` +
        `<field var='muc#roomconfig_persistentroom'><value>1</value></field><field var='muc#roomconfig_roomname'><value>Kept</value></field></x></query></iq>`,
    );
    h.send('o@x/1', `<iq type='set' id='b' to='r@muc.example'><query xmlns='http://jabber.org/protocol/muc#admin'><item jid='bad@x' affiliation='outcast'/></query></iq>`);
    h.send('o@x/1', `<message type='groupchat' to='r@muc.example'><subject>Topic</subject></message>`);
    h.join('o@x/1', 'temp', 'O');
    h.service.gone('o@x/1');
    first.close();

    const second = openSqliteStorage({ dataDir: dir, iterations: 1, archiveThread: false });
    const again = harness(second.muc!);
    const room = again.service.rooms.get('r@muc.example')!;
    expect(room.config.name).toBe('Kept');
    expect(room.affiliation('o@x')).toBe('owner');
    expect(room.affiliation('bad@x')).toBe('outcast');
    expect(room.subject?.text).toBe('Topic');
    expect(again.service.rooms.has('temp@muc.example')).toBe(false);
    expect(condition(() => again.join('bad@x/1', 'r', 'Bad'), again.replies)).toBe('forbidden');
    // Destroying it removes it from storage too (§10.9).
    again.join('o@x/1', 'r', 'O');
    again.send('o@x/1', `<iq type='set' id='d' to='r@muc.example'><query xmlns='http://jabber.org/protocol/muc#owner'><destroy/></query></iq>`);
    expect(second.muc!.list('muc.example')).toEqual([]);
    second.close();
  });

  it("ends a deleted account's affiliations in the live rooms and their stored records, bans kept: whoever registers the name next owns nothing; the room stays, ownerless (XEP-0077 §3.2, XEP-0045 §5.2)", () => {
    const storage = createMemoryStorage();
    for (const u of ['o@x', 'm@x', 'bad@x']) storage.users.create(u, 'secret');
    const h = harness(storage.muc!);
    h.join('o@x/1', 'r', 'O');
    h.send(
      'o@x/1',
      `<iq type='set' id='c' to='r@muc.example'><query xmlns='http://jabber.org/protocol/muc#owner'><x xmlns='jabber:x:data' type='submit'>` +
        `<field var='muc#roomconfig_persistentroom'><value>1</value></field><field var='muc#roomconfig_membersonly'><value>1</value></field></x></query></iq>`,
    );
    const grant = (jid: string, affiliation: string) =>
      h.send('o@x/1', `<iq type='set' id='a' to='r@muc.example'><query xmlns='http://jabber.org/protocol/muc#admin'><item jid='${jid}' affiliation='${affiliation}'/></query></iq>`);
    grant('m@x', 'member');
    grant('bad@x', 'outcast');
    h.service.gone('o@x/1');
    const stored = () => new Map(JSON.parse(storage.muc!.list('muc.example')[0]!.data).affiliations as [string, string][]);
    // As register.ts and the admin socket do: the store first, then the 'account/removed' hook.
    for (const gone of ['o@x', 'bad@x']) {
      expect(storage.users.delete(gone)).toBe(true);
      h.service.accountRemoved(gone);
    }
    const room = h.service.rooms.get('r@muc.example')!;
    expect([room.affiliation('o@x'), room.affiliation('m@x'), room.affiliation('bad@x')]).toEqual(['none', 'member', 'outcast']);
    expect(stored()).toEqual(new Map([['m@x', 'member'], ['bad@x', 'outcast']]));
    // The name registered again: a stranger, not the owner (members-only: not even let in).
    storage.users.create('o@x', 'new person');
    expect(condition(() => h.join('o@x/2', 'r', 'New'), h.replies)).toBe('registration-required');
    expect(condition(() => h.join('bad@x/1', 'r', 'Bad'), h.replies)).toBe('forbidden');
    h.join('m@x/1', 'r', 'M');
    expect(room.affiliation('m@x')).toBe('member');
    expect(stored().has('o@x')).toBe(false);
  });

  it('upgrades a schema 6 database in place: the room table is added, accounts kept', async () => {
    const { default: Database } = await import('better-sqlite3');
    dir = mkdtempSync(join(tmpdir(), 'hermod-muc-'));
    const s = openSqliteStorage({ dataDir: dir, iterations: 1, archiveThread: false });
    s.users.create('alice@x', 'pw');
    s.close();
    const db = new Database(join(dir, 'hermod.sqlite'));
    db.exec('DROP TABLE muc_room');
    db.pragma('user_version = 6');
    db.close();
    const up = openSqliteStorage({ dataDir: dir, iterations: 1, archiveThread: false });
    expect(up.users.exists('alice@x')).toBe(true);
    up.muc!.save('r@muc.example', '{}');
    expect(up.muc!.list('muc.example')).toHaveLength(1);
    up.close();
    const check = new Database(join(dir, 'hermod.sqlite'), { readonly: true });
    expect(check.pragma('user_version', { simple: true })).toBe(SCHEMA_VERSION);
    check.close();
  });

  it('the memory store lists rooms by service domain', () => {
    const s = createMemoryStorage();
    s.muc!.save('a@one.example', '{}');
    s.muc!.save('b@two.example', '{}');
    expect(s.muc!.list('one.example')).toEqual([{ jid: 'a@one.example', data: '{}' }]);
    expect(s.muc!.remove('a@one.example')).toBe(true);
    expect(s.muc!.remove('a@one.example')).toBe(false);
  });
});

describe('XEP-0045 configuration', () => {
  it('check-config refuses a service domain taken by the server or a component; workers > 0 is fine', () => {
    dir = mkdtempSync(join(tmpdir(), 'hermod-muc-conf-'));
    const check = (yaml: string): string[] => {
      const file = join(dir!, 'hermod.yml');
      writeFileSync(file, yaml);
      try {
        loadConfig({ file, checkFiles: false });
        return [];
      } catch (err) {
        if (!(err instanceof ConfigFileError)) throw err;
        return err.issues.map((i) => `${i.path}: ${i.message}`);
      }
    };
    expect(check('muc:\n  enabled: true\n')).toEqual([]);
    expect(check('workers: 2\nmuc:\n  enabled: true\n')).toEqual([]);
    expect(check('domain: example.org\nmuc:\n  enabled: true\n  domain: example.org\n')).toEqual([
      'muc.domain: the chat service needs a domain of its own, not the server domain',
    ]);
    expect(check('muc:\n  enabled: true\ncomponents:\n  conference.localhost: s3cret\n')).toEqual([
      'muc.domain: conference.localhost is also configured as a component',
    ]);
  });

  it('is on by default at conference.<domain>, off when disabled, and refuses the server domain', () => {
    const c = defaultHermodConfig();
    expect(mucSettingsOf(c)!.domain).toBe('conference.localhost');
    c.muc.enabled = false;
    expect(mucSettingsOf(c)).toBeNull();
    c.muc.enabled = true;
    c.muc.domain = 'localhost';
    expect(() => mucSettingsOf(c)).toThrow(ConfigError);
    expect(() => mucSettingsOf(c)).toThrow(/own domain/);
  });
});

describe('XEP-0045 history memory bound', () => {
  it('keeps at most HISTORY_MAX_CHARS of history per room, whatever history_size says', () => {
    const sent: { to: string; xml: string }[] = [];
    const r = new Room('r@m', { maxOccupants: 5, historySize: 1000, maxMessageBytes: 20_000 }, (to, xml) => sent.push({ to, xml }), () => new Date(), () => {});
    r.affiliations.set('o@x', 'owner');
    r.join('o@x/1', 'o@x', 'O', '', {});
    const occ = r.occupantOf('o@x/1')!;
    for (let i = 0; i < 20; i++) r.groupchat(occ, parseElement(`<message type='groupchat'><body>${String(i).padStart(2, '0')}${'x'.repeat(10_000)}</body></message>`));
    // Six messages of ~10 K characters fit in 64 K; the oldest went first.
    expect(r.historyLength()).toBe(6);
    sent.length = 0;
    r.join('p@x/1', 'p@x', 'P', '', {});
    expect(sent.filter((s) => s.to === 'p@x/1' && s.xml.includes('<delay')).map((s) => /<body>(\d\d)/.exec(s.xml)![1])).toEqual(['14', '15', '16', '17', '18', '19']);
  });
});

describe('XEP-0045 service under arbitrary stanza sequences', () => {
  it('answers every stanza with delivery or a stanza error, and keeps its indexes consistent', async () => {
    const fc = (await import('fast-check')).default;
    const users = ['a@x/1', 'a@x/2', 'b@x/1', 'c@x/1'];
    const rooms = ['r', 's', 't'];
    const nicks = ['A', 'B', 'C'];
    const stanza = fc.oneof(
      fc.tuple(fc.constantFrom(...rooms), fc.constantFrom(...nicks), fc.boolean()).map(
        ([r, n, x]) => `<presence to='${r}@muc.example/${n}'>${x ? "<x xmlns='http://jabber.org/protocol/muc'/>" : ''}</presence>`,
      ),
      fc.tuple(fc.constantFrom(...rooms), fc.constantFrom(...nicks)).map(([r, n]) => `<presence type='unavailable' to='${r}@muc.example/${n}'/>`),
      fc.constantFrom(...rooms).map((r) => `<message type='groupchat' to='${r}@muc.example'><body>hi</body></message>`),
      fc.tuple(fc.constantFrom(...rooms), fc.constantFrom(...nicks)).map(([r, n]) => `<message type='chat' to='${r}@muc.example/${n}'><body>pm</body></message>`),
      fc.constantFrom(...rooms).map(
        (r) => `<iq type='set' id='c' to='${r}@muc.example'><query xmlns='http://jabber.org/protocol/muc#owner'><x xmlns='jabber:x:data' type='submit'/></query></iq>`,
      ),
      fc.constantFrom(...rooms).map((r) => `<iq type='set' id='d' to='${r}@muc.example'><query xmlns='http://jabber.org/protocol/muc#owner'><destroy/></query></iq>`),
      fc.tuple(fc.constantFrom(...rooms), fc.constantFrom(...nicks), fc.constantFrom('none', 'visitor', 'participant', 'moderator')).map(
        ([r, n, role]) => `<iq type='set' id='k' to='${r}@muc.example'><query xmlns='http://jabber.org/protocol/muc#admin'><item nick='${n}' role='${role}'/></query></iq>`,
      ),
      fc.tuple(fc.constantFrom(...rooms), fc.constantFrom('a@x', 'b@x', 'c@x'), fc.constantFrom('owner', 'admin', 'member', 'none', 'outcast')).map(
        ([r, j, aff]) => `<iq type='set' id='f' to='${r}@muc.example'><query xmlns='http://jabber.org/protocol/muc#admin'><item jid='${j}' affiliation='${aff}'/></query></iq>`,
      ),
    );
    const step = fc.oneof(
      { weight: 9, arbitrary: fc.tuple(fc.constantFrom(...users), stanza) },
      { weight: 1, arbitrary: fc.constantFrom(...users).map((u) => [u, null] as const) },
    );
    fc.assert(
      fc.property(fc.array(step, { maxLength: 60 }), (steps) => {
        const h = harness();
        for (const [user, xml] of steps) {
          if (xml === null) {
            h.service.gone(user);
            continue;
          }
          try {
            h.send(user, xml);
          } catch (err) {
            if (!(err instanceof StanzaError)) throw err;
          }
        }
        expect(h.service.rooms.size).toBeLessThanOrEqual(SETTINGS.maxRooms);
        for (const room of h.service.rooms.values()) {
          // Every session index entry points at an occupant holding that session, and back.
          for (const [jid, nick] of room.byJid) expect(room.occupants.get(nick)?.sessions).toContain(jid);
          for (const occ of room.occupants.values()) {
            expect(occ.sessions[0]).toBe(occ.jid);
            for (const s of occ.sessions) expect(room.byJid.get(s)).toBe(occ.nick);
            expect(room.affiliation(occ.bare)).not.toBe('outcast');
          }
          // A room always keeps an owner; a temporary one is never empty.
          expect([...room.affiliations.values()]).toContain('owner');
          if (!room.config.persistent) expect(room.occupants.size).toBeGreaterThan(0);
        }
      }),
      { numRuns: 300 },
    );
  });
});

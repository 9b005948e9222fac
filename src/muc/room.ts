/**
 * One XEP-0045 room: occupants with roles, affiliations, configuration, subject and history.
 * Socket- and router-free: what the room says goes through `Out`, errors are thrown as
 * StanzaError for the service to turn into the reply the section in question asks for.
 */
import { StanzaError } from '../errors.js';
import { Jid } from '../jid.js';
import type { Element } from '../xml/element.js';
import { attr, escapeText } from '../xml/escape.js';
import { exactAttr, exactText, exactXml } from '../xml/exact.js';
import { endsWithAccount } from '../storage/muc-affiliations.js';

export const MUC = 'http://jabber.org/protocol/muc';
export const MUC_USER = 'http://jabber.org/protocol/muc#user';
export const MUC_ADMIN = 'http://jabber.org/protocol/muc#admin';
export const MUC_OWNER = 'http://jabber.org/protocol/muc#owner';

export type Affiliation = 'owner' | 'admin' | 'member' | 'none' | 'outcast';
export type Role = 'moderator' | 'participant' | 'visitor' | 'none';
export const AFFILIATIONS: readonly Affiliation[] = ['owner', 'admin', 'member', 'none', 'outcast'];
export const ROLES: readonly Role[] = ['moderator', 'participant', 'visitor', 'none'];
const RANK: Record<Affiliation, number> = { owner: 4, admin: 3, member: 2, none: 1, outcast: 0 };

/** XEP-0045 §10.2 / §15.5.3 muc#roomconfig fields this service honours. */
export interface RoomConfig {
  name: string;
  description: string;
  persistent: boolean;
  public: boolean;
  membersOnly: boolean;
  moderated: boolean;
  /** null = no password (muc#roomconfig_passwordprotectedroom off). */
  password: string | null;
  maxUsers: number;
  /** 'anyone' = non-anonymous room, 'moderators' = semi-anonymous. */
  whois: 'anyone' | 'moderators';
  changeSubject: boolean;
  /** XEP-0313 §5: the room archives its messages (muc#roomconfig_enablearchiving). */
  archive: boolean;
}

/** Characters of history one room keeps, whatever history_size says (memory bound per room). */
export const HISTORY_MAX_CHARS = 64 * 1024;

export interface Limits {
  maxOccupants: number;
  historySize: number;
  maxMessageBytes: number;
  /** muc#roomconfig_enablearchiving of a new room (config muc.archive_default; absent: off). */
  archiveDefault?: boolean;
}

export function defaultConfig(limits: Limits): RoomConfig {
  return {
    name: '',
    description: '',
    persistent: false,
    public: true,
    membersOnly: false,
    moderated: false,
    password: null,
    maxUsers: limits.maxOccupants,
    whois: 'moderators',
    changeSubject: false,
    archive: limits.archiveDefault ?? false,
  };
}

export interface Occupant {
  nick: string;
  /** Full JID of the occupant's first session (the one shown as its real JID). */
  jid: string;
  /** Every session in the room under this nick: one account's resources may share it. */
  sessions: string[];
  bare: string;
  role: Role;
  /** The client's own presence children (show, status, caps…), serialised, muc <x/> removed. */
  presence: string;
}

interface HistoryEntry {
  /** The reflected message without its 'to', from room/nick. */
  head: string;
  body: string;
  stamp: Date;
  chars: number;
}

/** What a join asks of the history (XEP-0045 §7.2.14). */
export interface HistoryRequest {
  maxstanzas?: number;
  maxchars?: number;
  seconds?: number;
  since?: Date;
}

/**
 * The children of an element as XML, written so that a recipient's parser reads the values the
 * sender's did (src/xml/exact.ts: the element comes from parseExact). Prefixes the
 * client declared on the stanza itself (xmlns:p on <message>) are in scope in its children;
 * serialised without their parent a child would carry an unbound prefix, not well-formed for
 * every occupant it reaches (Namespaces in XML §5), so each child gets the declarations it lacks.
 */
export function innerXml(el: Element, skip?: (child: Element) => boolean): string {
  const declared = Object.keys(el.attrs).filter((k) => k.startsWith('xmlns:'));
  let s = '';
  for (const c of el.children) {
    if (typeof c === 'string') s += exactText(c);
    else if (!skip?.(c)) {
      for (const k of declared) if (c.attrs[k] === undefined) c.attrs[k] = el.attrs[k];
      s += exactXml(c);
    }
  }
  return s;
}

/**
 * §7.4, §7.5 / XEP-0313 'MUC message spoofing': the sender's own muc#user <x/> is left out of
 * every copy of a message the room relays (live, history, archive, private): an <item jid=…/>
 * in it would be shown as the sender's real JID; the room adds its own where one belongs. By
 * expanded name, as the recipients' parsers read it (a prefixed <u:x> is the same element).
 */
function senderMucUser(c: Element): boolean {
  return c.getName() === 'x' && c.getNS() === MUC_USER;
}

/** RFC 6120 §8.1.5: the stanza's xml:lang as written on a copy, or '' when it has none. */
function langOf(msg: Element): string {
  return exactAttr('xml:lang', msg.attrs['xml:lang'] as string | undefined);
}

const FROM = / from='([^']*)'/;
const ENTITIES: Record<string, string> = { '&amp;': '&', '&apos;': "'", '&quot;': '"', '&lt;': '<', '&gt;': '>' };

/** The 'from' of a stanza this service wrote (always single-quoted, escaped by attr()), as written. */
export function senderText(xml: string): string | null {
  const end = xml.indexOf('>');
  const m = FROM.exec(xml.slice(0, end < 0 ? xml.length : end));
  if (!m) return null;
  return m[1]!.includes('&') ? m[1]!.replace(/&(amp|apos|quot|lt|gt);/g, (e) => ENTITIES[e]!) : m[1]!;
}

/** The same, parsed. */
export function senderOf(xml: string): Jid | null {
  const text = senderText(xml);
  return text === null ? null : Jid.tryParse(text);
}

/** The bare part of a JID this service wrote (already prepared: no parsing needed). */
export function bareOf(jid: string): string {
  const slash = jid.indexOf('/');
  return slash < 0 ? jid : jid.slice(0, slash);
}

/** Where a room's messages are archived (src/muc/archive.ts). */
export interface RoomArchiver {
  /**
   * Store one message the room broadcasts, as archived (from the occupant JID, no 'to');
   * `real` is the sending session's full JID. Returns the archive id.
   */
  append(room: string, message: { nick: string; real: string; stanza: string }): string;
  /** The newest `n` archived messages with a body, as the room's history keeps them (oldest first). */
  recent?(room: string, n: number): { head: string; body: string; stamp: Date }[];
}

/** XEP-0359: the room's archive id on every copy of a message it archived. */
export function roomStanzaId(room: string, id: string): string {
  return `<stanza-id xmlns='${SID_NS}'${attr('by', room)}${attr('id', id)}/>`;
}

const SID_NS = 'urn:xmpp:sid:0';
const HINTS_NS = 'urn:xmpp:hints';

export type Kind = 'message' | 'presence' | 'iq';
/** Deliver `xml` to `to`; `room` is the bare JID of the room it comes from, when it comes from one. */
export type Out = (to: string, xml: string, kind: Kind, room?: string) => void;

/** What survives a restart (persistent rooms). */
export interface RoomRecord {
  config: RoomConfig;
  affiliations: [string, Affiliation][];
  subject: { text: string; nick: string } | null;
}

export class Room {
  config: RoomConfig;
  readonly affiliations = new Map<string, Affiliation>();
  readonly occupants = new Map<string, Occupant>();
  /** Full JID → nick. */
  readonly byJid = new Map<string, string>();
  subject: { text: string; nick: string } | null = null;
  /** XEP-0045 §10.1.1: a new room is locked until its owner configures it (or asks for an instant room). */
  locked = false;
  private history: HistoryEntry[] = [];
  private historyChars = 0;
  /** The service's archive (null: the service archives no room); this room uses it when config.archive is on. */
  archiver: RoomArchiver | null = null;
  /** Restored at start: the history died with the last run, the archive may have it (read at the first join). */
  private historyFromArchive = false;

  constructor(
    readonly jid: string,
    readonly limits: Limits,
    private readonly out: Out,
    private readonly now: () => Date,
    /** Called after a change a persistent room must keep (config, affiliations, subject). */
    private readonly changed: (room: Room) => void,
  ) {
    this.config = defaultConfig(limits);
  }

  static restore(jid: string, rec: RoomRecord, limits: Limits, out: Out, now: () => Date, changed: (room: Room) => void): Room {
    const r = new Room(jid, limits, out, now, changed);
    r.config = { ...defaultConfig(limits), ...rec.config };
    for (const [j, a] of rec.affiliations) r.affiliations.set(j, a);
    r.subject = rec.subject;
    r.historyFromArchive = true;
    return r;
  }

  record(): RoomRecord {
    return { config: this.config, affiliations: [...this.affiliations], subject: this.subject };
  }

  affiliation(bare: string): Affiliation {
    return this.affiliations.get(bare) ?? 'none';
  }

  /**
   * The account `bare` was deleted: its affiliation ends unless it is a ban, here as in the
   * stored record (src/storage/muc-affiliations.ts), or the room's next change would write it
   * back. Returns whether one ended.
   */
  forgetAccount(bare: string): boolean {
    const a = this.affiliations.get(bare);
    if (a === undefined || !endsWithAccount(a)) return false;
    this.affiliations.delete(bare);
    this.changed(this);
    return true;
  }

  get empty(): boolean {
    return this.occupants.size === 0;
  }

  /** XEP-0313 §5: messages are archived (and the archive can be queried) now. */
  get archiving(): boolean {
    return this.archiver !== null && this.config.archive;
  }

  /** XEP-0045 §7.2.3 / §7.2.4: whether `full` (occupant or not) may learn occupants' real JIDs. */
  mayKnowRealJids(full: string, bare: string): boolean {
    if (this.config.whois === 'anyone') return true;
    // Owners and admins are moderators whenever they are in the room.
    return RANK[this.affiliation(bare)] >= RANK.admin || this.occupantOf(full)?.role === 'moderator';
  }

  occupantOf(fullJid: string): Occupant | undefined {
    const nick = this.byJid.get(fullJid);
    return nick === undefined ? undefined : this.occupants.get(nick);
  }

  /** XEP-0045 §5.1.2 default roles by affiliation. */
  private defaultRole(aff: Affiliation): Role {
    if (aff === 'owner' || aff === 'admin') return 'moderator';
    if (this.config.moderated && aff === 'none') return 'visitor';
    return 'participant';
  }

  // ------------------------------------------------------------------ presence

  /**
   * XEP-0045 §7.2: enter the room. `created` = the joiner just created it (§10.1.1, status 201).
   * Throws the §7.2 error conditions; nothing is changed when it throws.
   */
  join(
    jid: string,
    bare: string,
    nick: string,
    presence: string,
    opts: { password?: string | null; history?: HistoryRequest; created?: boolean; id?: string },
  ): void {
    this.checkPresence(presence);
    const aff = this.affiliation(bare);
    // §10.1.1: only the owner may enter a room that is still locked.
    if (this.locked && aff !== 'owner') throw new StanzaError('item-not-found', 'the room is locked until it is configured');
    // §7.2.7: banned users are refused.
    if (aff === 'outcast') throw new StanzaError('forbidden', 'you are banned from this room');
    // §7.2.6: members-only rooms admit members and above.
    if (this.config.membersOnly && RANK[aff] < RANK.member) throw new StanzaError('registration-required', 'this room is members-only');
    // §7.2.8: a nickname in use by someone else.
    const holder = this.occupants.get(nick);
    if (holder && holder.bare !== bare) throw new StanzaError('conflict', 'that nickname is in use');
    // §7.2.10: full room, except for admins and owners.
    if (!holder && this.occupants.size >= this.config.maxUsers && RANK[aff] < RANK.admin) {
      throw new StanzaError('service-unavailable', 'the room is full', 'wait');
    }
    // §7.2.5: password-protected rooms (owners too, as the spec gives no exemption).
    if (this.config.password !== null && opts.password !== this.config.password && !opts.created) {
      throw new StanzaError('not-authorized', 'a password is required');
    }
    const own = this.selfCodes();
    if (holder) {
      // Another resource of the same account under the same nick (multi-session, as Prosody and
      // ejabberd allow): it joins the occupant; the others see no change.
      for (const o of this.occupants.values()) if (o !== holder) this.out(jid, this.presenceOf(o, jid, []), 'presence');
      holder.sessions.push(jid);
      this.byJid.set(jid, nick);
      this.out(jid, this.presenceOf(holder, jid, own, opts.id), 'presence');
      this.welcome(jid, opts.history ?? {});
      return;
    }
    const occ: Occupant = { nick, jid, sessions: [jid], bare, role: this.defaultRole(aff), presence };
    // §7.2.3: the newcomer first hears every occupant already there …
    for (const o of this.occupants.values()) this.out(jid, this.presenceOf(o, jid, []), 'presence');
    this.occupants.set(nick, occ);
    this.byJid.set(jid, nick);
    // … then its own presence goes to everyone, the newcomer last with status 110 (§7.2.3),
    // 100 in a non-anonymous room (§7.2.4), 201 for a room it created (§10.1.1).
    if (opts.created) own.push('201');
    this.broadcastPresence(occ, [], own, { to: jid, id: opts.id });
    this.welcome(jid, opts.history ?? {});
  }

  /** §7.2.14 history, then §7.2.15 the subject (always, empty when there is none). */
  private welcome(jid: string, history: HistoryRequest): void {
    this.sendHistory(jid, history);
    const subj = this.subject;
    this.out(
      jid,
      `<message type='groupchat'${attr('from', subj ? `${this.jid}/${subj.nick}` : this.jid)}${attr('to', jid)}>` +
        (subj ? `<subject>${escapeText(subj.text)}</subject>` : '<subject/>') +
        `</message>`,
      'message',
    );
  }

  /**
   * A join presence (with the MUC <x/>) from a session already in the room under that nick: its
   * client believes it is out (a lost connection it has not noticed the server kept, or an
   * XEP-0410 self-ping it took as failed) and waits for the §7.2.3 sequence, its own presence
   * with 110 above all. It gets the whole entry again, occupants, history and subject (as
   * Prosody and ejabberd do); the others only see its presence, as for an update.
   */
  rejoin(occ: Occupant, jid: string, presence: string, history: HistoryRequest, id?: string): void {
    this.checkPresence(presence);
    for (const o of this.occupants.values()) if (o !== occ) this.out(jid, this.presenceOf(o, jid, []), 'presence');
    occ.presence = presence;
    this.broadcastPresence(occ, [], this.selfCodes(), { to: jid, id });
    this.welcome(jid, history);
  }

  /**
   * The room keeps every occupant's presence and hands all of them to each newcomer: without a
   * bound of its own, one account's 256 KiB presences (the stanza limit) in a thousand rooms
   * would hold 256 MiB, and each join into a full room would write 200 of them. The room's
   * message bound (muc.max_message_bytes) applies to presence content too.
   */
  private checkPresence(presence: string): void {
    if (Buffer.byteLength(presence) > this.limits.maxMessageBytes) {
      throw new StanzaError('not-acceptable', `presence in this room is limited to ${this.limits.maxMessageBytes} bytes`);
    }
  }

  /** §7.2.3 110 on an occupant's own presence, §7.2.4 100 too in a non-anonymous room. */
  private selfCodes(): string[] {
    return this.config.whois === 'anyone' ? ['110', '100'] : ['110'];
  }

  /** §7.7 presence update of an occupant (same nickname). */
  update(occ: Occupant, presence: string): void {
    this.checkPresence(presence);
    occ.presence = presence;
    this.broadcastPresence(occ, [], ['110']);
  }

  /** §7.6: nickname change: unavailable with 303 and the new nick, then available under it. */
  changeNick(occ: Occupant, nick: string, presence: string): void {
    this.checkPresence(presence);
    const holder = this.occupants.get(nick);
    if (holder) throw new StanzaError('conflict', 'that nickname is in use');
    for (const o of this.occupants.values()) {
      const codes = o === occ ? ['303', '110'] : ['303'];
      this.toAll(o, (to) => `<presence type='unavailable'${attr('from', `${this.jid}/${occ.nick}`)}${attr('to', to)}>${this.userX(occ, to, codes, nick)}</presence>`, 'presence');
    }
    this.occupants.delete(occ.nick);
    occ.nick = nick;
    occ.presence = presence;
    this.occupants.set(nick, occ);
    for (const j of occ.sessions) this.byJid.set(j, nick);
    this.broadcastPresence(occ, [], ['110']);
  }

  /**
   * §7.14: session `jid` of the occupant leaves (or ended). The room hears the occupant gone
   * when it was its last session; otherwise only that session is told (110).
   */
  leave(occ: Occupant, jid: string, status: string | null = null): void {
    const inner = status === null ? '' : `<status>${escapeText(status)}</status>`;
    const unavailable = (to: string, x: string) => `<presence type='unavailable'${attr('from', `${this.jid}/${occ.nick}`)}${attr('to', to)}>${inner}${x}</presence>`;
    if (occ.sessions.length > 1) {
      this.out(jid, unavailable(jid, this.userX(occ, jid, ['110'])), 'presence');
      occ.sessions = occ.sessions.filter((j) => j !== jid);
      occ.jid = occ.sessions[0]!;
      this.byJid.delete(jid);
      return;
    }
    occ.role = 'none';
    for (const o of this.occupants.values()) {
      const codes = o === occ ? ['110'] : [];
      this.toAll(o, (to) => unavailable(to, this.userX(occ, to, codes)), 'presence');
    }
    this.occupants.delete(occ.nick);
    this.byJid.delete(jid);
  }

  /** Deliver to every session of an occupant. */
  private toAll(o: Occupant, build: (to: string) => string, kind: Kind): void {
    for (const to of o.sessions) this.out(to, build(to), kind);
  }

  /**
   * `echo`: the session whose join this answers gets its own presence with the join's 'id', so
   * that a client can match the self-presence to the join it sent (Prosody does the same).
   */
  private broadcastPresence(occ: Occupant, codes: string[], selfCodes: string[], echo?: { to: string; id: string | undefined }): void {
    for (const o of this.occupants.values()) {
      if (o !== occ) this.toAll(o, (to) => this.presenceOf(occ, to, codes), 'presence');
    }
    this.toAll(occ, (to) => this.presenceOf(occ, to, [...codes, ...selfCodes], to === echo?.to ? echo.id : undefined), 'presence');
  }

  private presenceOf(occ: Occupant, to: string, codes: string[], id?: string): string {
    return `<presence${attr('id', id)}${attr('from', `${this.jid}/${occ.nick}`)}${attr('to', to)}>${occ.presence}${this.userX(occ, to, codes)}</presence>`;
  }

  /** §7.2.3 / §7.2.4: the jid is shown to everyone in a non-anonymous room, to moderators otherwise. */
  private seesJids(to: string): boolean {
    if (this.config.whois === 'anyone') return true;
    return this.occupantOf(to)?.role === 'moderator';
  }

  private userX(occ: Occupant, to: string, codes: string[], newNick?: string, extra = ''): string {
    const jid = this.seesJids(to) || occ.sessions.includes(to) ? occ.jid : undefined;
    const item = `<item${attr('affiliation', this.affiliation(occ.bare))}${attr('role', occ.role)}${attr('jid', jid)}${attr('nick', newNick)}/>`;
    return `<x xmlns='${MUC_USER}'>${item}${codes.map((c) => `<status code='${c}'/>`).join('')}${extra}</x>`;
  }

  // ------------------------------------------------------------------ messages

  /**
   * §7.4: a groupchat message from an occupant is reflected to every occupant (the sender too)
   * from room/nick; §8.1 a <subject/> without <body/> changes the subject. `from` is the sending
   * session (the room archive keeps it as the real JID).
   */
  groupchat(occ: Occupant, msg: Element, from: string = occ.jid): void {
    // XEP-0359 §5 (Security Considerations): a stanza-id claiming to be this room's was not
    // written by it; the room's own goes on below.
    // By expanded name and prepared JID, as the recipients' parsers and clients compare them.
    const forged = (c: Element) =>
      c.getName() === 'stanza-id' && c.getNS() === SID_NS && Jid.tryParse(String(c.attrs.by ?? ''))?.bare === this.jid;
    let inner = this.checkedContent(msg, (c) => forged(c) || senderMucUser(c));
    // §7.4 / §5.1.1: visitors in a moderated room have no voice.
    if (occ.role === 'visitor' || occ.role === 'none') throw new StanzaError('forbidden', 'you have no voice in this room');
    const subject = msg.getChild('subject');
    const isSubject = subject !== undefined && msg.getChild('body') === undefined;
    if (isSubject) {
      // §8.1: moderators, or every participant when the room allows it.
      if (occ.role !== 'moderator' && !this.config.changeSubject) throw new StanzaError('forbidden', 'only moderators may change the subject');
      this.subject = { text: subject!.getText(), nick: occ.nick };
      this.changed(this);
    }
    // RFC 6120 §8.1.5: the message's language goes with every copy (live, history, archive).
    const head = `<message type='groupchat'${exactAttr('id', msg.attrs.id as string | undefined)}${langOf(msg)}${attr('from', `${this.jid}/${occ.nick}`)}`;
    if (this.archiving && (isSubject || msg.getChild('body') !== undefined) && !noStoreHint(msg)) {
      // XEP-0313 'MUC Archives': messages with a body and subject changes, once each, as the
      // room sent them (the sender's muc#user <x/> already left out above: the archive adds its
      // own, with the real JID, for those allowed to see it). XEP-0359: every copy, history
      // included, carries the archive id as a stanza-id by the room.
      const id = this.archiver!.append(this.jid, { nick: occ.nick, real: from, stanza: `${head}>${inner}</message>` });
      inner += roomStanzaId(this.jid, id);
    }
    for (const o of this.occupants.values()) this.toAll(o, (to) => `${head}${attr('to', to)}>${inner}</message>`, 'message');
    // §7.2.14: messages with a body make the history; the subject is sent on its own at join.
    if (!isSubject && msg.getChild('body') !== undefined) this.remember(head, inner, this.now());
  }

  /** One message for the join history, bounded by count and by size: max_rooms × HISTORY_MAX_CHARS is the most history can hold. */
  private remember(head: string, body: string, stamp: Date): void {
    if (this.limits.historySize <= 0) return;
    const chars = head.length + body.length;
    this.history.push({ head, body, stamp, chars });
    this.historyChars += chars;
    while (this.history.length > this.limits.historySize || this.historyChars > HISTORY_MAX_CHARS) {
      this.historyChars -= this.history.shift()!.chars;
    }
  }

  /** §7.2.14: the history the joiner asked for; at most the room's size; delayed per XEP-0203. */
  private sendHistory(to: string, req: HistoryRequest): void {
    if (this.historyFromArchive) {
      // A persistent room after a restart: its history, lost with the last run's memory, is the
      // newest of its archive (when it archives), read once, at the first join.
      this.historyFromArchive = false;
      if (this.archiving && this.limits.historySize > 0 && this.history.length === 0) {
        for (const h of this.archiver!.recent?.(this.jid, this.limits.historySize) ?? []) this.remember(h.head, h.body, h.stamp);
      }
    }
    let list = this.history;
    if (req.seconds !== undefined) {
      const from = this.now().getTime() - req.seconds * 1000;
      list = list.filter((h) => h.stamp.getTime() >= from);
    }
    if (req.since !== undefined) list = list.filter((h) => h.stamp.getTime() > req.since!.getTime());
    if (req.maxstanzas !== undefined) list = req.maxstanzas <= 0 ? [] : list.slice(-req.maxstanzas);
    if (req.maxchars !== undefined) {
      // Counted from the newest: the oldest messages that do not fit are left out.
      let budget = req.maxchars;
      let start = list.length;
      while (start > 0 && budget - list[start - 1]!.chars >= 0) budget -= list[--start]!.chars;
      list = list.slice(start);
    }
    for (const h of list) {
      const delay = `<delay xmlns='urn:xmpp:delay'${attr('from', this.jid)}${attr('stamp', h.stamp.toISOString())}/>`;
      this.out(to, `${h.head}${attr('to', to)}>${h.body}${delay}</message>`, 'message');
    }
  }

  /** A message's content within muc.max_message_bytes (groupchat and private alike), as XML. */
  private checkedContent(msg: Element, skip?: (child: Element) => boolean): string {
    const inner = innerXml(msg, skip);
    if (Buffer.byteLength(inner) > this.limits.maxMessageBytes) {
      throw new StanzaError('not-acceptable', `messages to this room are limited to ${this.limits.maxMessageBytes} bytes`);
    }
    return inner;
  }

  /** Messages kept for history (tests, metrics). */
  historyLength(): number {
    return this.history.length;
  }

  /** §7.5: a private message from one occupant to another, from room/nick, marked with muc#user. */
  privateMessage(from: Occupant, nick: string, msg: Element): void {
    const target = this.occupants.get(nick);
    if (!target) throw new StanzaError('item-not-found', 'no such occupant');
    const inner = this.checkedContent(msg, senderMucUser);
    const type = (msg.attrs.type as string | undefined) ?? 'normal';
    this.toAll(
      target,
      (to) =>
        `<message${attr('type', type)}${exactAttr('id', msg.attrs.id as string | undefined)}${langOf(msg)}${attr('from', `${this.jid}/${from.nick}`)}${attr('to', to)}>` +
        `${inner}<x xmlns='${MUC_USER}'/></message>`,
      'message',
    );
  }

  /** §7.8.2: a mediated invitation: the room passes it on; in a members-only room an admin's invitee becomes a member. */
  invite(from: Occupant, to: string, reason: string | null, blockedByInvitee = false): void {
    if (this.config.membersOnly) {
      const aff = this.affiliation(from.bare);
      if (RANK[aff] < RANK.admin) throw new StanzaError('forbidden', 'only admins may invite to this members-only room');
    }
    // XEP-0191 §3.5: an invitee who blocks the inviter's bare JID gets nothing of theirs, the
    // room's relay included (the room's own JID is checked on delivery), and is made a member of
    // nothing. Dropped silently like any undelivered invitation, and only after the refusals
    // anyone gets: what the inviter sees does not depend on the block.
    if (blockedByInvitee) return;
    if (this.config.membersOnly && RANK[this.affiliation(to)] < RANK.member) {
      this.affiliations.set(to, 'member');
      this.changed(this);
    }
    const r = reason === null ? '' : `<reason>${escapeText(reason)}</reason>`;
    const pw = this.config.password === null ? '' : `<password>${escapeText(this.config.password)}</password>`;
    this.out(to, `<message${attr('from', this.jid)}${attr('to', to)}><x xmlns='${MUC_USER}'><invite${attr('from', from.bare)}>${r}</invite>${pw}</x></message>`, 'message');
  }

  // ------------------------------------------------------------------ moderation (§8, §9, §10)

  /**
   * §8.2 / §8.4 / §8.5 / §9.6 / §9.7: role changes by nickname. Kicking (role none) removes the
   * occupant with status 307.
   */
  setRole(actor: Occupant, nick: string, role: Role, reason: string | null): void {
    const target = this.occupants.get(nick);
    if (!target) throw new StanzaError('item-not-found', 'no such occupant');
    if (actor.role !== 'moderator') throw new StanzaError('forbidden', 'only moderators change roles');
    const actorAff = this.affiliation(actor.bare);
    const targetAff = this.affiliation(target.bare);
    // §9.6/§9.7: granting or revoking moderator status takes an admin.
    if ((role === 'moderator' || target.role === 'moderator') && RANK[actorAff] < RANK.admin) {
      throw new StanzaError('not-allowed', 'changing moderator status takes an admin');
    }
    // §8.2 / §8.5: admins and owners cannot be kicked or silenced, nor can their moderator status go.
    if (RANK[targetAff] >= RANK.admin && role !== 'moderator') throw new StanzaError('not-allowed', 'admins and owners keep their role');
    if (role === 'none') {
      const why = reason === null ? '' : `<reason>${escapeText(reason)}</reason>`;
      this.removeWith(target, ['307'], why, actor);
      return;
    }
    target.role = role;
    this.broadcastPresence(target, [], []);
  }

  private removeWith(target: Occupant, codes: string[], reason: string, actor: Occupant | null): void {
    // §9.1 / §8.2: the item carries the actor's nick and the reason.
    const actorEl = actor ? `<actor${attr('nick', actor.nick)}/>` : '';
    const extraItem = actorEl || reason ? { actorEl, reason } : null;
    target.role = 'none';
    const inner = extraItem ? `${extraItem.actorEl}${extraItem.reason}` : '';
    for (const o of this.occupants.values()) {
      const self = o === target;
      const sc = (self ? [...codes, '110'] : codes).map((c) => `<status code='${c}'/>`).join('');
      this.toAll(
        o,
        (to) => {
          const jid = self || this.seesJids(to) ? target.jid : undefined;
          const item = `<item${attr('affiliation', this.affiliation(target.bare))} role='none'${attr('jid', jid)}>${inner}</item>`;
          return `<presence type='unavailable'${attr('from', `${this.jid}/${target.nick}`)}${attr('to', to)}><x xmlns='${MUC_USER}'>${item}${sc}</x></presence>`;
        },
        'presence',
      );
    }
    this.occupants.delete(target.nick);
    for (const j of target.sessions) this.byJid.delete(j);
  }

  /**
   * §9.1 ban, §9.3–9.5 membership, §10.3–10.8 owners/admins: affiliation changes by bare JID,
   * asked by `actorBare` (checked here: admins manage members and outcasts below them, owners
   * everything).
   */
  setAffiliation(actorBare: string, target: string, aff: Affiliation, reason: string | null): void {
    const actorAff = this.affiliation(actorBare);
    const before = this.affiliation(target);
    if (RANK[actorAff] < RANK.admin) throw new StanzaError('forbidden', 'only admins and owners change affiliations');
    // §10.3–10.8: owner and admin affiliations are the owners' to give and take.
    if (actorAff !== 'owner' && (RANK[before] >= RANK.admin || RANK[aff] >= RANK.admin)) {
      throw new StanzaError('not-allowed', 'only owners change owner and admin affiliations');
    }
    // §10.6: a room keeps at least one owner.
    if (before === 'owner' && aff !== 'owner' && [...this.affiliations.values()].filter((a) => a === 'owner').length <= 1) {
      throw new StanzaError('conflict', 'the room must keep an owner');
    }
    if (aff === 'none') this.affiliations.delete(target);
    else this.affiliations.set(target, aff);
    this.changed(this);
    const why = reason === null ? '' : `<reason>${escapeText(reason)}</reason>`;
    for (const occ of [...this.occupants.values()].filter((o) => o.bare === target)) {
      if (aff === 'outcast') {
        // §9.1: banned occupants are removed with status 301.
        this.removeWith(occ, ['301'], why, null);
      } else if (this.config.membersOnly && RANK[aff] < RANK.member) {
        // §9.4: removed from a members-only room by losing membership: 321.
        this.removeWith(occ, ['321'], why, null);
      } else {
        occ.role = this.defaultRole(aff);
        this.broadcastPresence(occ, [], []);
      }
    }
  }

  /** §9.5 / §10.5 …: the JIDs holding an affiliation, as muc#admin items. */
  itemsWithAffiliation(aff: Affiliation): string {
    return [...this.affiliations]
      .filter(([, a]) => a === aff)
      .map(([j, a]) => `<item${attr('affiliation', a)}${attr('jid', j)}/>`)
      .join('');
  }

  /** §8.5 / §9.8: occupants holding a role, as muc#admin items. */
  itemsWithRole(role: Role): string {
    return [...this.occupants.values()]
      .filter((o) => o.role === role)
      .map((o) => `<item${attr('affiliation', this.affiliation(o.bare))}${attr('jid', o.jid)}${attr('nick', o.nick)}${attr('role', o.role)}/>`)
      .join('');
  }

  /** §10.2.1: after a configuration change the occupants hear status 104 (and 172/173 when anonymity changed). */
  configured(before: RoomConfig): void {
    const unlocking = this.locked;
    this.locked = false;
    this.changed(this);
    // §10.1.2/§10.1.3: the initial configuration unlocks the room; there is nobody else to tell.
    if (unlocking) return;
    const codes = ['104'];
    if (before.whois !== this.config.whois) codes.push(this.config.whois === 'anyone' ? '172' : '173');
    for (const o of this.occupants.values()) {
      const sc = codes.map((c) => `<status code='${c}'/>`).join('');
      this.toAll(o, (to) => `<message type='groupchat'${attr('from', this.jid)}${attr('to', to)}><x xmlns='${MUC_USER}'>${sc}</x></message>`, 'message');
    }
    // §10.2 / §9.4: a room that became members-only loses its non-members (status 322).
    if (this.config.membersOnly && !before.membersOnly) {
      for (const occ of [...this.occupants.values()]) if (RANK[this.affiliation(occ.bare)] < RANK.member) this.removeWith(occ, ['322'], '', null);
    }
  }

  /** §10.9: everyone leaves with <destroy/> (alternate venue and reason) in their unavailable presence. */
  destroy(alternate: string | null, reason: string | null): void {
    const d = `<destroy${attr('jid', alternate ?? undefined)}>${reason === null ? '' : `<reason>${escapeText(reason)}</reason>`}</destroy>`;
    for (const o of this.occupants.values()) {
      this.toAll(
        o,
        (to) => `<presence type='unavailable'${attr('from', `${this.jid}/${o.nick}`)}${attr('to', to)}><x xmlns='${MUC_USER}'><item affiliation='none' role='none'/>${d}</x></presence>`,
        'presence',
      );
    }
    this.occupants.clear();
    this.byJid.clear();
  }
}

/** XEP-0334: the sender asked that the message be kept nowhere (no-store, no-permanent-store). */
function noStoreHint(msg: Element): boolean {
  return msg.children.some((c) => typeof c !== 'string' && c.getNS() === HINTS_NS && (c.getName() === 'no-store' || c.getName() === 'no-permanent-store'));
}

/**
 * XEP-0045 Multi-User Chat service on its own subdomain (config `muc`, default
 * conference.<domain>). Stanzas for that domain reach it through the router's 'stanza/remote'
 * hook (the same path as XEP-0114 components), are parsed with ltx (cold path) and handed to the
 * room (src/muc/room.ts); what rooms send goes to local sessions by full JID. Ended sessions
 * leave their rooms through 'session/unbound'.
 *
 * With --workers N > 0 the same service runs on the main thread instead, reached like a
 * component (src/muc/main.ts).
 */
import type { HermodConfig } from '../config/schema.js';
import { ConfigError, StanzaError } from '../errors.js';
import { Jid } from '../jid.js';
import type { Logger, Module, RemoteEvent } from '../router/context.js';
import type { SessionState } from '../router/session.js';
import type { MucStore } from '../storage/types.js';
import { childElements, firstChildElement, iqResult, type Element } from '../xml/element.js';
import { parseExact } from '../xml/exact.js';
import { attr, escapeText } from '../xml/escape.js';
import { blocklistCovers } from '../modules/blocking.js';
import { MAM_NS } from '../modules/mam.js';
import { ROOM_ARCHIVE_FEATURES, RoomArchives } from './archive.js';
import {
  AFFILIATIONS,
  MUC,
  MUC_ADMIN,
  MUC_OWNER,
  MUC_USER,
  ROLES,
  Room,
  bareOf,
  innerXml,
  senderText,
  type Affiliation,
  type HistoryRequest,
  type Kind,
  type Limits,
  type Out,
  type Role,
  type RoomConfig,
  type RoomRecord,
} from './room.js';

const DISCO_INFO = 'http://jabber.org/protocol/disco#info';
const DISCO_ITEMS = 'http://jabber.org/protocol/disco#items';
const XDATA = 'jabber:x:data';
const ROOMCONFIG = 'http://jabber.org/protocol/muc#roomconfig';

export interface MucSettings extends Limits {
  /** The service's domain, e.g. conference.example.org. */
  domain: string;
  /** Rooms the service holds at once (persistent and temporary). */
  maxRooms: number;
  /** Rooms one session may be in at once (default DEFAULT_ROOMS_PER_SESSION). */
  maxRoomsPerSession?: number;
  /**
   * XEP-0313 room archives offered (config muc.archive): rooms may turn archiving on
   * (muc#roomconfig_enablearchiving; new rooms start with `archiveDefault`). Absent: off.
   */
  archive?: boolean;
}

type Reply = (xml: string, kind: Kind) => void;

/** Rooms one session may be in when the settings do not say (ejabberd's max_user_conferences default). */
export const DEFAULT_ROOMS_PER_SESSION = 100;

/** Relayed IQ requests from shared nicks awaiting their answer, service-wide. */
const ASKING_MAX = 10_000;

/**
 * §6.1: the service's features: the protocol, and the room types its owners can choose
 * (§15.4 registered muc_* features), plus XEP-0410's self-ping optimisation.
 */
const SERVICE_FEATURES = [
  DISCO_INFO,
  DISCO_ITEMS,
  MUC,
  'http://jabber.org/protocol/muc#self-ping-optimization',
  'muc_hidden',
  'muc_membersonly',
  'muc_moderated',
  'muc_nonanonymous',
  'muc_open',
  'muc_passwordprotected',
  'muc_persistent',
  'muc_public',
  'muc_semianonymous',
  'muc_temporary',
  'muc_unmoderated',
  'muc_unsecured',
];

export class MucService {
  readonly rooms = new Map<string, Room>();
  /** Full JID → rooms it may be in (checked against the room on use; pruned when the session ends). */
  private readonly joined = new Map<string, Set<Room>>();
  /**
   * IQ requests relayed from a nick that several sessions share: `room/nick` NUL id → the session
   * that asked, so that the answer goes back to it and not to the nick's first session (oldest
   * entries go first beyond ASKING_MAX: an answer that never comes must not pile up).
   */
  private readonly asking = new Map<string, string>();

  constructor(
    readonly settings: MucSettings,
    private readonly out: Out,
    private readonly now: () => Date,
    private readonly store: MucStore | null,
    private readonly log: Logger | null = null,
    /** Where rooms archive (XEP-0313 §5); null when the service offers no archives. */
    private readonly archives: RoomArchives | null = null,
    /** XEP-0191: whether `owner`'s blocklist covers the bare JID `bare`; null: no blocklists. */
    private readonly blocks: ((owner: string, bare: string) => boolean) | null = null,
  ) {
    /** Stored rooms that could not be read: not vanished, so their archives stay for a repair. */
    const unreadable = new Set<string>();
    for (const { jid, data } of store?.list(settings.domain) ?? []) {
      try {
        const room = Room.restore(jid, JSON.parse(data) as RoomRecord, settings, this.outFor(jid), now, (r) => this.persist(r));
        room.archiver = archives;
        this.rooms.set(jid, room);
      } catch (err) {
        unreadable.add(jid);
        this.log?.error({ err, room: jid }, 'stored MUC room unreadable; skipped');
      }
    }
    // XEP-0313 §5: temporary rooms did not survive the restart; neither do their archives.
    archives?.sweep(settings.domain, (room) => this.rooms.has(room) || unreadable.has(room), (removed, err) => {
      if (removed > 0) this.log?.info({ removed }, 'archives of temporary rooms gone with the last run removed');
      // A store closed under the walk (the server stopping) is no failure: the next start goes on.
      if (err && !/closed|not open/.test(err.message)) this.log?.error({ err }, 'sweeping the archives of vanished rooms failed');
    });
  }

  /** A stanza for the service's domain from `from`; errors are thrown as StanzaError (the router replies). */
  handle(from: Jid, el: Element, reply: Reply): void {
    const to = Jid.parse(String(el.attrs.to));
    if (to.local === null) return this.serviceStanza(from, to, el, reply);
    const room = this.rooms.get(to.bare);
    try {
      switch (el.name) {
        case 'presence':
          return this.presence(from, to, el, room, reply);
        case 'message':
          return this.message(from, to, el, room);
        case 'iq':
          return this.iq(from, to, el, room, reply);
      }
    } finally {
      const now = this.rooms.get(to.bare);
      if (now) this.tidy(now);
    }
  }

  /** The session `full` ended: it leaves every room it was in (XEP-0045 §7.14, as unavailable). */
  gone(full: string): void {
    const rooms = this.joined.get(full);
    if (rooms === undefined) return;
    this.joined.delete(full);
    for (const room of rooms) {
      const occ = room.occupantOf(full);
      if (occ) room.leave(occ, full);
      this.tidy(room);
    }
  }

  /** A temporary room is gone with its last occupant (XEP-0045 §10.1.3 / §10.9 implicit destruction). */
  private tidy(room: Room): void {
    if (room.empty && !room.config.persistent && this.rooms.get(room.jid) === room) {
      this.rooms.delete(room.jid);
      this.store?.remove(room.jid);
      this.archives?.remove(room.jid);
    }
  }

  /** A room's output, tagged with its JID (the delivery checks XEP-0191 blocks on it without parsing). */
  private outFor(room: string): Out {
    return (to, xml, kind) => this.out(to, xml, kind, room);
  }

  /**
   * An account was deleted (XEP-0077 removal, hermod deluser): its affiliations but bans end in
   * every room the service holds (users.delete already changed the stored records).
   */
  accountRemoved(bare: string): number {
    let n = 0;
    for (const room of this.rooms.values()) if (room.forgetAccount(bare)) n++;
    return n;
  }

  private persist(room: Room): void {
    if (!this.store) return;
    if (room.config.persistent) this.store.save(room.jid, JSON.stringify(room.record()));
    else this.store.remove(room.jid);
  }

  private track(full: string, room: Room): void {
    let set = this.joined.get(full);
    if (set === undefined) this.joined.set(full, (set = new Set()));
    // Rooms it left, was removed from, or that were destroyed go first: a session that creates
    // and destroys rooms in a loop must not pile up dead rooms here.
    for (const r of set) if (r.occupantOf(full) === undefined) set.delete(r);
    set.add(room);
  }

  /** Rooms session `full` is in now. */
  private roomsOf(full: string): number {
    let n = 0;
    for (const r of this.joined.get(full) ?? []) if (r.occupantOf(full) !== undefined) n++;
    return n;
  }

  /** Rooms `full` is tracked in (tests: the index must stay bounded). */
  trackedRooms(full: string): number {
    return this.joined.get(full)?.size ?? 0;
  }

  // ------------------------------------------------------------------ presence (§7.2, §7.6, §7.14)

  private presence(from: Jid, to: Jid, el: Element, room: Room | undefined, reply: Reply): void {
    const type = el.attrs.type as string | undefined;
    const occ = room?.occupantOf(from.full);
    if (type === 'unavailable' || type === 'error') {
      // §7.14 leaving; an error bounced by the occupant's client also ends its stay.
      if (room && occ) room.leave(occ, from.full, type === 'unavailable' ? (el.getChildText('status') ?? null) : null);
      return;
    }
    if (type !== undefined) return; // subscriptions and probes mean nothing to a room
    // §7.2.1: the nickname is the resource; none is jid-malformed.
    if (to.resource === null) throw new StanzaError('jid-malformed', 'a room nickname is required');
    // By expanded name (a prefixed <u:x xmlns:u=…muc#user> is the same element): the joiner's own
    // muc#user <item jid=…/> would pass for the real JID the room gives (§7.2.3).
    const presence = innerXml(el, (c) => c.getName() === 'x' && (c.getNS() === MUC || c.getNS() === MUC_USER));
    const x = el.getChild('x', MUC);
    if (room && occ) {
      if (occ.nick === to.resource && x !== undefined) room.rejoin(occ, from.full, presence, historyRequest(x.getChild('history')), el.attrs.id as string | undefined);
      else if (occ.nick === to.resource) room.update(occ, presence);
      else room.changeNick(occ, to.resource, presence); // §7.6
      return;
    }
    // Each room keeps the occupant's presence and sends it all traffic: a bound per session keeps
    // one client from making the rooms hold (or hold open) without limit.
    const perSession = this.settings.maxRoomsPerSession ?? DEFAULT_ROOMS_PER_SESSION;
    if (this.roomsOf(from.full) >= perSession) {
      reply(joinRefusal(el, to, from, new StanzaError('resource-constraint', `a session may be in at most ${perSession} rooms`, 'wait')), 'presence');
      return;
    }
    let target = room;
    let created = false;
    if (!target) {
      // §10.1.1: entering a room that does not exist creates it, the creator its owner.
      if (this.rooms.size >= this.settings.maxRooms) {
        reply(joinRefusal(el, to, from, new StanzaError('resource-constraint', `this service holds at most ${this.settings.maxRooms} rooms`)), 'presence');
        return;
      }
      target = new Room(to.bare, this.settings, this.outFor(to.bare), this.now, (r) => this.persist(r));
      target.archiver = this.archives;
      target.affiliations.set(from.bare, 'owner');
      // §10.1.1: locked until configured; a client without MUC support (no <x/>, groupchat 1.0)
      // cannot configure, so it gets an instant room (§10.1.2 behaviour without the round trip).
      target.locked = x !== undefined;
      created = true;
    }
    try {
      target.join(from.full, from.bare, to.resource, presence, {
        password: x?.getChildText('password') ?? null,
        history: historyRequest(x?.getChild('history')),
        created,
        id: el.attrs.id as string | undefined,
      });
    } catch (err) {
      if (!(err instanceof StanzaError)) throw err;
      reply(joinRefusal(el, to, from, err), 'presence');
      return;
    }
    if (created) {
      this.rooms.set(target.jid, target);
      // A new room starts without history: a temporary room of that name that vanished with a
      // restart (rather than with its last occupant) may have left its archive behind.
      this.archives?.remove(target.jid);
    }
    this.track(from.full, target);
  }

  // ------------------------------------------------------------------ messages (§7.4, §7.5, §7.8)

  private message(from: Jid, to: Jid, el: Element, room: Room | undefined): void {
    const type = (el.attrs.type as string | undefined) ?? 'normal';
    if (type === 'error') return; // RFC 6120 §8.3.1: never answered
    if (!room) throw new StanzaError('item-not-found', 'no such room');
    const occ = room.occupantOf(from.full);
    if (to.resource !== null) {
      // §7.5: private messages; a groupchat to one occupant is refused.
      if (type === 'groupchat') throw new StanzaError('bad-request', 'groupchat messages go to the room');
      if (!occ) throw new StanzaError('not-acceptable', 'only occupants send private messages');
      return room.privateMessage(occ, to.resource, el);
    }
    if (type === 'groupchat') {
      // §7.4: only occupants speak in the room.
      if (!occ) throw new StanzaError('not-acceptable', 'you are not in this room');
      return room.groupchat(occ, el, from.full);
    }
    // §7.8.2: a mediated invitation.
    const invite = el.getChild('x', MUC_USER)?.getChild('invite');
    if (invite) {
      if (!occ) throw new StanzaError('not-acceptable', 'only occupants invite');
      const who = Jid.parse(String(invite.attrs.to ?? ''));
      const blocked = this.blocks?.(who.bare, occ.bare) ?? false;
      return room.invite(occ, who.bare, invite.getChildText('reason') ?? null, blocked);
    }
    // §7.8.2: the invitee declines; the room passes it on to the inviter, from the room.
    const decline = el.getChild('x', MUC_USER)?.getChild('decline');
    if (decline) {
      const inviter = Jid.parse(String(decline.attrs.to ?? ''));
      // Only to someone in the room (inviters invite from inside it): otherwise anyone could have
      // the room carry text of theirs to any account, past its blocks, into its offline store.
      if (![...room.occupants.values()].some((o) => o.bare === inviter.bare)) return;
      const reason = decline.getChildText('reason');
      this.out(
        inviter.full,
        `<message${attr('from', room.jid)}${attr('to', inviter.full)}><x xmlns='${MUC_USER}'><decline${attr('from', from.bare)}>` +
          (reason === null ? '' : `<reason>${escapeText(reason)}</reason>`) +
          `</decline></x></message>`,
        'message',
        room.jid,
      );
      return;
    }
    throw new StanzaError('bad-request', 'messages to a room are groupchat, invitations or declines');
  }

  // ------------------------------------------------------------------ IQs

  private iq(from: Jid, to: Jid, el: Element, room: Room | undefined, reply: Reply): void {
    const type = el.attrs.type as string;
    const request = type === 'get' || type === 'set';
    if (to.resource !== null) return this.relayIq(from, to, el, room, request);
    if (!request) return;
    if (!room) throw new StanzaError('item-not-found', 'no such room');
    const payload = firstChildElement(el)!;
    const ns = payload.attrs.xmlns as string | undefined;
    const answer = (xml?: string) => reply(iqResult({ id: (el.attrs.id as string) ?? null, from: to.full, to: from.full }, xml), 'iq');
    const aff = room.affiliation(from.bare);
    if (type === 'get' && ns === DISCO_INFO) {
      // §6.4: a locked room is not there for anyone but its owner.
      if (room.locked && aff !== 'owner') throw new StanzaError('item-not-found', 'no such room');
      if (payload.attrs.node !== undefined) throw new StanzaError('item-not-found', 'no such node');
      return answer(roomInfo(room));
    }
    if (type === 'get' && ns === DISCO_ITEMS) {
      if (room.locked && aff !== 'owner') throw new StanzaError('item-not-found', 'no such room');
      // §6.5: occupants by room JID only; their real JIDs are not disclosed here.
      const items = [...room.occupants.keys()].map((n) => `<item${attr('jid', `${room.jid}/${n}`)}/>`).join('');
      return answer(`<query xmlns='${DISCO_ITEMS}'>${items}</query>`);
    }
    if (ns === MUC_OWNER) return this.owner(from, room, type, payload, answer);
    if (ns === MUC_ADMIN) return this.admin(from, room, type, payload, answer);
    // XEP-0313 §5: the room's archive, while it keeps one (otherwise, like any IQ it does not serve).
    if (ns === MAM_NS && room.archiving && this.archives) {
      return this.archives.iq(room, from, type as 'get' | 'set', payload, (xml) => this.out(from.full, xml, 'message', room.jid), answer);
    }
    throw new StanzaError('service-unavailable');
  }

  /** IQs between occupants go through the room with the sender's room JID (XEP-0045 §7.7 vCard, pings, versions). */
  private relayIq(from: Jid, to: Jid, el: Element, room: Room | undefined, request: boolean): void {
    const sender = room?.occupantOf(from.full);
    const target = room?.occupants.get(to.resource!);
    if (!request && (!room || !sender || !target)) return;
    // XEP-0410 §3.2: a client checks that it is still joined by pinging its own occupant JID;
    // not-acceptable tells it that it is not (and must join again).
    if (!room || !sender) throw new StanzaError('not-acceptable', 'only occupants address occupants');
    if (!target) throw new StanzaError('item-not-found', 'no such occupant');
    if (request && sender === target && firstChildElement(el)?.attrs.xmlns === 'urn:xmpp:ping') {
      // XEP-0410 §3.3 (self-ping optimisation): the service answers for the occupant itself.
      this.out(from.full, iqResult({ id: (el.attrs.id as string) ?? null, from: to.full, to: from.full }), 'iq', room.jid);
      return;
    }
    const id = el.attrs.id as string | undefined;
    let dest = target.jid;
    if (request && sender.sessions.length > 1 && id !== undefined) {
      if (this.asking.size >= ASKING_MAX) this.asking.delete(this.asking.keys().next().value!);
      this.asking.set(`${room.jid}/${sender.nick}\0${id}`, from.full);
    } else if (!request && id !== undefined) {
      // The answer to a request from one of several sessions under the nick goes to that one.
      const key = `${room.jid}/${target.nick}\0${id}`;
      const asker = this.asking.get(key);
      if (asker !== undefined) {
        this.asking.delete(key);
        if (target.sessions.includes(asker)) dest = asker;
      }
    }
    const inner = innerXml(el);
    this.out(
      dest,
      `<iq${attr('type', el.attrs.type as string)}${attr('id', id)}${attr('from', `${room.jid}/${sender.nick}`)}${attr('to', dest)}>${inner}</iq>`,
      'iq',
      room.jid,
    );
  }

  /** §10: the owner's configuration form, its submission, cancellation and §10.9 destruction. */
  private owner(from: Jid, room: Room, type: string, payload: Element, answer: (xml?: string) => void): void {
    if (room.affiliation(from.bare) !== 'owner') throw new StanzaError('forbidden', 'only owners configure the room');
    if (type === 'get') return answer(`<query xmlns='${MUC_OWNER}'>${configForm(room.config, this.settings)}</query>`);
    const destroy = payload.getChild('destroy');
    if (destroy) {
      // §10.9: everyone leaves, the room and its stored state are gone, its archive with them.
      const alt = destroy.attrs.jid as string | undefined;
      room.destroy(alt ?? null, destroy.getChildText('reason') ?? null);
      this.rooms.delete(room.jid);
      this.store?.remove(room.jid);
      this.archives?.remove(room.jid);
      return answer();
    }
    const x = payload.getChild('x', XDATA);
    if (!x) throw new StanzaError('bad-request', 'expected a jabber:x:data form or <destroy/>');
    if (x.attrs.type === 'cancel') {
      // §10.1.3: cancelling the initial configuration destroys the locked room.
      if (room.locked) {
        room.destroy(null, null);
        this.rooms.delete(room.jid);
        this.archives?.remove(room.jid);
      }
      return answer();
    }
    if (x.attrs.type !== 'submit') throw new StanzaError('bad-request', "the form type must be 'submit' or 'cancel'");
    const before = room.config;
    // §10.1.2: an empty submission accepts the defaults (instant room).
    room.config = applyForm(before, x, this.settings);
    room.configured(before);
    answer();
  }

  /** §8, §9, §10: role and affiliation lists and changes. */
  private admin(from: Jid, room: Room, type: string, payload: Element, answer: (xml?: string) => void): void {
    const items = payload.getChildren('item');
    if (items.length === 0) throw new StanzaError('bad-request', 'expected <item/>');
    const actor = room.occupantOf(from.full);
    const actorAff = room.affiliation(from.bare);
    if (type === 'get') {
      const it = items[0]!;
      if (it.attrs.affiliation !== undefined) {
        const a = it.attrs.affiliation as Affiliation;
        if (!AFFILIATIONS.includes(a) || a === 'none') throw new StanzaError('bad-request', 'unknown affiliation');
        // §9.5 / §10.5 / §10.8: admins list every affiliation. In a non-anonymous room the member,
        // admin and owner lists tell nothing the occupants cannot see anyway, so occupants and
        // members may read them too (XEP-0045 as revised in 2024, xsf/xeps#1372; Prosody decides
        // by 'whois' the same way): OMEMO clients (Conversations, Gajim) encrypt to exactly these
        // JIDs. The ban list stays the admins'.
        const mayRead =
          actorAff === 'owner' ||
          actorAff === 'admin' ||
          (a !== 'outcast' && room.config.whois === 'anyone' && (actor !== undefined || actorAff === 'member'));
        if (!mayRead) throw new StanzaError('forbidden', 'only admins list affiliations here');
        return answer(`<query xmlns='${MUC_ADMIN}'>${room.itemsWithAffiliation(a)}</query>`);
      }
      const r = it.attrs.role as Role;
      if (!ROLES.includes(r) || r === 'none') throw new StanzaError('bad-request', 'expected role or affiliation');
      // §8.5: moderators list voices and moderators.
      if (actor?.role !== 'moderator') throw new StanzaError('forbidden', 'only moderators list roles');
      return answer(`<query xmlns='${MUC_ADMIN}'>${room.itemsWithRole(r)}</query>`);
    }
    for (const it of items) {
      const reason = it.getChildText('reason') ?? null;
      if (it.attrs.affiliation !== undefined) {
        const a = it.attrs.affiliation as Affiliation;
        if (!AFFILIATIONS.includes(a)) throw new StanzaError('bad-request', 'unknown affiliation');
        if (it.attrs.jid === undefined) {
          const occ = it.attrs.nick !== undefined ? room.occupants.get(String(it.attrs.nick)) : undefined;
          if (!occ) throw new StanzaError('bad-request', 'an affiliation change names a jid');
          room.setAffiliation(from.bare, occ.bare, a, reason);
        } else {
          room.setAffiliation(from.bare, Jid.parse(String(it.attrs.jid)).bare, a, reason);
        }
        continue;
      }
      const r = it.attrs.role as Role;
      if (!ROLES.includes(r) || it.attrs.nick === undefined) throw new StanzaError('bad-request', 'a role change names a nick and a role');
      if (!actor) throw new StanzaError('forbidden', 'only occupants change roles');
      room.setRole(actor, String(it.attrs.nick), r, reason);
    }
    answer();
  }

  // ------------------------------------------------------------------ the service itself (§6.1–6.3)

  private serviceStanza(from: Jid, to: Jid, el: Element, reply: Reply): void {
    if (el.name !== 'iq') {
      // A session that ended or went unavailable on a shard (--workers N: src/shard/components.ts
      // says so with an unavailable presence to the service itself) leaves its rooms (§7.14).
      if (el.name === 'presence' && el.attrs.type === 'unavailable' && from.resource !== null) return this.gone(from.full);
      if (el.name === 'message' && el.attrs.type !== 'error') throw new StanzaError('service-unavailable');
      return;
    }
    const type = el.attrs.type as string;
    if (type !== 'get' && type !== 'set') return;
    const payload = firstChildElement(el)!;
    const ns = payload.attrs.xmlns as string | undefined;
    const answer = (xml: string) => reply(iqResult({ id: (el.attrs.id as string) ?? null, from: to.full, to: from.full }, xml), 'iq');
    if (type === 'get' && to.resource === null && payload.attrs.node === undefined) {
      if (ns === DISCO_INFO) {
        // §6.1: the service's identity and features.
        return answer(
          `<query xmlns='${DISCO_INFO}'><identity category='conference' type='text' name='Chatrooms'/>` +
            SERVICE_FEATURES.map((f) => `<feature${attr('var', f)}/>`).join('') +
            `</query>`,
        );
      }
      if (ns === DISCO_ITEMS) {
        // §6.3: public rooms (hidden and locked ones are not listed).
        const items = [...this.rooms.values()]
          .filter((r) => r.config.public && !r.locked)
          .sort((a, b) => (a.jid < b.jid ? -1 : 1))
          .map((r) => `<item${attr('jid', r.jid)}${attr('name', r.config.name || undefined)}/>`)
          .join('');
        return answer(`<query xmlns='${DISCO_ITEMS}'>${items}</query>`);
      }
    }
    throw new StanzaError('service-unavailable');
  }
}

/**
 * §7.2.6–7.2.10: a refused join is an error presence with the MUC <x/> beside <error/>, which is
 * how clients (slixmpp's join_muc_wait among them) tell it from other errors; RFC 6120 §8.3.1: it
 * carries the join's id (Smack's MUC join matches its error by it).
 */
function joinRefusal(el: Element, to: Jid, from: Jid, err: StanzaError): string {
  return `<presence type='error'${attr('id', el.attrs.id as string | undefined)}${attr('from', to.full)}${attr('to', from.full)}><x xmlns='${MUC}'/>${err.toXml()}</presence>`;
}

/** §7.2.14: <history maxstanzas maxchars seconds since/>; unreadable values are ignored. */
function historyRequest(h: Element | undefined): HistoryRequest {
  const req: HistoryRequest = {};
  if (!h) return req;
  const int = (name: string): number | undefined => {
    const v = h.attrs[name] as string | undefined;
    return v !== undefined && /^\d+$/.test(v) ? Number(v) : undefined;
  };
  req.maxstanzas = int('maxstanzas');
  req.maxchars = int('maxchars');
  req.seconds = int('seconds');
  const since = h.attrs.since as string | undefined;
  if (since !== undefined && !Number.isNaN(Date.parse(since))) req.since = new Date(since);
  return req;
}

/** §6.4: room identity and the features that describe its configuration. */
function roomInfo(room: Room): string {
  const c = room.config;
  const features = [
    DISCO_INFO,
    MUC,
    c.persistent ? 'muc_persistent' : 'muc_temporary',
    c.membersOnly ? 'muc_membersonly' : 'muc_open',
    c.public ? 'muc_public' : 'muc_hidden',
    c.moderated ? 'muc_moderated' : 'muc_unmoderated',
    c.password !== null ? 'muc_passwordprotected' : 'muc_unsecured',
    c.whois === 'anyone' ? 'muc_nonanonymous' : 'muc_semianonymous',
    // XEP-0313 'Determining support': only while the room archives.
    ...(room.archiving ? ROOM_ARCHIVE_FEATURES : []),
  ];
  const info =
    `<x xmlns='${XDATA}' type='result'>` +
    field('FORM_TYPE', 'hidden', 'http://jabber.org/protocol/muc#roominfo') +
    field('muc#roominfo_description', 'text-single', c.description, 'Description') +
    field('muc#roominfo_occupants', 'text-single', String(room.occupants.size), 'Number of occupants') +
    field('muc#roominfo_subject', 'text-single', room.subject?.text ?? '', 'Subject') +
    `</x>`;
  return (
    `<query xmlns='${DISCO_INFO}'><identity category='conference' type='text'${attr('name', c.name || room.jid.split('@')[0])}/>` +
    features.map((f) => `<feature${attr('var', f)}/>`).join('') +
    info +
    `</query>`
  );
}

function field(name: string, type: string, value: string | string[], label?: string, options = ''): string {
  const values = (Array.isArray(value) ? value : [value]).map((v) => `<value>${escapeText(v)}</value>`).join('');
  return `<field${attr('var', name)}${attr('type', type)}${attr('label', label)}>${values}${options}</field>`;
}

const bool = (b: boolean) => (b ? '1' : '0');

/** §10.2 / §15.5.3: the configuration form with the room's current values. */
function configForm(c: RoomConfig, limits: MucSettings): string {
  const sizes = [...new Set([10, 20, 30, 50, 100, 200, 500, 1000, c.maxUsers].filter((n) => n <= limits.maxOccupants))].sort((a, b) => a - b);
  const opt = (v: string, label: string) => `<option${attr('label', label)}><value>${escapeText(v)}</value></option>`;
  return (
    `<x xmlns='${XDATA}' type='form'><title>Room configuration</title>` +
    field('FORM_TYPE', 'hidden', ROOMCONFIG) +
    field('muc#roomconfig_roomname', 'text-single', c.name, 'Natural-language room name') +
    field('muc#roomconfig_roomdesc', 'text-single', c.description, 'Short description of the room') +
    field('muc#roomconfig_persistentroom', 'boolean', bool(c.persistent), 'Make the room persistent') +
    field('muc#roomconfig_publicroom', 'boolean', bool(c.public), 'List the room in the directory') +
    field('muc#roomconfig_membersonly', 'boolean', bool(c.membersOnly), 'Make the room members-only') +
    field('muc#roomconfig_moderatedroom', 'boolean', bool(c.moderated), 'Make the room moderated') +
    field('muc#roomconfig_changesubject', 'boolean', bool(c.changeSubject), 'Allow occupants to change the subject') +
    field('muc#roomconfig_passwordprotectedroom', 'boolean', bool(c.password !== null), 'Password required to enter') +
    field('muc#roomconfig_roomsecret', 'text-private', c.password ?? '', 'Password') +
    field('muc#roomconfig_maxusers', 'list-single', String(c.maxUsers), 'Maximum number of occupants', sizes.map((n) => opt(String(n), String(n))).join('')) +
    field('muc#roomconfig_whois', 'list-single', c.whois, 'Who may discover real JIDs', opt('moderators', 'Moderators only') + opt('anyone', 'Anyone')) +
    // XEP-0313 §5 room archives, under the name Prosody and ejabberd give the field.
    (limits.archive ? field('muc#roomconfig_enablearchiving', 'boolean', bool(c.archive), 'Archive messages (XEP-0313)') : '') +
    `</x>`
  );
}

/** §10.2: read a submitted form over the current configuration; bad values are not-acceptable. */
export function applyForm(current: RoomConfig, x: Element, limits: Limits): RoomConfig {
  const c: RoomConfig = { ...current };
  let protect: boolean | null = null;
  let secret: string | null = null;
  for (const f of childElements(x)) {
    if (f.name !== 'field') continue;
    const v = f.getChildText('value') ?? '';
    const flag = (): boolean => {
      if (v === '1' || v === 'true') return true;
      if (v === '0' || v === 'false' || v === '') return false;
      throw new StanzaError('not-acceptable', `${String(f.attrs.var)} must be a boolean`);
    };
    switch (f.attrs.var) {
      case 'muc#roomconfig_roomname':
        c.name = v;
        break;
      case 'muc#roomconfig_roomdesc':
        c.description = v;
        break;
      case 'muc#roomconfig_persistentroom':
        c.persistent = flag();
        break;
      case 'muc#roomconfig_publicroom':
        c.public = flag();
        break;
      case 'muc#roomconfig_membersonly':
        c.membersOnly = flag();
        break;
      case 'muc#roomconfig_moderatedroom':
        c.moderated = flag();
        break;
      case 'muc#roomconfig_changesubject':
        c.changeSubject = flag();
        break;
      case 'muc#roomconfig_passwordprotectedroom':
        protect = flag();
        break;
      case 'muc#roomconfig_roomsecret':
        secret = v;
        break;
      case 'muc#roomconfig_maxusers': {
        const n = Number(v);
        if (!/^\d+$/.test(v) || n < 1 || n > limits.maxOccupants) {
          throw new StanzaError('not-acceptable', `maxusers must be 1-${limits.maxOccupants}`);
        }
        c.maxUsers = n;
        break;
      }
      case 'muc#roomconfig_whois':
        if (v !== 'anyone' && v !== 'moderators') throw new StanzaError('not-acceptable', 'whois is anyone or moderators');
        c.whois = v;
        break;
      case 'muc#roomconfig_enablearchiving':
        c.archive = flag();
        break;
    }
  }
  if (protect === false) c.password = null;
  else if (protect === true || (protect === null && c.password !== null && secret !== null)) {
    const pw = secret ?? c.password;
    if (!pw) throw new StanzaError('not-acceptable', 'a password-protected room needs muc#roomconfig_roomsecret');
    c.password = pw;
  }
  return c;
}

/** The router module: registers the service domain, routes its stanzas, ends stays with sessions. */
export function muc(settings: MucSettings): Module {
  return {
    name: 'muc',
    install(ctx) {
      const deliver: Out = (to, xml, kind, room) => {
        // XEP-0191: nothing from a room (or the service) the addressee blocks, or that blocks it;
        // with --workers N the router's own checks do this (src/muc/main.ts routes through it).
        const from = room ?? senderText(xml);
        if (from !== null && ctx.blocked(bareOf(from), bareOf(to))) return;
        if (to.includes('/')) return void ctx.sessions.full(to)?.deliver(xml, kind);
        // Invitations and declines (§7.8.2) go to an account's bare JID: RFC 6121 §8.5.2, its
        // available resources, else offline storage (nothing for other domains: no s2s).
        if (kind !== 'message' || ctx.deliverToAvailable(to, xml, 'message') > 0) return;
        if (ctx.storage.users.exists(to)) ctx.storage.offline.push(to, xml, ctx.now());
      };
      const service = new MucService(
        settings,
        deliver,
        () => ctx.now(),
        ctx.storage.muc ?? null,
        ctx.log,
        settings.archive ? new RoomArchives(ctx.storage.mam, () => ctx.now()) : null,
        (owner, bare) => blocklistCovers(ctx.storage.blocklist, owner, bare),
      );
      // XEP-0045 §6.1: clients find the service in the server's disco#items.
      ctx.features.addItem(settings.domain);
      // XEP-0077 §3.2 removal, and hermod deluser through the admin socket (src/server.ts).
      ctx.hooks.on('account/removed', (ev: { account: string }) => {
        service.accountRemoved(ev.account);
      });
      ctx.hooks.on(
        'stanza/remote',
        (ev: RemoteEvent) => {
          if (ev.to.domain !== settings.domain) return false;
          const session: SessionState = ev.session;
          // parseExact: the room re-serialises what it relays; XML's normalisations must hold (src/xml/exact.ts).
          service.handle(session.jid, parseExact(ev.view.toString()), (xml, kind) => session.deliver(xml, kind));
          return true;
        },
        20,
      );
      // XEP-0045 §7.14 / RFC 6121 §4.5.2: a session that ends, or that broadcasts unavailable
      // presence (the rooms got its directed presence), leaves every room it was in.
      const leaveAll = (ev: { session: SessionState }) => {
        service.gone(ev.session.jid.full);
        return false;
      };
      ctx.hooks.on('session/unbound', leaveAll);
      ctx.hooks.on('presence/unavailable', leaveAll);
    },
  };
}

/**
 * The service settings from the configuration; null when `muc.enabled` is off. Refuses a
 * service domain equal to the server's (its stanzas would never leave the local router) or to
 * a component's.
 */
export function mucSettingsOf(config: HermodConfig): MucSettings | null {
  if (!config.muc.enabled) return null;
  const domain = config.muc.domain ?? `conference.${config.domain}`;
  if (domain === config.domain) throw new ConfigError(`muc.domain cannot be the server's own domain ${domain}`, 'muc.domain');
  if (domain in config.components) throw new ConfigError(`muc.domain ${domain} is also a configured component`, 'muc.domain');
  const { maxRooms, maxRoomsPerSession, maxOccupants, historySize, maxMessageBytes, archive, archiveDefault } = config.muc;
  return { domain, maxRooms, maxRoomsPerSession, maxOccupants, historySize, maxMessageBytes, archive, archiveDefault };
}

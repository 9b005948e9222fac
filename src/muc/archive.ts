/**
 * XEP-0313 room archives (§5 'Querying a MUC archive', business rules 'MUC Archives') with
 * XEP-0359 stanza ids by the room's JID.
 *
 * A room that archives (muc#roomconfig_enablearchiving) hands every groupchat message with a
 * body, and every subject change, to `append()` as it broadcasts it (src/muc/room.ts): stored
 * once, from the occupant JID and without a 'to', with the sending session's real JID beside it
 * (storage column real_jid, schema 8). The store is the user archives' one (the owner is the
 * room's bare JID): the same batched writer thread, the same ids, the same retention
 * (mam.max_age, mam.max_per_user per archive).
 *
 * Queries are IQs to the room's bare JID with the user archive's form, paging and #extended
 * fields. Access follows the right to enter at the time of the query; real JIDs go only to
 * those the room lets see them at that time (non-anonymous rooms, moderators).
 */
import { StanzaError } from '../errors.js';
import { Jid } from '../jid.js';
import {
  FORM_FIELDS,
  MAM_EXTENDED,
  MAX_PAGE,
  MAM_NS,
  SID_NS,
  finXml,
  metadataXml,
  pageOrder,
  queryArchive,
  readQuery,
  resultXml,
} from '../modules/mam.js';
import { archiveIds, archiveIdTime, type ArchivedMessage, type ArchiveStore } from '../storage/archive.js';
import type { Element } from '../xml/element.js';
import { attr } from '../xml/escape.js';
import { parseElement } from '../xml/element.js';
import { MUC_USER, roomStanzaId, type Room, type RoomArchiver } from './room.js';

const DATA_NS = 'jabber:x:data';
/** Archive owners looked at per timer turn by sweep(). */
const SWEEP_SLICE = 500;

/** XEP-0313 'Determining support' and XEP-0359 §4 on the room's disco#info, while it archives. */
export const ROOM_ARCHIVE_FEATURES = [MAM_NS, MAM_EXTENDED, SID_NS];

export class RoomArchives implements RoomArchiver {
  /** One id source for the service: ids never repeat within an archive (XEP-0313 'IDs'). */
  private readonly nextId = archiveIds();

  constructor(
    private readonly store: ArchiveStore,
    private readonly now: () => Date,
  ) {}

  append(room: string, message: { nick: string; real: string; stanza: string }): string {
    const id = this.nextId(this.now());
    this.store.append({
      owner: room,
      id,
      stamp: new Date(archiveIdTime(id)),
      with: `${room}/${message.nick}`,
      stanza: message.stanza,
      real: message.real,
    });
    return id;
  }

  /** XEP-0045 §7.2.14 history of a room restored at start: its newest `n` archived messages with a body. */
  recent(room: string, n: number): { head: string; body: string; stamp: Date }[] {
    // Subject changes are archived too but are no history (XEP-0045 §7.2.14): read some more.
    const page = this.store.query(room, { max: Math.min(2 * n, MAX_PAGE), before: '', room: true });
    const out: { head: string; body: string; stamp: Date }[] = [];
    for (const m of page.items) {
      // Stored as the room wrote it: its start tag ends at the first '>' (attr() escapes any other).
      const open = m.stanza.indexOf('>');
      const close = m.stanza.lastIndexOf('</message>');
      if (open < 0 || close < open || parseElement(m.stanza).getChild('body') === undefined) continue;
      out.push({ head: m.stanza.slice(0, open), body: m.stanza.slice(open + 1, close) + roomStanzaId(room, m.id), stamp: m.stamp });
    }
    return out.slice(-n);
  }

  /** The room is destroyed, or a new room takes a name a vanished temporary room had: its archive goes. */
  remove(room: string): void {
    this.store.deleteOwner?.(room);
  }

  /**
   * After a start: the archives of temporary rooms that vanished with the previous run (not with
   * their last occupant, which removes them at once) are deleted, every room archive of `domain`
   * whose room does not exist (`exists`, asked when the walk reaches it) going. The walk over the
   * archive owners takes one index seek per owner, accounts included, so it runs in slices of
   * SWEEP_SLICE on timers: a large server starts serving at once.
   */
  sweep(domain: string, exists: (room: string) => boolean, done?: (removed: number, err?: Error) => void): void {
    const next = this.store.nextOwner?.bind(this.store);
    if (next === undefined) return done?.(0);
    const suffix = `@${domain}`;
    let after = '';
    let removed = 0;
    const slice = (): void => {
      try {
        for (let i = 0; i < SWEEP_SLICE; i++) {
          const owner = next(after);
          if (owner === null) return done?.(removed);
          after = owner;
          if (owner.endsWith(suffix) && !exists(owner)) {
            this.store.deleteOwner?.(owner);
            removed++;
          }
        }
      } catch (err) {
        // Most likely the store closed under the walk (the server stopping): what is left waits
        // for the next start.
        return done?.(removed, err as Error);
      }
      setTimeout(slice, 0).unref();
    };
    setTimeout(slice, 0).unref();
  }

  /**
   * An IQ get or set in urn:xmpp:mam:2 to the room's bare JID. Result messages go through `send`
   * (to the asking session), then `answer` carries the IQ result.
   */
  iq(room: Room, from: Jid, type: 'get' | 'set', payload: Element, send: (xml: string) => void, answer: (xml: string) => void): void {
    // By expanded name: the hook matched the namespace, a prefix is the client's choice.
    const name = payload.getName();
    if (type === 'get' && name === 'query') {
      // XEP-0313 'Retrieving form fields': the same form as the user archive.
      return answer(`<query xmlns='${MAM_NS}'><x xmlns='${DATA_NS}' type='form'>${FORM_FIELDS}</x></query>`);
    }
    if (type === 'get' && name === 'metadata') {
      mayRead(room, from);
      return answer(metadataXml(this.store.bounds(room.jid)));
    }
    // XEP-0441 preferences belong to accounts; a room's archiving is its configuration.
    if (name === 'prefs') throw new StanzaError('feature-not-implemented', 'a room archive has no preferences; its owners configure archiving');
    if (type !== 'set' || name !== 'query') throw new StanzaError('bad-request', `unexpected <${payload.name}/>`);
    if (payload.attrs.node !== undefined) throw new StanzaError('item-not-found', 'no such node');
    mayRead(room, from);
    const { query, flip } = readQuery(payload);
    query.room = true;
    const real = room.mayKnowRealJids(from.full, from.bare);
    if (query.with !== undefined) {
      const jid = Jid.parse(query.with);
      if (jid.bare === room.jid) {
        // An occupant JID: that nick's messages; the room's own JID: all of them.
        if (jid.resource === null) delete query.with;
      } else {
        // XEP-0313 'Filtering by JID': an item matches by its publisher, which only those who
        // may already know publishers can search by (not a participant of a semi-anonymous room).
        if (!real) throw new StanzaError('forbidden', 'only those who may see real JIDs in this room filter by them');
        query.real = jid.full;
        delete query.with;
      }
    }
    const page = queryArchive(this.store, room.jid, query);
    const queryid = payload.attrs.queryid as string | undefined;
    for (const m of pageOrder(page, flip)) send(resultXml(room.jid, from.full, queryid, m, real ? withRealJid(m) : m.stanza));
    answer(finXml(page));
  }
}

/**
 * XEP-0313 'MUC Archives': the archive is open to whoever may enter the room now — anyone but
 * outcasts in an open room, members and above in a members-only one (XEP-0045 §7.2.6), and in a
 * password-protected room (§7.2.5) those who hold a membership or are in it, having given the
 * password. XEP-0313 'Data privacy': refused access is 'forbidden'. A room still locked for its
 * owner's configuration (§10.1.1) does not exist for anyone else.
 */
function mayRead(room: Room, from: Jid): void {
  const aff = room.affiliation(from.bare);
  if (room.locked && aff !== 'owner') throw new StanzaError('item-not-found', 'no such room');
  if (aff === 'outcast') throw new StanzaError('forbidden', 'you are banned from this room');
  const member = aff === 'member' || aff === 'admin' || aff === 'owner';
  if (room.config.membersOnly && !member) throw new StanzaError('forbidden', "this members-only room's archive is for its members");
  if (room.config.password !== null && !member && room.occupantOf(from.full) === undefined) {
    throw new StanzaError('forbidden', "this password-protected room's archive is for those in it");
  }
}

/**
 * XEP-0313 'MUC Archives': the sender's real JID as in non-anonymous presence (XEP-0045 §7.2.4),
 * in a muc#user <x/> — the stored message has none of its own (stripped when archived).
 */
function withRealJid(m: ArchivedMessage): string {
  const end = m.stanza.lastIndexOf('</message>');
  if (m.real === undefined || end < 0) return m.stanza;
  return `${m.stanza.slice(0, end)}<x xmlns='${MUC_USER}'><item${attr('jid', m.real)}/></x>${m.stanza.slice(end)}`;
}

/**
 * XEP-0012 Last Activity (jabber:iq:last).
 *  - to the server ('Server and Component Query'): seconds since the server started (its uptime);
 *  - to an account's bare JID, or with no 'to' for one's own account ('Offline User Query'): the server answers
 *    for the account and never passes the query to a resource. A requester the account does not
 *    let see its presence (RFC 6121: not in its roster with subscription 'from' or 'both') gets
 *    forbidden. While the account has an available resource the answer is 0 seconds; otherwise
 *    the seconds since it went offline, with the status text of its last unavailable presence;
 *  - to a full JID ('Online User Query', the client's idle time): routed to that client like any IQ.
 *
 * "Went offline" is recorded when the account's last available resource sends unavailable
 * presence (time and status) or, without that, when its last session ends (time, no status).
 * The record is one small document in the per-account XML store (key 'last'), so it survives
 * restarts and goes with the account; one write per logout, none while other resources stay,
 * deferred to the end of the turn (XmlStore.setSoon) so that a storm's logouts share a commit.
 */
import { StanzaError } from '../errors.js';
import type { IqEvent, Module, PresenceAvailableEvent } from '../router/context.js';
import type { SessionState } from '../router/session.js';
import { sendsPresence } from '../router/subscription.js';
import { childElements, parseElement } from '../xml/element.js';
import { attr, escapeText } from '../xml/escape.js';

export const LAST_NS = 'jabber:iq:last';

/** The per-account XML store key of the record. */
export const LAST_KEY = 'last';

/** SessionState.data key: this session already recorded the account's logout (a string, so shard mirrors could carry it). */
const RECORDED = 'last:recorded';

export interface LastActivity {
  /** When the account's last available resource went away. */
  stamp: Date;
  /** The <status/> of its unavailable presence; '' when there was none. */
  status: string;
}

export function encodeLast(last: LastActivity): string {
  return `<last xmlns='${LAST_NS}'${attr('stamp', last.stamp.toISOString())}>${escapeText(last.status)}</last>`;
}

/** Null for a record this version cannot read (it is then as if none were stored). */
export function decodeLast(doc: string): LastActivity | null {
  try {
    const el = parseElement(doc);
    const stamp = new Date(String(el.attrs.stamp ?? ''));
    return Number.isNaN(stamp.getTime()) ? null : { stamp, status: el.getText() };
  } catch {
    return null;
  }
}

/**
 * RFC 6121 §4.7.2.2: a presence may carry several <status/>, one per xml:lang; the one without a
 * language tag is the default, else the first.
 */
export function statusOf(presence: string): string {
  const statuses = childElements(parseElement(presence)).filter((c) => c.name === 'status');
  const plain = statuses.find((s) => s.attrs['xml:lang'] === undefined) ?? statuses[0];
  return plain ? plain.getText() : '';
}

/** Seconds from `from` to `to`, never negative (a clock stepped back must not yield '-3'). */
const secondsBetween = (from: number, to: number): number => Math.max(0, Math.floor((to - from) / 1000));

/**
 * Sessions bound on another shard are mirrors here (src/shard/mirror.ts: negative ids); their
 * own shard records their logout, so a mirror's unbind must not write a second record.
 */
const isMirror = (st: SessionState): boolean => st.session.id < 0;

export const last: Module = {
  name: 'last',
  install(ctx) {
    const started = ctx.now().getTime();
    // 'Determining Support': advertised by the server, and by every account's bare JID, which the
    // server answers for.
    ctx.features.add(LAST_NS);
    ctx.features.addAccountFeature(LAST_NS);

    const anyAvailable = (bare: string, except?: SessionState): boolean =>
      ctx.sessions.bare(bare).some((s) => s !== except && s.available);
    // A logout is written with the other logouts of its event-loop turn (one transaction per
    // turn in a reconnect storm instead of a commit per stream); reads see it at once.
    const store = ctx.storage.xml;
    const record = (bare: string, status: string): void => {
      const doc = encodeLast({ stamp: ctx.now(), status });
      if (store.setSoon) store.setSoon(bare, LAST_KEY, doc);
      else store.set(bare, LAST_KEY, doc);
    };
    const expectQuery = (ev: IqEvent): void => {
      if (ev.payload.getName() !== 'query') throw new StanzaError('bad-request', 'expected <query/>');
    };

    // 'Server and Component Query': a server's last activity is its uptime.
    ctx.hooks.on(`iq-get/host/${LAST_NS}`, (ev: IqEvent) => {
      expectQuery(ev);
      ev.reply(`<query xmlns='${LAST_NS}'${attr('seconds', String(secondsBetween(started, ctx.now().getTime())))}/>`);
      return true;
    });

    // 'Offline User Query': the server answers for the account itself (own account: 'self';
    // another: 'bare').
    const account = (ev: IqEvent) => {
      expectQuery(ev);
      const owner = ev.to!.bare;
      const requester = ev.session!.bare;
      // 'Offline User Query': only entities allowed to see the account's presence (RFC 6121 §3:
      // subscription 'from' or 'both' in the account's roster) learn when it was last active.
      if (requester !== owner && !sendsPresence(ctx.storage.rosters.get(owner, requester)?.subscription ?? 'none')) {
        throw new StanzaError('forbidden', 'not subscribed to the presence of this account');
      }
      // An account with an available resource is active now: 0 seconds (how long a client has been
      // idle is that client's to tell, 'Online User Query').
      if (anyAvailable(owner)) {
        ev.reply(`<query xmlns='${LAST_NS}' seconds='0'/>`);
        return true;
      }
      const doc = ctx.storage.xml.get(owner, LAST_KEY);
      const rec = doc === null ? null : decodeLast(doc);
      if (rec === null) throw new StanzaError('item-not-found', 'no last activity recorded for this account');
      const seconds = attr('seconds', String(secondsBetween(rec.stamp.getTime(), ctx.now().getTime())));
      ev.reply(rec.status === '' ? `<query xmlns='${LAST_NS}'${seconds}/>` : `<query xmlns='${LAST_NS}'${seconds}>${escapeText(rec.status)}</query>`);
      return true;
    };
    ctx.hooks.on(`iq-get/self/${LAST_NS}`, account);
    ctx.hooks.on(`iq-get/bare/${LAST_NS}`, account);

    // The account's last available resource going unavailable: the status it left with.
    ctx.hooks.on('presence/unavailable', (ev: PresenceAvailableEvent) => {
      const st = ev.session;
      if (anyAvailable(st.bare, st)) return;
      // Most unavailable presence carries no status: a search of the text spares parsing it.
      const xml = ev.view.toString();
      record(st.bare, xml.includes('<status') ? statusOf(xml) : '');
      st.data.set(RECORDED, '1');
    });
    // Available again: its eventual logout is a new one to record.
    ctx.hooks.on('presence/available', (ev: PresenceAvailableEvent) => {
      ev.session.data.delete(RECORDED);
    });
    // A session ending without unavailable presence first (closed stream, broken connection).
    ctx.hooks.on('session/unbound', (ev: { session: SessionState }) => {
      const st = ev.session;
      if (isMirror(st) || st.data.has(RECORDED) || anyAvailable(st.bare)) return;
      record(st.bare, '');
    });
  },
};

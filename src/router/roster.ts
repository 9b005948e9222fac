/**
 * Roster item serialisation and roster pushes (RFC 6121 §2.1.2, §2.1.6), shared by the roster
 * module and the subscription logic of the router.
 */
import { StanzaError } from '../errors.js';
import type { RosterItem } from '../storage/types.js';
import type { RouterContext } from './context.js';
import { attr, escapeText } from '../xml/escape.js';

export const ROSTER_NS = 'jabber:iq:roster';

/** RFC 6121 §2.1.2: <item jid name subscription ask approved><group/>…</item> */
export function rosterItemXml(item: RosterItem | { jid: string; subscription: 'remove' }): string {
  if (item.subscription === 'remove') return `<item${attr('jid', item.jid)} subscription='remove'/>`;
  const full = item as RosterItem;
  const open =
    `<item${attr('jid', full.jid)}${attr('name', full.name)} subscription='${full.subscription}'` +
    (full.ask ? ` ask='subscribe'` : '') +
    // §2.1.2.1: approved='true' only while the pre-approval is still unused.
    (full.approved && full.subscription !== 'from' && full.subscription !== 'both' ? ` approved='true'` : '');
  if (full.groups.length === 0) return `${open}/>`;
  return `${open}>${full.groups.map((g) => `<group>${escapeText(g)}</group>`).join('')}</item>`;
}

let pushCounter = 0;

/** RFC 6121 §2.1.6: <iq type='set' to=full id><query ver><item/></query></iq>. */
export function rosterPushXml(to: string, itemXml: string, version: number | null): string {
  pushCounter = (pushCounter + 1) % 0x7fffffff;
  return (
    `<iq type='set'${attr('to', to)} id='push${pushCounter.toString(36)}'>` +
    `<query xmlns='${ROSTER_NS}'${version === null ? '' : attr('ver', String(version))}>${itemXml}</query></iq>`
  );
}

/** RFC 6121 §2.3.3: refuse a new item once the roster is full. */
export function checkRosterRoom(ctx: Pick<RouterContext, 'storage' | 'maxRosterItems'>, owner: string): void {
  if (ctx.storage.rosters.list(owner).length >= ctx.maxRosterItems) {
    throw new StanzaError('resource-constraint', `a roster holds at most ${ctx.maxRosterItems} items`);
  }
}

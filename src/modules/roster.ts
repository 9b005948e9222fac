/**
 * RFC 6121 §2: roster get, set, remove and pushes, with versioning (§2.6).
 */
import { StanzaError } from '../errors.js';
import { Jid } from '../jid.js';
import type { IqEvent, Module, RouterContext } from '../router/context.js';
import { ROSTER_NS, checkRosterRoom, rosterItemXml, rosterPushXml } from '../router/roster.js';
import type { RosterItem } from '../storage/types.js';
import { childElements, type Element } from '../xml/element.js';

/**
 * §2.3.3's "server-configured limits" on a roster item: without them one account could store a
 * quarter-megabyte item a thousand times over, and every roster get and push would carry it.
 */
const MAX_ROSTER_NAME = 1024;
const MAX_GROUP_NAME = 1024;
const MAX_GROUPS = 100;

/** §2.1.2.3 / §2.3.3: group names are non-empty, unique within the item, and bounded. */
function readGroups(item: Element): string[] {
  const children = item.getChildren('group', ROSTER_NS);
  if (children.length > MAX_GROUPS) throw new StanzaError('not-acceptable', `at most ${MAX_GROUPS} groups per item`);
  const groups = new Set<string>();
  for (const g of children) {
    const name = g.getText();
    if (name === '') throw new StanzaError('not-acceptable', 'empty group name');
    if (name.length > MAX_GROUP_NAME) throw new StanzaError('not-acceptable', `group name longer than ${MAX_GROUP_NAME} characters`);
    if (groups.has(name)) throw new StanzaError('bad-request', `duplicate group '${name}'`);
    groups.add(name);
  }
  return [...groups];
}

function get(ctx: RouterContext, ev: IqEvent): boolean {
  const st = ev.session!;
  // §2.1.6: from now on this resource receives roster pushes.
  st.interested = true;
  const ver = ev.payload.attrs.ver as string | undefined;
  const current = ctx.storage.rosters.version(st.bare);
  // §2.6.3: the client's cached version is current — an empty result, later changes as pushes.
  if (ver !== undefined && ver !== '' && ver === String(current)) {
    ev.reply();
    return true;
  }
  // §2.6.3: an older version the store can still account for — an empty result, then one push
  // per item that changed since, oldest first; otherwise the whole roster below.
  const cached = ver !== undefined && /^[0-9]{1,15}$/.test(ver) ? ctx.storage.rosters.changesSince(st.bare, Number(ver)) : null;
  if (cached) {
    ev.reply();
    for (const change of cached.changes) {
      const itemXml = rosterItemXml('item' in change ? change.item : { jid: change.removed, subscription: 'remove' });
      st.deliver(rosterPushXml(st.jid.full, itemXml, change.version), 'iq');
    }
    return true;
  }
  const items = ctx.storage.rosters.list(st.bare).map(rosterItemXml).join('');
  const verAttr = ver === undefined ? '' : ` ver='${current}'`;
  ev.reply(`<query xmlns='${ROSTER_NS}'${verAttr}>${items}</query>`);
  return true;
}

function set(ctx: RouterContext, ev: IqEvent): boolean {
  const st = ev.session!;
  const items = childElements(ev.payload);
  // §2.3.3: exactly one <item/>, by expanded name (Namespaces in XML §6: <r:item/> under
  // xmlns:r='jabber:iq:roster' is the same element; an <item/> of another namespace is not).
  if (items.length !== 1 || items[0]!.getName() !== 'item' || items[0]!.getNS() !== ROSTER_NS) {
    throw new StanzaError('bad-request', 'a roster set carries exactly one item');
  }
  const item = items[0]!;
  const jidText = item.attrs.jid as string | undefined;
  if (!jidText) throw new StanzaError('bad-request', 'item without jid');
  const contact = Jid.parse(jidText).toBare();
  const rosters = ctx.storage.rosters;

  if (item.attrs.subscription === 'remove') {
    // §2.5.2: cancel both directions of the subscription, then delete and push the removal.
    const existing = rosters.get(st.bare, contact.bare);
    if (!existing) throw new StanzaError('item-not-found', 'no such roster item');
    const account = st.jid.toBare();
    const pendingIn = rosters.getPending(st.bare, contact.bare) !== null;
    if (existing.subscription === 'from' || existing.subscription === 'both' || pendingIn) {
      ctx.subscription(account, contact, 'unsubscribed');
    }
    if (existing.subscription === 'to' || existing.subscription === 'both' || existing.ask) {
      ctx.subscription(account, contact, 'unsubscribe');
    }
    const ver = rosters.remove(st.bare, contact.bare);
    if (ver !== null) ctx.pushRoster(st.bare, { jid: contact.bare, subscription: 'remove' }, ver);
    ev.reply();
    return true;
  }

  // The item itself is checked first: a malformed one is refused whatever room is left.
  const name = (item.attrs.name as string | undefined) ?? null;
  if (name !== null && name.length > MAX_ROSTER_NAME) {
    throw new StanzaError('not-acceptable', `name longer than ${MAX_ROSTER_NAME} characters`);
  }
  const groups = readGroups(item);
  // §2.1.2.5: subscription and ask are the server's business; a client's values are ignored.
  const existing = rosters.get(st.bare, contact.bare);
  if (!existing) checkRosterRoom(ctx, st.bare);
  const next: RosterItem = {
    jid: contact.bare,
    name: name === '' ? null : name,
    groups,
    subscription: existing?.subscription ?? 'none',
    ask: existing?.ask ?? null,
    approved: existing?.approved ?? false,
  };
  const ver = rosters.set(st.bare, next);
  // §2.3.2: pushed to every interested resource, the requesting one included.
  ctx.pushRoster(st.bare, next, ver);
  ev.reply();
  return true;
}

export const roster: Module = {
  name: 'roster',
  install(ctx) {
    // RFC 6121 §2.6.1 roster versioning and §3.4.1 subscription pre-approval are stream features.
    ctx.addStreamFeature("<ver xmlns='urn:xmpp:features:rosterver'/>");
    ctx.addStreamFeature("<sub xmlns='urn:xmpp:features:pre-approval'/>");
    // Roster IQs are addressed to the account (no 'to', or the own bare JID: §2.1.3).
    ctx.hooks.on(`iq-get/self/${ROSTER_NS}`, (ev: IqEvent) => get(ctx, ev));
    ctx.hooks.on(`iq-set/self/${ROSTER_NS}`, (ev: IqEvent) => set(ctx, ev));
  },
};

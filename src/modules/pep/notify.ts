/**
 * Who hears about a PEP node (XEP-0163 §4.1 'automatic subscriptions', §4.2 filtered
 * notifications) and the event messages they get (XEP-0060 §7.1.2.1, §7.2.2.1, §8.4.2.1,
 * §8.5.2.1).
 *
 * Interest is per resource: the nodes whose 'NODE+notify' its XEP-0115 capabilities list, kept
 * in the session's module data under NOTIFY_KEY as one newline-separated string. A plain string,
 * so that the shard mesh copies it to the session's mirrors on other shards (src/shard/mirror.ts
 * copies primitive module values): a publisher on any shard sees every interested resource.
 */
import type { RouterContext } from '../../router/context.js';
import type { SessionState } from '../../router/session.js';
import { sendsPresence } from '../../router/subscription.js';
import { attr } from '../../xml/escape.js';
import { PUBSUB_EVENT, type NodeConfig } from './config.js';

export const NOTIFY_KEY = 'pep';

/** Whether the resource's capabilities ask for events of `node`. */
export function wants(s: SessionState, node: string): boolean {
  const list = s.data.get(NOTIFY_KEY);
  if (typeof list !== 'string' || list.length === 0) return false;
  return `\n${list}\n`.includes(`\n${node}\n`);
}

export function notifySet(s: SessionState): Set<string> {
  const list = s.data.get(NOTIFY_KEY);
  return new Set(typeof list === 'string' && list.length > 0 ? list.split('\n') : []);
}

/**
 * Whether `requester` (a bare JID) may see the owner's node under its access model (XEP-0060
 * §4.5): the owner always; 'open' anyone; 'presence' a contact the owner shares presence with
 * (subscription from/both in the owner's roster); 'whitelist' the owner alone (PEP nodes have
 * no other affiliations here).
 */
export function mayRead(ctx: RouterContext, owner: string, requester: string, config: NodeConfig): boolean {
  if (requester === owner) return true;
  switch (config['pubsub#access_model']) {
    case 'open':
      return true;
    case 'presence': {
      const item = ctx.storage.rosters.get(owner, requester);
      return item !== null && sendsPresence(item.subscription);
    }
    default:
      return false;
  }
}

/**
 * The available resources that get events of the owner's node: the owner's own and those of
 * contacts with a presence subscription to the owner (XEP-0163 §4.1: the auto-subscription is
 * the presence subscription), each filtered by its +notify interest; blocked contacts are left
 * out (XEP-0191 §3.1: no stanzas from a blocked JID).
 */
export function recipients(ctx: RouterContext, owner: string, node: string, config: NodeConfig): SessionState[] {
  const out: SessionState[] = [];
  const take = (s: SessionState) => {
    if (s.available && wants(s, node)) out.push(s);
  };
  for (const s of ctx.sessions.bare(owner)) take(s);
  const model = config['pubsub#access_model'];
  if (model === 'whitelist') return out;
  const roster = ctx.storage.rosters.peek?.(owner) ?? ctx.storage.rosters.list(owner);
  for (const item of roster) {
    if (!sendsPresence(item.subscription) || item.jid === owner) continue;
    const sessions = ctx.sessions.bare(item.jid);
    if (sessions.length === 0 || ctx.blocked(owner, item.jid)) continue;
    for (const s of sessions) take(s);
  }
  return out;
}

/** XEP-0060 §7.1.2.1: <message type='headline'> from the owner's bare JID with the event. */
export function eventMessage(owner: string, to: string, inner: string): string {
  return `<message${attr('from', owner)}${attr('to', to)} type='headline'><event xmlns='${PUBSUB_EVENT}'>${inner}</event></message>`;
}

/** Send one event to each resource given. */
export function deliverEvent(owner: string, to: readonly SessionState[], inner: string): void {
  for (const s of to) s.deliver(eventMessage(owner, s.jid.full, inner), 'message');
}

/** An <item/> as published, or without payload when the node does not deliver payloads. */
export function itemXml(id: string, payload: string, config: NodeConfig): string {
  return config['pubsub#deliver_payloads'] === '0' ? `<item${attr('id', id)}/>` : `<item${attr('id', id)}>${payload}</item>`;
}

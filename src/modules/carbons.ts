/**
 * XEP-0280 Message Carbons: every resource that enabled carbons sees the conversations its
 * account's other resources have — copies of what they send (<sent/>) and of what reaches the
 * account but not this resource (<received/>).
 *
 * Runs on the router's 'message/routed' event, after normal delivery, so the RFC 6121 rules
 * decide first and carbons only add copies. The copy wraps the already stamped bytes; nothing is
 * re-serialised.
 */
import { StanzaError } from '../errors.js';
import type { IqEvent, Module, RouterContext, RoutedMessageEvent } from '../router/context.js';
import type { SessionState } from '../router/session.js';
import { parseElement } from '../xml/element.js';
import { attr } from '../xml/escape.js';
import { readStartTag } from '../xml/start-tag.js';

export const CARBONS_NS = 'urn:xmpp:carbons:2';
const FORWARD_NS = 'urn:xmpp:forward:0';
const KEY = 'carbons';

/** XEP-0280 'Eligible Messages': payloads that make a message of type normal an IM message worth copying. */
const IM_PAYLOAD = /<body[\s>/]|http:\/\/jabber\.org\/protocol\/chatstates|urn:xmpp:receipts|urn:xmpp:chat-markers:0/;
/** XEP-0280 'Avoiding Carbons for a Single Message' (<private/>) and XEP-0334 (<no-copy/>): the sender asked for no copies. */
const OPT_OUT = /<private\s+xmlns=['"]urn:xmpp:carbons:2['"]|<no-copy\s+xmlns=['"]urn:xmpp:hints['"]/;
const HINTS_NS = 'urn:xmpp:hints';
/** Children of those two namespaces in the shape clients write (no prefix, xmlns first). */
const PLAIN_SHAPE = /<[A-Za-z][\w.-]*\s+xmlns=['"](?:urn:xmpp:hints|urn:xmpp:carbons:2)['"]/g;

/**
 * Whether the sender opted out of copies. The pattern reads the usual shape; when the two
 * namespaces are mentioned more often than that shape accounts for (a prefix, an attribute
 * before xmlns), the message is read by expanded name, as the sender meant it.
 */
function optedOut(text: string): boolean {
  if (OPT_OUT.test(text)) return true;
  const mentions = text.split(HINTS_NS).length + text.split(CARBONS_NS).length - 2;
  if (mentions === 0 || mentions === (text.match(PLAIN_SHAPE)?.length ?? 0)) return false;
  return parseElement(text).children.some(
    (c) => typeof c !== 'string' && ((c.getNS() === CARBONS_NS && c.getName() === 'private') || (c.getNS() === HINTS_NS && c.getName() === 'no-copy')),
  );
}

function enabled(s: SessionState): boolean {
  return s.data.get(KEY) === true;
}

/**
 * The forwarded copy must carry its namespace (XEP-0297 §4: the forwarded stanza is in
 * jabber:client); a client stanza relies on the stream's default namespace, so it is added to
 * the start tag unless the client wrote one. A prefixed stanza (<c:message xmlns:c=…>) is bound
 * by its own declaration: stream headers may declare no other prefix (c2s.ts headerPrefixError).
 */
export function forwardedXml(text: string): string {
  const { name, attrs } = readStartTag(text);
  if (attrs.has('xmlns') || name.includes(':')) return text;
  return `<${name} xmlns='jabber:client'${text.slice(name.length + 1)}`;
}

function wrap(kind: 'sent' | 'received', owner: string, to: SessionState, inner: string): string {
  return (
    `<message${attr('from', owner)}${attr('to', to.jid.full)} type='chat'>` +
    `<${kind} xmlns='${CARBONS_NS}'><forwarded xmlns='${FORWARD_NS}'>${inner}</forwarded></${kind}></message>`
  );
}

/**
 * Whether any resource of the account enabled carbons. Asked of the sessions themselves (a few
 * per account) rather than of a counter, so that sessions mirrored from other shards, whose
 * per-module data is copied over, count as well.
 */
function anyEnabled(ctx: RouterContext, bare: string): boolean {
  for (const s of ctx.sessions.bare(bare)) if (enabled(s)) return true;
  return false;
}

function copy(ctx: RouterContext, ev: RoutedMessageEvent): void {
  const senderBare = ev.sender.bare;
  const recipientBare = ev.to.bare;
  const senderCopies = anyEnabled(ctx, senderBare);
  const recipientCopies = ev.to.local !== null && ev.to.domain === ctx.domain && anyEnabled(ctx, recipientBare);
  if (!senderCopies && !recipientCopies) return;
  // XEP-0280 'Eligible Messages': chat, or normal with IM payloads; never groupchat, headline or errors here.
  if (ev.type !== 'chat' && ev.type !== 'normal') return;
  const text = ev.bytes.toString('utf8');
  if (ev.type === 'normal' && !IM_PAYLOAD.test(text)) return;
  if (optedOut(text)) return;
  let inner: string | null = null;
  const forwarded = () => (inner ??= forwardedXml(text));

  // 'Receiving Messages': the recipient account's other carbons-enabled resources that did not get it
  // (none when the message went to offline storage: it will be delivered from there).
  if (recipientCopies && ev.delivered.length > 0) {
    for (const s of ctx.sessions.bare(recipientBare)) {
      if (!enabled(s) || ev.delivered.includes(s) || s === ev.sender) continue;
      s.deliver(wrap('received', recipientBare, s, forwarded()), 'message');
    }
  }
  // 'Sending Messages': the sender's other carbons-enabled resources (not those that received it anyway).
  if (senderCopies) {
    for (const s of ctx.sessions.bare(senderBare)) {
      if (!enabled(s) || s === ev.sender || ev.delivered.includes(s)) continue;
      if (recipientBare === senderBare) continue; // already covered as 'received'
      s.deliver(wrap('sent', senderBare, s, forwarded()), 'message');
    }
  }
}

export const carbons: Module = {
  name: 'carbons',
  install(ctx) {
    ctx.features.add(CARBONS_NS);
    // 'Enabling Carbons' / 'Disabling Carbons': IQ sets addressed to the account (normally without 'to').
    ctx.hooks.on(`iq-set/self/${CARBONS_NS}`, (ev: IqEvent) => {
      const name = ev.payload.getName();
      if (name !== 'enable' && name !== 'disable') throw new StanzaError('bad-request', 'expected <enable/> or <disable/>');
      ev.session!.data.set(KEY, name === 'enable');
      ev.reply();
      return true;
    });
    ctx.hooks.on('message/routed', (ev: RoutedMessageEvent) => {
      copy(ctx, ev);
    });
  },
};

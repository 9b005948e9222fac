/**
 * XEP-0077 In-Band Registration.
 *  - Before authentication (only with registration 'open'): account creation (§3.1).
 *  - After authentication (always): password change (§3.3) and account removal (§3.2).
 * The stream feature <register xmlns='http://jabber.org/features/iq-register'/> is the stream
 * layer's to offer, when RouterContext.registration is 'open'.
 */
import { StanzaError, StreamError } from '../errors.js';
import { Jid } from '../jid.js';
import type { IqEvent, Module, RouterContext } from '../router/context.js';
import { AccountError } from '../storage/types.js';
import { escapeText } from '../xml/escape.js';

export const REGISTER_NS = 'jabber:iq:register';

function field(ev: IqEvent, name: string): string | null {
  const el = ev.payload.getChild(name);
  return el ? el.getText() : null;
}

function accountError(err: unknown): never {
  if (err instanceof AccountError) {
    // XEP-0077 §3.1: taken → conflict; a missing or unacceptable field → not-acceptable.
    if (err.reason === 'exists') throw new StanzaError('conflict', 'username already taken');
    if (err.reason === 'invalid-jid') throw new StanzaError('jid-malformed', 'username not allowed');
    throw new StanzaError('not-acceptable', err.message);
  }
  throw err;
}

function create(ctx: RouterContext, ev: IqEvent): boolean {
  if (ev.payload.getChild('remove')) throw new StanzaError('not-authorized', 'authenticate before removing an account');
  const username = field(ev, 'username');
  const password = field(ev, 'password');
  if (!username || !password) throw new StanzaError('not-acceptable', 'username and password are required');
  let account: Jid;
  try {
    account = Jid.of(username, ctx.domain);
  } catch {
    throw new StanzaError('jid-malformed', 'username not allowed');
  }
  try {
    ctx.storage.users.create(account.bare, password);
  } catch (err) {
    accountError(err);
  }
  ctx.log?.info({ account: account.bare }, 'account registered in-band');
  ev.reply();
  return true;
}

function change(ctx: RouterContext, ev: IqEvent): boolean {
  const st = ev.session!;
  const account = st.jid.toBare();
  if (ev.payload.getChild('remove')) {
    // §3.2: cancel subscriptions both ways so contacts' rosters stay truthful, delete, answer,
    // then end every session of the account.
    for (const item of ctx.storage.rosters.list(account.bare)) {
      const contact = Jid.parse(item.jid);
      if (item.subscription === 'from' || item.subscription === 'both') ctx.subscription(account, contact, 'unsubscribed');
      if (item.subscription === 'to' || item.subscription === 'both' || item.ask) ctx.subscription(account, contact, 'unsubscribe');
    }
    ctx.storage.users.delete(account.bare);
    ev.reply();
    ctx.log?.info({ account: account.bare }, 'account removed in-band');
    ctx.closeAccount(account.bare, new StreamError('not-authorized', 'account removed'));
    return true;
  }
  // §3.3: password change; the username, when given, must be the account's own.
  const username = field(ev, 'username');
  const password = field(ev, 'password');
  if (username !== null && username.toLowerCase() !== account.local) {
    throw new StanzaError('not-allowed', 'cannot change the password of another account');
  }
  if (!password) throw new StanzaError('not-acceptable', 'password is required');
  try {
    ctx.storage.users.setPassword(account.bare, password);
  } catch (err) {
    accountError(err);
  }
  ev.reply();
  return true;
}

export const register: Module = {
  name: 'register',
  install(ctx) {
    ctx.features.add(REGISTER_NS);
    if (ctx.registration === 'open') {
      ctx.hooks.on(`iq-get/unauth/${REGISTER_NS}`, (ev: IqEvent) => {
        ev.reply(
          `<query xmlns='${REGISTER_NS}'><instructions>Choose a username and password for use with this service.</instructions>` +
            `<username/><password/></query>`,
        );
        return true;
      });
      ctx.hooks.on(`iq-set/unauth/${REGISTER_NS}`, (ev: IqEvent) => create(ctx, ev));
    }
    ctx.hooks.on(`iq-get/self/${REGISTER_NS}`, (ev: IqEvent) => {
      // §3.2: already registered — say so, with the username.
      ev.reply(
        `<query xmlns='${REGISTER_NS}'><registered/><username>${escapeText(ev.session!.jid.local ?? '')}</username></query>`,
      );
      return true;
    });
    ctx.hooks.on(`iq-set/self/${REGISTER_NS}`, (ev: IqEvent) => change(ctx, ev));
  },
};

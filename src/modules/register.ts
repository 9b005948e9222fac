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
import { deriveStoredPassword } from '../storage/password.js';
import { AccountError, type StoredPassword } from '../storage/types.js';
import { escapeText } from '../xml/escape.js';

export const REGISTER_NS = 'jabber:iq:register';

function field(ev: IqEvent, name: string): string | null {
  const el = ev.payload.getChild(name);
  return el ? el.getText() : null;
}

/** XEP-0077 §3.1: taken → conflict; a name or password we cannot accept → jid-malformed / not-acceptable. */
function stanzaErrorOf(ctx: RouterContext, err: unknown): StanzaError {
  if (err instanceof StanzaError) return err;
  if (err instanceof AccountError) {
    if (err.reason === 'exists') return new StanzaError('conflict', 'username already taken');
    if (err.reason === 'invalid-jid') return new StanzaError('jid-malformed', 'username not allowed');
    if (err.reason === 'not-found') return new StanzaError('item-not-found', 'no such account');
    return new StanzaError('not-acceptable', err.message);
  }
  ctx.log?.error({ err }, 'in-band registration failed');
  return new StanzaError('internal-server-error');
}

/**
 * Derive the SCRAM credentials off the event loop (PBKDF2 with thousands of iterations would
 * otherwise stall every connection of the thread: an open registration must not be a way to
 * freeze the server), then store and answer.
 */
function withCredentials(ctx: RouterContext, ev: IqEvent, password: string, store: (stored: StoredPassword) => void): boolean {
  deriveStoredPassword(password, ctx.passwordIterations).then(
    (stored) => {
      try {
        store(stored);
      } catch (err) {
        return ev.error(stanzaErrorOf(ctx, err));
      }
      ev.reply();
    },
    (err: unknown) => ev.error(stanzaErrorOf(ctx, err)),
  );
  return true;
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
  // Checked now so that a taken name is refused at once; create() checks again after the wait.
  if (ctx.storage.users.exists(account.bare)) throw new StanzaError('conflict', 'username already taken');
  return withCredentials(ctx, ev, password, (stored) => {
    ctx.storage.users.create(account.bare, stored);
    ctx.log?.info({ account: account.bare }, 'account registered in-band');
  });
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
    // Modules keeping data outside storage (XEP-0363 uploads) delete theirs.
    ctx.hooks.fire('account/removed', { ctx, account: account.bare });
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
  return withCredentials(ctx, ev, password, (stored) => {
    if (!ctx.storage.users.setPassword(account.bare, stored)) throw new AccountError('not-found', 'account gone');
  });
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

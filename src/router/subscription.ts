/**
 * The presence subscription state machine of RFC 6121 §3, as the pure tables of Appendix A.
 *
 * A relationship, seen from one account towards one contact, is one of nine states: the
 * subscription (none/to/from/both) plus "Pending Out" (the account asked the contact, ask=
 * 'subscribe' on the roster item) and "Pending In" (the contact asked the account and is
 * waiting). Both parties being local, the router applies the outbound table for the sender and
 * the inbound table for the recipient of each subscription stanza.
 */

export type Subscription = 'none' | 'to' | 'from' | 'both';
export type SubscriptionType = 'subscribe' | 'subscribed' | 'unsubscribe' | 'unsubscribed';

export interface SubState {
  subscription: Subscription;
  pendingOut: boolean;
  pendingIn: boolean;
}

/** Appendix A state names. */
export type StateName =
  | 'None'
  | 'None+PendingOut'
  | 'None+PendingIn'
  | 'None+PendingOut+PendingIn'
  | 'To'
  | 'To+PendingIn'
  | 'From'
  | 'From+PendingOut'
  | 'Both';

export function stateName(s: SubState): StateName {
  switch (s.subscription) {
    case 'none':
      return s.pendingOut
        ? s.pendingIn
          ? 'None+PendingOut+PendingIn'
          : 'None+PendingOut'
        : s.pendingIn
          ? 'None+PendingIn'
          : 'None';
    // Pending Out cannot coexist with To (the subscription already exists), nor Pending In
    // with From: those flags are ignored.
    case 'to':
      return s.pendingIn ? 'To+PendingIn' : 'To';
    case 'from':
      return s.pendingOut ? 'From+PendingOut' : 'From';
    case 'both':
      return 'Both';
  }
}

const STATES: Record<StateName, SubState> = {
  None: { subscription: 'none', pendingOut: false, pendingIn: false },
  'None+PendingOut': { subscription: 'none', pendingOut: true, pendingIn: false },
  'None+PendingIn': { subscription: 'none', pendingOut: false, pendingIn: true },
  'None+PendingOut+PendingIn': { subscription: 'none', pendingOut: true, pendingIn: true },
  To: { subscription: 'to', pendingOut: false, pendingIn: false },
  'To+PendingIn': { subscription: 'to', pendingOut: false, pendingIn: true },
  From: { subscription: 'from', pendingOut: false, pendingIn: false },
  'From+PendingOut': { subscription: 'from', pendingOut: true, pendingIn: false },
  Both: { subscription: 'both', pendingOut: false, pendingIn: false },
};

export function stateOf(name: StateName): SubState {
  return { ...STATES[name] };
}

type Table = Partial<Record<StateName, StateName>>;

/** Only the rows that change state; every other state is "no state change". */
/**
 * Only the rows that change state; every other state is "no state change". The tables pair up:
 * the account cancelling the contact's subscription (outbound unsubscribed, A.2.4) moves the
 * account exactly as the contact withdrawing it (inbound unsubscribe, A.3.2) does, and likewise
 * A.2.2 = A.3.4.
 */
const LOSE_FROM: Table = {
  'None+PendingIn': 'None',
  'None+PendingOut+PendingIn': 'None+PendingOut',
  'To+PendingIn': 'To',
  From: 'None',
  'From+PendingOut': 'None+PendingOut',
  Both: 'To',
};
const LOSE_TO: Table = {
  'None+PendingOut': 'None',
  'None+PendingOut+PendingIn': 'None+PendingIn',
  To: 'None',
  'To+PendingIn': 'None+PendingIn',
  'From+PendingOut': 'From',
  Both: 'From',
};

const OUTBOUND: Record<SubscriptionType, Table> = {
  // A.2.1
  subscribe: {
    None: 'None+PendingOut',
    'None+PendingIn': 'None+PendingOut+PendingIn',
    From: 'From+PendingOut',
  },
  // A.2.2
  unsubscribe: LOSE_TO,
  // A.2.3
  subscribed: {
    'None+PendingIn': 'From',
    'None+PendingOut+PendingIn': 'From+PendingOut',
    'To+PendingIn': 'Both',
  },
  // A.2.4
  unsubscribed: LOSE_FROM,
};

const INBOUND: Record<SubscriptionType, Table> = {
  // A.3.1
  subscribe: {
    None: 'None+PendingIn',
    'None+PendingOut': 'None+PendingOut+PendingIn',
    To: 'To+PendingIn',
  },
  // A.3.2
  unsubscribe: LOSE_FROM,
  // A.3.3
  subscribed: {
    'None+PendingOut': 'To',
    'None+PendingOut+PendingIn': 'To+PendingIn',
    'From+PendingOut': 'Both',
  },
  // A.3.4
  unsubscribed: LOSE_TO,
};

export interface OutboundResult {
  next: SubState;
  changed: boolean;
  /** Whether the stanza goes on to the contact. */
  route: boolean;
  /**
   * RFC 6121 §3.4: an outbound 'subscribed' with no pending inbound request is a pre-approval
   * (when the account has no 'from' yet); 'unsubscribed' in that position cancels one.
   */
  preApproval: 'set' | 'cancel' | null;
}

export function outbound(state: SubState, type: SubscriptionType): OutboundResult {
  const from = stateName(state);
  const to = OUTBOUND[type][from];
  const changed = to !== undefined;
  const next = changed ? stateOf(to) : stateOf(from);
  let preApproval: OutboundResult['preApproval'] = null;
  if (type === 'subscribed' && !changed && (state.subscription === 'none' || state.subscription === 'to')) {
    preApproval = 'set';
  }
  if (type === 'unsubscribed' && !changed && !state.pendingIn) preApproval = 'cancel';
  // §3.1.5 / §3.4.1: 'subscribed' is routed only when it answers a pending request (a
  // pre-approval stays on the server). subscribe/unsubscribe/unsubscribed are always routed
  // (§3.1.2, §3.3.2, §3.2.2); the contact's side ignores them when they change nothing.
  const route = type === 'subscribed' ? changed : true;
  return { next, changed, route, preApproval };
}

export interface InboundResult {
  next: SubState;
  changed: boolean;
  /** Whether the stanza is delivered to the account's available resources. */
  deliver: boolean;
  /**
   * §3.1.3: the server answers 'subscribed' on the account's behalf when the contact is already
   * subscribed (from/both) or the account pre-approved it.
   */
  autoReply: boolean;
}

export function inbound(state: SubState, type: SubscriptionType, preApproved = false): InboundResult {
  const from = stateName(state);
  if (type === 'subscribe') {
    if (state.subscription === 'from' || state.subscription === 'both') {
      return { next: stateOf(from), changed: false, deliver: false, autoReply: true };
    }
    if (preApproved && !state.pendingIn) {
      // §3.4: pre-approved — the subscription is granted without asking the account.
      const next = stateOf(state.subscription === 'to' ? 'Both' : state.pendingOut ? 'From+PendingOut' : 'From');
      return { next, changed: true, deliver: false, autoReply: true };
    }
  }
  const to = INBOUND[type][from];
  const changed = to !== undefined;
  const next = changed ? stateOf(to) : stateOf(from);
  // Appendix A.3: every inbound type is delivered only when it changed state. For subscribe
  // (A.3.1) a repeat while the request is already Pending In is not delivered again: the
  // account's clients have it (or get the stored one at their next login, §3.1.3), and a
  // contact repeating it must not be able to flood them.
  return { next, changed, deliver: changed, autoReply: false };
}

/** Whether `s` lets the account see the contact's presence (RFC 6121 §3: to/both). */
export function receivesPresence(s: Subscription): boolean {
  return s === 'to' || s === 'both';
}

/** Whether the contact sees the account's presence (from/both). */
export function sendsPresence(s: Subscription): boolean {
  return s === 'from' || s === 'both';
}

import { describe, expect, it } from 'vitest';
import {
  inbound,
  outbound,
  stateName,
  stateOf,
  type StateName,
  type SubscriptionType,
} from '../../src/router/subscription.js';

const ALL: StateName[] = [
  'None',
  'None+PendingOut',
  'None+PendingIn',
  'None+PendingOut+PendingIn',
  'To',
  'To+PendingIn',
  'From',
  'From+PendingOut',
  'Both',
];

/** RFC 6121 Appendix A, written out row by row: [state, A.x.1 subscribe, …]. '=' = no change. */
const OUT: Record<SubscriptionType, string[]> = {
  // A.2.1
  subscribe: ['None+PendingOut', '=', 'None+PendingOut+PendingIn', '=', '=', '=', 'From+PendingOut', '=', '='],
  // A.2.2
  unsubscribe: ['=', 'None', '=', 'None+PendingIn', 'None', 'None+PendingIn', '=', 'From', 'From'],
  // A.2.3
  subscribed: ['=', '=', 'From', 'From+PendingOut', '=', 'Both', '=', '=', '='],
  // A.2.4
  unsubscribed: ['=', '=', 'None', 'None+PendingOut', '=', 'To', 'None', 'None+PendingOut', 'To'],
};
const IN: Record<SubscriptionType, string[]> = {
  // A.3.1 (From, From+PendingOut and Both: the server auto-replies, no change)
  subscribe: ['None+PendingIn', 'None+PendingOut+PendingIn', '=', '=', 'To+PendingIn', '=', '=', '=', '='],
  // A.3.2
  unsubscribe: ['=', '=', 'None', 'None+PendingOut', '=', 'To', 'None', 'None+PendingOut', 'To'],
  // A.3.3
  subscribed: ['=', 'To', '=', 'To+PendingIn', '=', '=', '=', 'Both', '='],
  // A.3.4
  unsubscribed: ['=', 'None', '=', 'None+PendingIn', 'None', 'None+PendingIn', '=', 'From', 'From'],
};

describe('subscription state machine (RFC 6121 Appendix A)', () => {
  it('round-trips every state name', () => {
    for (const s of ALL) expect(stateName(stateOf(s))).toBe(s);
  });

  for (const type of Object.keys(OUT) as SubscriptionType[]) {
    it(`applies the outbound "${type}" table (A.2)`, () => {
      ALL.forEach((s, i) => {
        const want = OUT[type][i] === '=' ? s : OUT[type][i];
        const r = outbound(stateOf(s), type);
        expect([s, stateName(r.next)]).toEqual([s, want]);
        expect(r.changed).toBe(want !== s);
      });
    });
    it(`applies the inbound "${type}" table (A.3)`, () => {
      ALL.forEach((s, i) => {
        const want = IN[type][i] === '=' ? s : IN[type][i];
        const r = inbound(stateOf(s), type);
        expect([s, stateName(r.next)]).toEqual([s, want]);
      });
    });
  }

  it('routes an outbound subscribed only when it answers a pending request (§3.1.5), else pre-approves (§3.4)', () => {
    expect(outbound(stateOf('None+PendingIn'), 'subscribed')).toMatchObject({ route: true, preApproval: null });
    expect(outbound(stateOf('None'), 'subscribed')).toMatchObject({ route: false, preApproval: 'set' });
    expect(outbound(stateOf('To'), 'subscribed')).toMatchObject({ route: false, preApproval: 'set' });
    expect(outbound(stateOf('Both'), 'subscribed')).toMatchObject({ route: false, preApproval: null });
    expect(outbound(stateOf('None'), 'unsubscribed').preApproval).toBe('cancel');
  });

  it('auto-replies to a subscribe from an already subscribed contact (§3.1.3)', () => {
    for (const s of ['From', 'From+PendingOut', 'Both'] as StateName[]) {
      expect(inbound(stateOf(s), 'subscribe')).toMatchObject({ autoReply: true, deliver: false, changed: false });
    }
  });

  it('grants a pre-approved subscribe without asking the account (§3.4.2)', () => {
    expect(stateName(inbound(stateOf('None'), 'subscribe', true).next)).toBe('From');
    expect(stateName(inbound(stateOf('To'), 'subscribe', true).next)).toBe('Both');
    expect(stateName(inbound(stateOf('None+PendingOut'), 'subscribe', true).next)).toBe('From+PendingOut');
    expect(inbound(stateOf('None'), 'subscribe', true)).toMatchObject({ autoReply: true, deliver: false });
  });

  it('delivers inbound subscribed/unsubscribe/unsubscribed only when they change state (§3.1.6, §3.2.3, §3.3.3)', () => {
    expect(inbound(stateOf('None'), 'subscribed').deliver).toBe(false);
    expect(inbound(stateOf('None+PendingOut'), 'subscribed').deliver).toBe(true);
    expect(inbound(stateOf('To'), 'unsubscribe').deliver).toBe(false);
    expect(inbound(stateOf('Both'), 'unsubscribe').deliver).toBe(true);
    expect(inbound(stateOf('From'), 'unsubscribed').deliver).toBe(false);
  });

  it('delivers an inbound subscribe only when it opens a request, not a repeat while Pending In (A.3.1)', () => {
    expect(inbound(stateOf('None'), 'subscribe').deliver).toBe(true);
    expect(inbound(stateOf('None+PendingOut'), 'subscribe').deliver).toBe(true);
    expect(inbound(stateOf('To'), 'subscribe').deliver).toBe(true);
    for (const s of ['None+PendingIn', 'None+PendingOut+PendingIn', 'To+PendingIn'] as StateName[]) {
      expect(inbound(stateOf(s), 'subscribe')).toMatchObject({ deliver: false, changed: false, autoReply: false });
    }
  });
});

/** Validation shared by every backend, so that all of them accept and refuse the same input. */
import { Jid } from '../jid.js';
import {
  AccountError,
  DEFAULT_ITERATIONS,
  DEFAULT_OFFLINE_LIMIT,
  type RosterChange,
  type RosterChanges,
  type RosterItem,
  type StorageOptions,
} from './types.js';

/** A name typed by a person → the prepared bare JID, its localpart and domain. */
export function parseAccount(account: string): { bare: string; local: string; domain: string } {
  const jid = Jid.tryParse(account);
  if (!jid || jid.local === null || jid.resource !== null) {
    throw new AccountError('invalid-jid', `'${account}' is not a bare JID of the form user@domain`);
  }
  return { bare: jid.bare, local: jid.local, domain: jid.domain };
}

/** A defensive copy with groups de-duplicated, so no caller can alias a stored item. */
export function cleanRosterItem(item: RosterItem): RosterItem {
  return {
    jid: item.jid,
    name: item.name === undefined || item.name === '' ? null : item.name,
    groups: [...new Set(item.groups)],
    subscription: item.subscription,
    ask: item.ask ?? null,
    approved: Boolean(item.approved),
  };
}

export function resolveOptions(options: StorageOptions = {}): Required<StorageOptions> {
  const iterations = options.iterations ?? DEFAULT_ITERATIONS;
  const offlineLimit = options.offlineLimit ?? DEFAULT_OFFLINE_LIMIT;
  if (!Number.isInteger(iterations) || iterations < 1) throw new RangeError(`iterations must be a positive integer`);
  if (!Number.isInteger(offlineLimit) || offlineLimit < 0) throw new RangeError(`offlineLimit must be a non-negative integer`);
  return { iterations, offlineLimit };
}

export const DEFAULT_LIST_LIMIT = 100;

/**
 * RFC 6121 §2.6.3 roster diff, the same in every backend. `state` is the roster's current version
 * and floor (its first version since the account was created), null for a roster never written.
 * A cached version is answerable when it is the current one, or lies between floor and current.
 */
export function diffRoster(
  state: { version: number; floor: number } | null,
  since: number,
  changedItems: () => RosterChange[],
  removals: () => RosterChange[],
): RosterChanges | null {
  const current = state?.version ?? 0;
  if (since === current) return { version: current, changes: [] };
  if (state === null || since > current || since < state.floor || !Number.isInteger(since)) return null;
  const changes = [...changedItems(), ...removals()].sort((a, b) => a.version - b.version);
  return { version: current, changes };
}

/** The JIDs of a blocklist request without repeats, first occurrence first. */
export function uniq(jids: readonly string[]): string[] {
  return [...new Set(jids)];
}

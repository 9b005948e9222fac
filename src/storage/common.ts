/** Validation shared by every backend, so that all of them accept and refuse the same input. */
import { Jid } from '../jid.js';
import { AccountError, DEFAULT_ITERATIONS, DEFAULT_OFFLINE_LIMIT, type RosterItem, type StorageOptions } from './types.js';

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

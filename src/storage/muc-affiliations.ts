/**
 * A deleted account's affiliations with persistent MUC rooms (XEP-0045 §5.2), in the stored room
 * record (src/muc/room.ts RoomRecord: JSON, `affiliations: [bareJid, affiliation][]`).
 *
 * Every deletion path (XEP-0077 removal, `hermod deluser`, the admin socket) ends in the store's
 * users.delete(): owner, admin and member end there, or whoever registers the name next would
 * inherit the rooms (own and configure them, pass members-only doors). An outcast stays: a ban is
 * on the address (§9.1), and deleting and re-registering the account must not lift it.
 */

/** Text a stored room record contains when it may name `account`: a first filter, withoutAffiliate() decides. */
export function affiliateNeedle(account: string): string {
  return JSON.stringify(account);
}

/** Whether an affiliation ends with the account that holds it (a ban does not). */
export function endsWithAccount(affiliation: string): boolean {
  return affiliation !== 'outcast';
}

/**
 * The record without `account`'s affiliation unless it is a ban; undefined when nothing changes
 * or the record cannot be read (left as it is: the deletion must not fail on another's data).
 */
export function withoutAffiliate(data: string, account: string): string | undefined {
  let rec: { affiliations?: unknown };
  try {
    rec = JSON.parse(data) as { affiliations?: unknown };
  } catch {
    return undefined;
  }
  if (rec === null || typeof rec !== 'object' || !Array.isArray(rec.affiliations)) return undefined;
  const all = rec.affiliations as unknown[];
  const kept = all.filter((e) => !(Array.isArray(e) && e[0] === account && endsWithAccount(String(e[1]))));
  return kept.length === all.length ? undefined : JSON.stringify({ ...rec, affiliations: kept });
}

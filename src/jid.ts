/**
 * JIDs per RFC 7622: localpart@domainpart/resourcepart.
 *
 * Parsing splits on the first '/' (the resource may contain '@' and '/'), then on the last '@'
 * before it (§3.1). Each part is prepared and compared in its canonical form so that routing can
 * use plain string equality on `bare` and `full`.
 */
import { StanzaError } from './errors.js';

/** §3.2.1, §3.3.1, §3.4.1: each part is 1..1023 octets once prepared. */
const MAX_PART_BYTES = 1023;

/** §3.3.1: characters the UsernameCaseMapped profile of localparts forbids here in addition to PRECIS rules. */
const LOCALPART_FORBIDDEN = /["&'/:<>@\s\u0000-\u001f\u007f]/u;
/** Control characters are disallowed in every part (PRECIS IdentifierClass / FreeformClass). */
const CONTROL = /[\u0000-\u001f\u007f-\u009f]/u;

function byteLength(text: string): number {
  return Buffer.byteLength(text, 'utf8');
}

function malformed(reason: string): StanzaError {
  return new StanzaError('jid-malformed', reason);
}

/** §3.3: UsernameCaseMapped approximated by NFKC width mapping + case fold, then checks. */
export function prepareLocalpart(local: string): string {
  const prepared = local.normalize('NFKC').toLowerCase().normalize('NFC');
  if (prepared.length === 0) throw malformed('empty localpart');
  if (byteLength(prepared) > MAX_PART_BYTES) throw malformed('localpart longer than 1023 bytes');
  if (LOCALPART_FORBIDDEN.test(prepared)) throw malformed('localpart contains a forbidden character');
  return prepared;
}

/** §3.2: a domainpart is an IDN or IP literal; compared lowercase, without a trailing dot. */
export function prepareDomainpart(domain: string): string {
  let prepared = domain.normalize('NFKC').toLowerCase();
  if (prepared.endsWith('.')) prepared = prepared.slice(0, -1);
  if (prepared.length === 0) throw malformed('empty domainpart');
  if (byteLength(prepared) > MAX_PART_BYTES) throw malformed('domainpart longer than 1023 bytes');
  if (prepared.startsWith('[')) {
    if (!/^\[[0-9a-f:.]+\]$/.test(prepared)) throw malformed('malformed IPv6 literal');
    return prepared;
  }
  for (const label of prepared.split('.')) {
    if (label.length === 0) throw malformed('empty label in domainpart');
    if (byteLength(label) > 63) throw malformed('domain label longer than 63 bytes');
    if (/[\s/@:<>'"&\\]/u.test(label) || CONTROL.test(label)) {
      throw malformed('domainpart contains a forbidden character');
    }
  }
  return prepared;
}

/** §3.4: OpaqueString — NFC, no controls, case preserved. */
export function prepareResourcepart(resource: string): string {
  const prepared = resource.normalize('NFC');
  if (prepared.length === 0) throw malformed('empty resourcepart');
  if (byteLength(prepared) > MAX_PART_BYTES) throw malformed('resourcepart longer than 1023 bytes');
  if (CONTROL.test(prepared)) throw malformed('resourcepart contains a control character');
  return prepared;
}

export class Jid {
  /** localpart@domainpart (or domainpart alone). */
  readonly bare: string;
  /** bare/resourcepart, or bare when there is no resource. */
  readonly full: string;

  private constructor(
    readonly local: string | null,
    readonly domain: string,
    readonly resource: string | null,
  ) {
    this.bare = local === null ? domain : `${local}@${domain}`;
    this.full = resource === null ? this.bare : `${this.bare}/${resource}`;
  }

  /** Parse and prepare; throws StanzaError('jid-malformed') naming what is wrong. */
  static parse(text: string): Jid {
    const slash = text.indexOf('/');
    const head = slash === -1 ? text : text.slice(0, slash);
    const resource = slash === -1 ? null : text.slice(slash + 1);
    const at = head.lastIndexOf('@');
    const local = at === -1 ? null : head.slice(0, at);
    const domain = at === -1 ? head : head.slice(at + 1);
    return Jid.of(local, domain, resource);
  }

  /** Parse, or null when malformed (for attributes from the wire). */
  static tryParse(text: string): Jid | null {
    try {
      return Jid.parse(text);
    } catch {
      return null;
    }
  }

  static of(local: string | null, domain: string, resource: string | null = null): Jid {
    return new Jid(
      local === null ? null : prepareLocalpart(local),
      prepareDomainpart(domain),
      resource === null ? null : prepareResourcepart(resource),
    );
  }

  get isBare(): boolean {
    return this.resource === null;
  }

  toBare(): Jid {
    return this.resource === null ? this : new Jid(this.local, this.domain, null);
  }

  withResource(resource: string): Jid {
    return new Jid(this.local, this.domain, prepareResourcepart(resource));
  }

  equals(other: Jid): boolean {
    return this.full === other.full;
  }

  toString(): string {
    return this.full;
  }
}

/**
 * JIDs per RFC 7622: localpart@domainpart/resourcepart.
 *
 * Parsing follows §3.1: everything after the first '/' is the resourcepart (it may contain '@'
 * and '/'), then everything before the first '@' of the rest is the localpart. Each part is
 * prepared and enforced (§3.2–§3.4, with the PRECIS profiles of RFC 8265) into its canonical
 * form, so that routing compares `bare` and `full` with plain string equality.
 *
 * Pure-ASCII parts, by far the common case on the wire, take a short path that gives the same
 * result as the full Unicode procedure. The Bidi Rule (RFC 5893) that UsernameCaseMapped applies
 * to localparts is checked with bidirectional classes derived from scripts and general
 * categories, since JavaScript's regular expressions have no Bidi_Class property: exact for the
 * letters, digits and marks a localpart may hold.
 */
import { isIPv4, isIPv6 } from 'node:net';
import { domainToASCII, domainToUnicode } from 'node:url';
import { StanzaError } from './errors.js';

/** §3.2.1, §3.3.1, §3.4.1: each part is 1..1023 octets once prepared. */
const MAX_PART_BYTES = 1023;

/** RFC 8264 §9: code points every PRECIS class disallows (controls, format and ignorable
 * characters, unassigned, private use, surrogates, noncharacters, line and paragraph separators,
 * and the conjoining Hangul jamo that NFC did not compose into syllables). */
const PRECIS_DISALLOWED =
  /[\p{Cc}\p{Cf}\p{Cs}\p{Co}\p{Cn}\p{Zl}\p{Zp}\p{Default_Ignorable_Code_Point}\p{Noncharacter_Code_Point}\u1100-\u11ff\ua960-\ua97f\ud7b0-\ud7ff]/u;
/** RFC 8264 §9.1 LetterDigits: the only non-ASCII code points IdentifierClass allows. */
const LETTER_DIGIT = /^[\p{Ll}\p{Lu}\p{Lo}\p{Nd}\p{Lm}\p{Mn}\p{Mc}]$/u;
/** RFC 7622 §3.3.1: ASCII characters a localpart must not contain beyond IdentifierClass. */
const LOCALPART_FORBIDDEN = /["&'/:<>@]/;
/** Printable ASCII without space: IdentifierClass's ASCII7 (RFC 8264 §9.11). */
const ASCII_IDENTIFIER = /^[\x21-\x7e]+$/;
/** Printable ASCII with space: the FreeformClass characters that need no Unicode work. */
const ASCII_FREEFORM = /^[\x20-\x7e]+$/;
/** RFC 8265 §3.3.2 width mapping: fullwidth and halfwidth forms map to their decomposition. */
const WIDE = /[\uff01-\uffef]/gu;
/** RFC 8265 §4.2.2: non-ASCII spaces map to U+0020 in OpaqueString. */
const NON_ASCII_SPACE = /(?! )\p{Zs}/gu;
/** A domain label that is an LDH label (RFC 5890 §2.3.1), the only form allowed in DNS names. */
const LDH_LABEL = /^[a-z0-9](?:[a-z0-9-]*[a-z0-9])?$/;

/** Scripts written right to left: their letters and digits are bidi class R or AL (UAX #9). */
const RTL_SCRIPT = new RegExp(
  `[${['Hebrew', 'Arabic', 'Syriac', 'Thaana', 'Nko', 'Samaritan', 'Mandaic', 'Adlam', 'Hanifi_Rohingya', 'Yezidi',
    'Old_South_Arabian', 'Old_North_Arabian', 'Phoenician', 'Imperial_Aramaic', 'Inscriptional_Parthian',
    'Inscriptional_Pahlavi', 'Psalter_Pahlavi', 'Avestan', 'Nabataean', 'Palmyrene', 'Hatran', 'Manichaean',
    'Mende_Kikakui', 'Old_Hungarian', 'Old_Sogdian', 'Sogdian', 'Elymaic', 'Chorasmian', 'Kharoshthi', 'Lydian',
    'Meroitic_Cursive', 'Meroitic_Hieroglyphs', 'Cypriot', 'Old_Turkic', 'Old_Uyghur'].map((s) => `\\p{Script=${s}}`).join('')}]`,
  'u',
);
/** Bidi class AN (Arabic number): Arabic-Indic and Hanifi Rohingya digits and separators. */
const ARABIC_NUMBER = /[\u0660-\u0669\u066b\u066c\u{10d30}-\u{10d39}\u{10e60}-\u{10e7e}]/u;
/** Bidi class EN (European number), as far as a prepared localpart can hold it. */
const EUROPEAN_NUMBER = /[0-9\u00b2\u00b3\u00b9\u06f0-\u06f9\u2070-\u2079\u2080-\u2089]/u;
/** Classes NSM (marks) and the ASCII neutrals ES, CS, ET, ON: allowed anywhere in an RTL string. */
const BIDI_NEUTRAL = /[\p{Mn}\p{Me}!-\/:-@\[-`{-~]/u;

type BidiClass = 'RTL' | 'AN' | 'EN' | 'NSM' | 'NEUTRAL' | 'L';

function bidiClass(ch: string): BidiClass {
  if (ARABIC_NUMBER.test(ch)) return 'AN';
  if (EUROPEAN_NUMBER.test(ch)) return 'EN';
  if (/\p{Mn}|\p{Me}/u.test(ch)) return 'NSM';
  if (RTL_SCRIPT.test(ch)) return 'RTL';
  return BIDI_NEUTRAL.test(ch) ? 'NEUTRAL' : 'L';
}

/**
 * RFC 5893 §2, for a string holding right-to-left characters (R, AL or AN): it starts with R or
 * AL (rule 1), holds no L (rule 2), ends with R, AL, EN or AN before any marks (rule 3), and
 * does not mix EN and AN (rule 4). Strings without them are left to rules 5 and 6, which any
 * left-to-right string meets.
 */
function checkBidiRule(prepared: string, part: string): void {
  const classes = Array.from(prepared, bidiClass);
  if (!classes.some((c) => c === 'RTL' || c === 'AN')) return;
  const last = classes.filter((c) => c !== 'NSM').at(-1);
  if (
    classes[0] !== 'RTL' ||
    classes.includes('L') ||
    (last !== 'RTL' && last !== 'EN' && last !== 'AN') ||
    (classes.includes('EN') && classes.includes('AN'))
  ) {
    throw malformed(`${part} breaks the Bidi Rule (RFC 5893): right-to-left text must not mix with left-to-right`);
  }
}

function byteLength(text: string): number {
  return Buffer.byteLength(text, 'utf8');
}

function malformed(reason: string): StanzaError {
  return new StanzaError('jid-malformed', reason);
}

function checkLength(prepared: string, part: string): void {
  if (prepared.length === 0) throw malformed(`empty ${part}`);
  if (byteLength(prepared) > MAX_PART_BYTES) throw malformed(`${part} longer than 1023 bytes`);
}

/**
 * §3.3: the UsernameCaseMapped profile (RFC 8265 §3.3): width mapping, lowercase, NFC; then
 * IdentifierClass: ASCII printable characters, or non-ASCII letters and digits that have no
 * compatibility decomposition (so 'ﬁ' is refused rather than silently becoming 'fi').
 */
export function prepareLocalpart(local: string): string {
  let prepared: string;
  if (ASCII_IDENTIFIER.test(local)) {
    prepared = local.toLowerCase();
  } else {
    prepared = local.replace(WIDE, (c) => c.normalize('NFKC')).toLowerCase().normalize('NFC');
    for (const ch of prepared) {
      if (ch.charCodeAt(0) < 0x80) {
        if (ch < '\x21' || ch > '\x7e') throw malformed('localpart contains a space or control character');
      } else if (!LETTER_DIGIT.test(ch) || PRECIS_DISALLOWED.test(ch) || ch.normalize('NFKC') !== ch) {
        throw malformed(`localpart contains a disallowed character U+${ch.codePointAt(0)!.toString(16).toUpperCase().padStart(4, '0')}`);
      }
    }
    // RFC 8265 §3.3.2 rule 5 (directionality); an ASCII localpart holds no right-to-left text.
    checkBidiRule(prepared, 'localpart');
  }
  checkLength(prepared, 'localpart');
  if (LOCALPART_FORBIDDEN.test(prepared)) throw malformed('localpart contains a forbidden character');
  return prepared;
}

/**
 * §3.2: a domainpart is an IP literal, an IPv4 address or a DNS name whose labels are LDH labels
 * or U-labels (IDNA2008). Prepared: lowercase, without the final dot (§3.2.1), A-labels turned
 * into U-labels (§3.2.2) so that 'xn--bcher-kva.example' and 'bücher.example' are one domain.
 */
export function prepareDomainpart(domain: string): string {
  if (domain.startsWith('[')) {
    // §3.2.1: an IPv6 address in brackets, as in URIs (RFC 3986 §3.2.2).
    const inner = domain.endsWith(']') ? domain.slice(1, -1) : '';
    if (!isIPv6(inner) || inner.includes('%')) throw malformed('malformed IPv6 literal');
    // One spelling per address (RFC 5952 form), so '[0:0::1]' and '[::1]' are one domain.
    return new URL(`http://[${inner}]/`).hostname;
  }
  let ascii: string;
  if (ASCII_IDENTIFIER.test(domain)) {
    ascii = domain.toLowerCase();
  } else {
    // UTS #46 mapping (width, case, ideographic full stops) and IDNA conversion to A-labels.
    ascii = domainToASCII(domain);
    if (ascii === '') throw malformed('domainpart is not a valid internationalized domain name');
  }
  if (ascii.endsWith('.')) ascii = ascii.slice(0, -1);
  if (ascii.length === 0) throw malformed('empty domainpart');
  if (!isIPv4(ascii)) {
    for (const label of ascii.split('.')) {
      if (label.length === 0) throw malformed('empty label in domainpart');
      if (label.length > 63) throw malformed('domain label longer than 63 octets');
      if (!LDH_LABEL.test(label)) throw malformed('domainpart contains a character not allowed in host names');
    }
  }
  let prepared = ascii;
  if (/(?:^|\.)xn--/.test(ascii)) {
    prepared = domainToUnicode(ascii);
    // An A-label that does not decode to a valid U-label (bad Punycode) does not round-trip.
    if (prepared === '' || domainToASCII(prepared) !== ascii) throw malformed('invalid A-label in domainpart');
    // IDNA2008 (RFC 5892) admits letters, digits and marks only; UTS #46 alone would pass emoji.
    for (const ch of prepared) {
      if (ch.charCodeAt(0) >= 0x80 && (!LETTER_DIGIT.test(ch) || PRECIS_DISALLOWED.test(ch))) {
        throw malformed('domainpart contains a character IDNA2008 does not allow');
      }
    }
  }
  checkLength(prepared, 'domainpart');
  return prepared;
}

/**
 * §3.4: the OpaqueString profile (RFC 8265 §4.2): non-ASCII spaces become U+0020, NFC, case
 * kept; FreeformClass allows symbols, punctuation and spaces but no controls or ignorables.
 */
export function prepareResourcepart(resource: string): string {
  let prepared = resource;
  if (!ASCII_FREEFORM.test(resource)) {
    prepared = resource.replace(NON_ASCII_SPACE, ' ').normalize('NFC');
    if (PRECIS_DISALLOWED.test(prepared)) throw malformed('resourcepart contains a disallowed character');
  }
  checkLength(prepared, 'resourcepart');
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
    bare?: string,
  ) {
    this.bare = bare ?? (local === null ? domain : `${local}@${domain}`);
    this.full = resource === null ? this.bare : `${this.bare}/${resource}`;
  }

  /** Parse and prepare; throws StanzaError('jid-malformed') naming what is wrong. */
  static parse(text: string): Jid {
    // §3.1: split at the first '/', then at the first '@' before it.
    const slash = text.indexOf('/');
    const head = slash === -1 ? text : text.slice(0, slash);
    const resource = slash === -1 ? null : text.slice(slash + 1);
    const at = head.indexOf('@');
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

  /** Build from parts (each prepared; '' is malformed, null is absent). */
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
    // The bare string is shared with this JID: a bound session holds both (account and full).
    return new Jid(this.local, this.domain, prepareResourcepart(resource), this.bare);
  }

  equals(other: Jid): boolean {
    return this.full === other.full;
  }

  toString(): string {
    return this.full;
  }
}

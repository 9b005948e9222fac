/**
 * Stanza rules that need no tokenizer state: element kinds, `type` values, the RFC 6120 §8.2.3
 * semantic verdicts, and the XML declaration check. Pure functions over bytes in memory.
 */
import { A, Atom, Err, Kind, Status, Type } from './layout';
import { Ch } from './chars';

/** Bytes at p equal the ASCII string s. */
export function eqAscii(p: usize, len: i32, s: string): bool {
  if (len != s.length) return false;
  const q = changetype<usize>(s);
  for (let i = 0; i < len; i++) {
    if (<u32>load<u8>(p + <usize>i) != <u32>load<u16>(q + (<usize>i << 1))) return false;
  }
  return true;
}

/**
 * Byte equality, eight bytes at a time, the tail as one overlapping word (names and namespace
 * URIs are short: a byte loop for the last 1-7 bytes cost more than the words before it).
 */
@inline
export function eqBytes(a: usize, b: usize, n: i32): bool {
  const len = <usize>n;
  if (len >= 8) {
    let i: usize = 0;
    while (i + 8 < len) {
      if (load<u64>(a + i) != load<u64>(b + i)) return false;
      i += 8;
    }
    return load<u64>(a + len - 8) == load<u64>(b + len - 8);
  }
  if (len >= 4) return load<u32>(a) == load<u32>(b) && load<u32>(a + len - 4) == load<u32>(b + len - 4);
  if (len >= 2) return load<u16>(a) == load<u16>(b) && load<u16>(a + len - 2) == load<u16>(b + len - 2);
  return len == 0 || load<u8>(a) == load<u8>(b);
}

/** StanzaKind from the local name (RFC 6120 §8: message, presence, iq). */
export function kindOf(p: usize, len: i32): i32 {
  // whole-word compares (little-endian ASCII): this runs once per stanza
  if (len == 7 && load<u32>(p) == 0x7373656d && load<u32>(p + 3) == 0x65676173) return Kind.Message;
  if (len == 8 && load<u64>(p) == 0x65636e6573657270) return Kind.Presence;
  if (len == 2 && load<u16>(p) == 0x7169) return Kind.Iq; // "iq"
  return Kind.Other;
}

// Decoded copy of a short attribute value that contained references.
const TMP: usize = memory.data(64, 8);

/** Decode the five predefined entities and character references below U+0080 into TMP. */
function decodeShort(p: usize, len: i32): i32 {
  let o = 0;
  let i = 0;
  while (i < len) {
    if (o >= 64) return -1;
    const c = <u32>load<u8>(p + <usize>i);
    if (c != Ch.Amp) {
      store<u8>(TMP + <usize>o, c);
      o++;
      i++;
      continue;
    }
    let j = i + 1;
    while (j < len && load<u8>(p + <usize>j) != Ch.Semi) j++;
    const r = p + <usize>i + 1;
    const n = j - i - 1;
    let v: u32 = 0;
    if (n > 1 && load<u8>(r) == Ch.Hash) {
      const hex = load<u8>(r + 1) == Ch.LowerX;
      for (let k = hex ? 2 : 1; k < n; k++) {
        const d = <i32>load<u8>(r + <usize>k);
        v = v * (hex ? 16 : 10) + <u32>(d <= Ch.D9 ? d - Ch.D0 : (d | 0x20) - Ch.LowerA + 10);
        if (v > 0x7f) return -1;
      }
    } else if (eqAscii(r, n, 'lt')) v = Ch.Lt;
    else if (eqAscii(r, n, 'gt')) v = Ch.Gt;
    else if (eqAscii(r, n, 'amp')) v = Ch.Amp;
    else if (eqAscii(r, n, 'apos')) v = Ch.SQuote;
    else v = Ch.DQuote;
    store<u8>(TMP + <usize>o, v);
    o++;
    i = j + 1;
  }
  return o;
}

/** The `type` attribute as a StanzaType; legality per kind is judged by semanticStatus. */
export function decodeType(p: usize, len: i32, amp: bool): i32 {
  if (amp) {
    len = decodeShort(p, len);
    if (len < 0) return Type.Unknown;
    p = TMP;
  }
  // the frequent values by whole-word compares (little-endian ASCII), the rest byte by byte
  switch (len) {
    case 3: {
      const w = <u32>load<u16>(p) | (<u32>load<u8>(p + 2) << 16);
      if (w == 0x746567) return Type.Get;
      if (w == 0x746573) return Type.Set;
      break;
    }
    case 4:
      if (load<u32>(p) == 0x74616863) return Type.Chat;
      break;
    case 5: {
      const w = load<u32>(p);
      const c = load<u8>(p + 4);
      if (w == 0x6f727265 && c == 0x72) return Type.Error;
      if (w == 0x626f7270 && c == 0x65) return Type.Probe;
      break;
    }
    case 6: {
      const w = load<u32>(p);
      const c = load<u16>(p + 4);
      if (w == 0x75736572 && c == 0x746c) return Type.Result;
      if (w == 0x6d726f6e && c == 0x6c61) return Type.Normal;
      break;
    }
    case 8:
      if (eqAscii(p, len, 'headline')) return Type.Headline;
      break;
    case 9:
      if (eqAscii(p, len, 'groupchat')) return Type.Groupchat;
      if (eqAscii(p, len, 'subscribe')) return Type.Subscribe;
      break;
    case 10:
      if (eqAscii(p, len, 'subscribed')) return Type.Subscribed;
      break;
    case 11:
      if (eqAscii(p, len, 'unavailable')) return Type.Unavailable;
      if (eqAscii(p, len, 'unsubscribe')) return Type.Unsubscribe;
      break;
    case 12:
      if (eqAscii(p, len, 'unsubscribed')) return Type.Unsubscribed;
      break;
  }
  return Type.Unknown;
}

/** Narrow a decoded type to the values legal for the kind (others become Unknown). */
export function typeForKind(kind: i32, t: i32): i32 {
  if (t <= Type.Unknown || t == Type.Error) return t;
  if (kind == Kind.Iq) return t <= Type.Result ? t : Type.Unknown;
  if (kind == Kind.Message) return t >= Type.Chat && t <= Type.Normal ? t : Type.Unknown;
  if (kind == Kind.Presence) return t >= Type.Unavailable ? t : Type.Unknown;
  return t;
}

/** Per-stanza verdict; the stream survives and the router answers bad-request. */
export function semanticStatus(
  kind: i32,
  type: i32,
  hasId: bool,
  childCount: i32,
  hasErrorChild: bool,
): i32 {
  if (kind == Kind.Iq) {
    // RFC 6120 §8.2.3: an IQ MUST carry an id and a type of get, set, result or error
    if (!hasId) return Status.IqMissingId;
    if (type <= Type.Unknown) return Status.IqBadType;
    // §8.2.3 (6): get/set contain exactly one payload element
    if ((type == Type.Get || type == Type.Set) && childCount != 1) return Status.IqGetSetChildCount;
    // §8.2.3 (7): result contains zero or one payload element
    if (type == Type.Result && childCount > 1) return Status.IqResultChildCount;
    // §8.3.1: an error stanza carries an <error/> child
    if (type == Type.Error && !hasErrorChild) return Status.IqErrorWithoutError;
    return Status.Ok;
  }
  // RFC 6121 §5.2.2: chat | error | groupchat | headline | normal
  if (kind == Kind.Message) return type == Type.Unknown ? Status.MessageBadType : Status.Ok;
  // RFC 6121 §4.7.1: error | probe | subscribe | subscribed | unavailable | unsubscribe | unsubscribed
  if (kind == Kind.Presence) return type == Type.Unknown ? Status.PresenceBadType : Status.Ok;
  return Status.Ok;
}

/**
 * XML 1.0 §2.8: version first (1.x), then optional encoding, then optional standalone.
 * RFC 6120 §11.6: UTF-8 only.
 */
export function checkXmlDecl(attrs: usize, count: i32, base: usize): i32 {
  let i = 0;
  let field = 0;
  while (i < count) {
    const e = attrs + (<usize>(i * A.Size) << 2);
    const n = base + <usize>load<i32>(e + (A.NameOff << 2));
    const nl = load<i32>(e + (A.NameLen << 2));
    const v = base + <usize>load<i32>(e + (A.ValOff << 2));
    const vl = load<i32>(e + (A.ValLen << 2));
    if (field == 0 && eqAscii(n, nl, 'version')) {
      if (vl < 3 || load<u8>(v) != 0x31 || load<u8>(v + 1) != Ch.Dot) return Err.BadXmlDecl;
      for (let k = 2; k < vl; k++) {
        const d = <i32>load<u8>(v + <usize>k);
        if (d < Ch.D0 || d > Ch.D9) return Err.BadXmlDecl;
      }
      field = 1;
    } else if (field == 1 && eqAscii(n, nl, 'encoding')) {
      // encoding names compare case-insensitively (XML 1.0 §4.3.3)
      const utf8 =
        vl == 5 &&
        (load<u8>(v) | 0x20) == 0x75 &&
        (load<u8>(v + 1) | 0x20) == 0x74 &&
        (load<u8>(v + 2) | 0x20) == 0x66 &&
        load<u8>(v + 3) == Ch.Minus &&
        load<u8>(v + 4) == 0x38;
      if (!utf8) return Err.UnsupportedEncoding;
      field = 2;
    } else if (field >= 1 && field <= 2 && eqAscii(n, nl, 'standalone')) {
      if (!eqAscii(v, vl, 'yes') && !eqAscii(v, vl, 'no')) return Err.BadXmlDecl;
      field = 3;
    } else return Err.BadXmlDecl;
    i++;
  }
  return field == 0 ? Err.BadXmlDecl : Err.None;
}

// ---- atom table: decode a repeated value once on the JS side ----
const ATOMS: usize = memory.data(Atom.Slots * Atom.SlotSize, 16);

/**
 * Intern a short ASCII value: returns (slot + 1) and sets atomGen, or 0 when it does not fit.
 * A two-way set-associative cache: a new value evicts the less recently used slot of its pair
 * and bumps that slot's generation, so JS can keep one decoded string per slot and trust it
 * while the generation matches. (The clock wrapping after 2^32 values only blurs which slot of
 * a pair is evicted.)
 */
export let atomGen: i32 = 0;
let atomClock: u32 = 0;

/** Slot e holds the value [p, p+len). */
@inline function atomIs(e: usize, p: usize, len: i32): bool {
  return load<i32>(e + 4) == len && eqBytes(e + 12, p, len);
}

export function intern(p: usize, len: i32): i32 {
  if (len == 0 || len > Atom.MaxLen) return 0;
  // every byte counts: JIDs that differ only in the middle (juliet@example.com/balcony,
  // juliet@example.net/balcony) must not share a slot, or they evict each other on every stanza
  let x: u64 = <u64>len;
  let i = 0;
  while (i + 8 <= len) {
    x = (x ^ load<u64>(p + <usize>i)) * 0x9e3779b97f4a7c15;
    x ^= x >> 29;
    i += 8;
  }
  if (i < len) {
    // the last 8 bytes again (overlapping), or the whole short value byte by byte
    let t: u64 = 0;
    if (len >= 8) t = load<u64>(p + <usize>len - 8);
    else for (; i < len; i++) t = (t << 8) | <u64>load<u8>(p + <usize>i);
    x = (x ^ t) * 0xc2b2ae3d27d4eb4f;
  }
  const h = <u32>(x >> 40);
  // two-way set: the value may sit in either slot of its pair; a new one replaces the pair's
  // less recently used slot, so two hot values that hash alike do not evict each other
  const pair = ATOMS + <usize>((h & (Atom.Slots - 2)) * Atom.SlotSize);
  atomClock++;
  let e = pair;
  if (!atomIs(e, p, len)) {
    e = pair + Atom.SlotSize;
    if (!atomIs(e, p, len)) {
      e = load<u32>(pair + 8) <= load<u32>(e + 8) ? pair : e;
      memory.copy(e + 12, p, len);
      store<i32>(e + 4, len);
      store<i32>(e, load<i32>(e) + 1);
    }
  }
  store<u32>(e + 8, atomClock);
  atomGen = load<i32>(e);
  return <i32>((e - ATOMS) / Atom.SlotSize) + 1;
}

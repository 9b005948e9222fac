/**
 * Resumable XML tokenizer and stanza framer for one XMPP stream (RFC 6120 §4), run over a window
 * of bytes in linear memory. One call of `run(state)` advances until it has one event to report
 * (stream header, complete top-level element, stream end, fatal error) or the window is used up.
 *
 * Resumability: every scanning state keeps its position; offsets recorded inside an element are
 * relative to the element's first byte (`sStart`), so the unfinished element can be moved into
 * the connection's retained block and the next chunk appended after it without rescanning.
 * Only bounded look-aheads are re-read after a chunk boundary: a split UTF-8 sequence (≤3 bytes),
 * an entity/character reference (≤40 bytes), `<!`, `<![CDATA[`, `]]>`, the XML declaration
 * prefix. A stanza arriving one byte at a time therefore costs linear time.
 *
 * While running, the state lives in module globals (WASM globals); `load`/`save` move it between
 * the connection's state block and the globals, and the per-element tables (open-element stack,
 * in-stanza namespace bindings, attributes of the current tag) live in static scratch tables that
 * are spilled to a small block only when a chunk ends inside an element.
 */
import { A, Err, Ev, F, Fl, Kind, Phase, R, Type } from './layout';
import { alloc, free, capacity } from './alloc';
import { C, Ch, cls, isNameCp, isNameStartCp, isXmlChar, XML_NS, XML_NS_LEN } from './chars';
import { decodeType, typeForKind, kindOf, semanticStatus, eqBytes, eqAscii, checkXmlDecl, intern, atomGen } from './rules';

// ---- static scratch tables (one set per instance; spilled per connection when needed) ----
export const DEPTH_CAP: i32 = 256;
export const ATTR_CAP: i32 = 256;
export const NS_CAP: i32 = 512;
/** per open element: name offset (rel), name length */
export const ELEM: usize = memory.data(DEPTH_CAP * 8, 16);
/** per binding: prefix off (rel), prefix len, uri off (rel), uri len, level, amp */
export const NS_SIZE: i32 = 24;
export const NSS: usize = memory.data(NS_CAP * NS_SIZE, 16);
/** attributes of the tag being read, A.Size i32 each */
export const ATTRS: usize = memory.data(ATTR_CAP * A.Size * 4, 16);
/** the descriptor ring: R.Cap entries of R.Slots i32 (layout.ts R) */
export const RING: usize = memory.data(R.Cap * R.Slots * 4, 16);

/** Tokenizer states. */
export const enum Tok {
  PrologStart = 0,
  Top = 1,
  Lt = 2,
  StartName = 3,
  InTag = 4,
  AttrName = 5,
  AttrEq = 6,
  AttrQuote = 7,
  AttrVal = 8,
  TagSlash = 9,
  DeclQ = 10,
  EndName = 11,
  EndWs = 12,
  Text = 13,
  Cdata = 14,
}

export const enum TagKind {
  Element = 0,
  XmlDecl = 1,
}

/** Aux bits */
export const enum Aux {
  /** the next run reports Ev.StreamClose (a self-closing header, or a close after a batch) */
  PendingClose = 1,
  HadXmlDecl = 2,
  /** the next run reports Ev.Error (found after a batch of stanzas) */
  PendingError = 4,
}

/** Control signals from a state function to the run loop. */
const enum Sig {
  Go = 0,
  More = 1,
  Event = 2,
}

// ---- running state (globals) ----
export let st: usize = 0;
export let tok: i32 = 0;
export let phase: i32 = 0;
export let depth: i32 = 0;
export let nsCount: i32 = 0;
export let attrCount: i32 = 0;
/** absolute address of the current element's '<' (0 = none retained) */
export let sStart: usize = 0;
export let nameStart: usize = 0;
export let elemNameLen: i32 = 0;
export let elemColon: i32 = -1;
export let tagKind: i32 = 0;
let wsSeen: i32 = 0;
let preWs: usize = 0;
let attrNameStart: usize = 0;
let attrNameLen: i32 = 0;
let attrColon: i32 = -1;
let quote: i32 = 0;
let valStart: usize = 0;
let valAmp: i32 = 0;
export let aux: i32 = 0;
export let maxBytes: i32 = 0;
export let maxDepth: i32 = 0;
export let maxAttrs: i32 = 0;
let winEnd: usize = 0;
let sig: i32 = 0;
let event: i32 = 0;
/** scratch: colon index of the name being scanned (-1 none, -2 several) */
let curColon: i32 = -1;
/** length of the last decoded UTF-8 sequence */
let u8n: i32 = 0;
let u8err: i32 = 0;

let scratch: usize = 0;
let scratchOwner: usize = 0;
/**
 * The state whose unfinished element's tables are still in the scratch tables. They are copied
 * out only when another connection runs in between, so a sender trickling one element byte by
 * byte does not pay a table copy per byte.
 */
let tablesOwner: usize = 0;

@inline export function S(f: i32): i32 {
  return load<i32>(st + (<usize>f << 2));
}
@inline export function W(f: i32, v: i32): void {
  store<i32>(st + (<usize>f << 2), v);
}
@inline function SO(o: usize, f: i32): i32 {
  return load<i32>(o + (<usize>f << 2));
}
@inline function WO(o: usize, f: i32, v: i32): void {
  store<i32>(o + (<usize>f << 2), v);
}
/** The window ends here: resume at p when more bytes arrive. */
@inline function more(p: usize): usize {
  sig = Sig.More;
  return p;
}

@inline function rel(a: usize): i32 {
  return <i32>(a - sStart);
}

// ---- events ----
export function emit(ev: i32): void {
  event = ev;
  sig = Sig.Event;
}

export function fail(code: i32, at: usize): void {
  W(F.ErrCode, code);
  W(F.ErrAddr, <i32>at);
  phase = Phase.Failed;
  emit(Ev.Error);
}

// ---- state block lifecycle ----
export function newState(): usize {
  const s = alloc(<usize>F.Size << 2);
  memory.fill(s, 0, <usize>F.Size << 2);
  initState(s);
  return s;
}

function initState(s: usize): void {
  WO(s, F.Phase, Phase.Start);
  WO(s, F.Tok, Tok.PrologStart);
  WO(s, F.Depth, 0);
  WO(s, F.NsCount, 0);
  WO(s, F.Base, 0);
  WO(s, F.Len, 0);
  WO(s, F.PosRel, 0);
  WO(s, F.SStartRel, -1);
  WO(s, F.Aux, 0);
  WO(s, F.ErrCode, 0);
}

/** Forget the stream (RFC 6120 §5.4.3.3, §6.4.6: restart after STARTTLS / SASL); keep limits. */
export function resetState(s: usize): void {
  free(<usize>SO(s, F.Pend));
  free(<usize>SO(s, F.Tables));
  free(<usize>SO(s, F.StreamBlock));
  WO(s, F.Pend, 0);
  WO(s, F.PendCap, 0);
  WO(s, F.Tables, 0);
  WO(s, F.StreamBlock, 0);
  if (scratchOwner == s) scratchOwner = 0;
  if (tablesOwner == s) tablesOwner = 0;
  initState(s);
}

export function freeState(s: usize): void {
  resetState(s);
  free(s);
}

/**
 * The bytes of o's unfinished stanza moved by delta: its descriptor's addresses move with them
 * (those inside the window; an inherited namespace points into the stream block). The
 * descriptor exists from the stanza's start tag on, i.e. while depth > 0.
 */
function shiftDescriptor(o: usize, delta: i32): void {
  if (SO(o, F.Depth) == 0 || delta == 0) return;
  WO(o, F.NameEnd, SO(o, F.NameEnd) + delta);
  for (let f = F.ToOff; f <= F.TypeOff; f += 2) {
    const v = SO(o, f);
    if (v >= 0) WO(o, f, v + delta);
  }
  if (SO(o, F.FromAttrStart) >= 0) {
    WO(o, F.FromAttrStart, SO(o, F.FromAttrStart) + delta);
    WO(o, F.FromAttrEnd, SO(o, F.FromAttrEnd) + delta);
  }
  const flags = SO(o, F.Flags);
  if ((flags & Fl.NsAbs) == 0) WO(o, F.NsOff, SO(o, F.NsOff) + delta);
  if (SO(o, F.ChildCount) > 0) {
    WO(o, F.ChildNameOff, SO(o, F.ChildNameOff) + delta);
    if ((flags & Fl.ChildNsAbs) == 0) WO(o, F.ChildNsOff, SO(o, F.ChildNsOff) + delta);
  }
}

/**
 * Move the bytes from `keep` to the end of `o`'s window into its retained block, so that the
 * next chunk can be appended after them. Offsets inside the element are relative to its start
 * and survive the move.
 */
function retain(o: usize, keep: usize): void {
  const base = <usize>SO(o, F.Base);
  const n = <i32>(base + <usize>SO(o, F.Len) - keep);
  const shift = <i32>(keep - base);
  assert(n >= 0 && shift >= 0, 'retain outside the window');
  let pend = <usize>SO(o, F.Pend);
  if (pend != 0 && base == pend) {
    if (shift > 0) memory.copy(pend, keep, n);
  } else {
    if (pend == 0 || SO(o, F.PendCap) < n) {
      free(pend);
      pend = alloc(<usize>(n < 120 ? 120 : n));
      WO(o, F.Pend, <i32>pend);
      WO(o, F.PendCap, capacity(pend));
    }
    memory.copy(pend, keep, n);
    if (scratchOwner == o) scratchOwner = 0;
  }
  shiftDescriptor(o, <i32>(pend - keep));
  WO(o, F.Base, <i32>pend);
  WO(o, F.Len, n);
  WO(o, F.PosRel, SO(o, F.PosRel) - shift);
  const ss = SO(o, F.SStartRel);
  WO(o, F.SStartRel, ss >= 0 ? ss - shift : -1);
}

/** Give up the scratch window: keep what `o` has not consumed yet in its own block. */
function evacuate(o: usize): void {
  const base = <usize>SO(o, F.Base);
  const len = SO(o, F.Len);
  const ss = SO(o, F.SStartRel);
  const keep = base + <usize>(ss >= 0 ? ss : SO(o, F.PosRel));
  if (keep < base + <usize>len) retain(o, keep);
  else {
    WO(o, F.Len, 0);
    WO(o, F.PosRel, 0);
    WO(o, F.SStartRel, -1);
  }
  scratchOwner = 0;
}

/**
 * Make room for `n` new bytes of state `s`'s stream and return where JS must copy them.
 * Idle connections use the shared scratch window; a connection with a retained partial element
 * appends to its own block (grown by doubling, so a byte-at-a-time sender stays linear).
 */
export function prepare(s: usize, n: i32): usize {
  const len = SO(s, F.Len);
  if (len > 0) {
    const need = len + n;
    let pend = <usize>SO(s, F.Pend);
    if (need > SO(s, F.PendCap)) {
      const grown = alloc(<usize>(need < 2 * len ? 2 * len : need));
      memory.copy(grown, <usize>SO(s, F.Base), len);
      shiftDescriptor(s, <i32>(grown - <usize>SO(s, F.Base)));
      free(pend);
      pend = grown;
      WO(s, F.Pend, <i32>pend);
      WO(s, F.PendCap, capacity(pend));
    }
    WO(s, F.Base, <i32>pend);
    WO(s, F.Len, need);
    return pend + <usize>len;
  }
  if (scratchOwner != 0 && scratchOwner != s) evacuate(scratchOwner);
  if (scratch == 0 || capacity(scratch) < n) {
    free(scratch);
    scratch = alloc(<usize>(n < 65536 - 8 ? 65536 - 8 : n));
  }
  scratchOwner = s;
  WO(s, F.Base, <i32>scratch);
  WO(s, F.Len, n);
  WO(s, F.PosRel, 0);
  WO(s, F.SStartRel, -1);
  return scratch;
}

// ---- load / save ----
function load_(s: usize): usize {
  if (tablesOwner != 0 && tablesOwner != s) spillTables(tablesOwner);
  const mine = tablesOwner == s;
  tablesOwner = 0;
  st = s;
  tok = S(F.Tok);
  phase = S(F.Phase);
  depth = S(F.Depth);
  nsCount = S(F.NsCount);
  aux = S(F.Aux);
  maxBytes = S(F.MaxBytes);
  maxDepth = S(F.MaxDepth);
  maxAttrs = S(F.MaxAttrs);
  const base = <usize>S(F.Base);
  winEnd = base + <usize>S(F.Len);
  W(F.WinEnd, <i32>winEnd);
  const ss = S(F.SStartRel);
  sStart = ss >= 0 ? base + <usize>ss : 0;
  attrCount = mine ? S(F.SavedAttrs) : 0;
  if (ss < 0) return base + <usize>S(F.PosRel);
  nameStart = sStart + <usize>S(F.NameStart);
  elemNameLen = S(F.ElemNameLen);
  elemColon = S(F.ElemColon);
  tagKind = S(F.TagKind);
  wsSeen = S(F.WsSeen);
  preWs = sStart + <usize>S(F.PreWs);
  attrNameStart = sStart + <usize>S(F.AttrNameStart);
  attrNameLen = S(F.AttrNameLen);
  attrColon = S(F.AttrColon);
  quote = S(F.Quote);
  valStart = sStart + <usize>S(F.ValStart);
  valAmp = S(F.ValFlags);
  const t = <usize>S(F.Tables);
  if (t != 0) {
    attrCount = S(F.SavedAttrs);
    let q = t;
    const e = <usize>depth << 3;
    memory.copy(ELEM, q, e);
    q += e;
    const ns = <usize>nsCount * NS_SIZE;
    memory.copy(NSS, q, ns);
    q += ns;
    memory.copy(ATTRS, q, <usize>attrCount * (A.Size << 2));
    free(t);
    W(F.Tables, 0);
  }
  return base + <usize>S(F.PosRel);
}

function save(p: usize): void {
  const base = <usize>S(F.Base);
  W(F.Tok, tok);
  W(F.Phase, phase);
  W(F.Depth, depth);
  W(F.NsCount, nsCount);
  W(F.Aux, aux);
  W(F.PosRel, <i32>(p - base));
  W(F.SStartRel, sStart != 0 ? <i32>(sStart - base) : -1);
  if (sStart != 0) {
    W(F.NameStart, rel(nameStart));
    W(F.ElemNameLen, elemNameLen);
    W(F.ElemColon, elemColon);
    W(F.TagKind, tagKind);
    W(F.WsSeen, wsSeen);
    W(F.PreWs, rel(preWs));
    W(F.AttrNameStart, rel(attrNameStart));
    W(F.AttrNameLen, attrNameLen);
    W(F.AttrColon, attrColon);
    W(F.Quote, quote);
    W(F.ValStart, rel(valStart));
    W(F.ValFlags, valAmp);
  }
}

/** Copy state o's tables out of the scratch tables, for another connection is about to run. */
function spillTables(o: usize): void {
  const e = <usize>SO(o, F.Depth) << 3;
  const ns = <usize>SO(o, F.NsCount) * NS_SIZE;
  const at = <usize>SO(o, F.SavedAttrs) * (A.Size << 2);
  const t = alloc(e + ns + at);
  let q = t;
  memory.copy(q, ELEM, e);
  q += e;
  memory.copy(q, NSS, ns);
  q += ns;
  memory.copy(q, ATTRS, at);
  WO(o, F.Tables, <i32>t);
}

// ---- UTF-8 (RFC 3629 §4: no overlongs, no surrogates, nothing above U+10FFFF) ----
/**
 * Decode the sequence whose lead byte (≥0x80) is at p. Returns the code point and sets u8n;
 * -1 when the window ends inside a sequence that is valid so far; -2 on invalid bytes (u8err).
 */
function utf8(p: usize, end: usize): i32 {
  const c = <u32>load<u8>(p);
  let n: i32;
  let cp: u32;
  let lo: u32 = 0x80;
  let hi: u32 = 0xbf;
  if (c < 0xc2) {
    u8err = c >= 0xc0 ? Err.Utf8Overlong : Err.Utf8BadByte;
    return -2;
  } else if (c < 0xe0) {
    n = 2;
    cp = c & 0x1f;
  } else if (c < 0xf0) {
    n = 3;
    cp = c & 0x0f;
    if (c == 0xe0) lo = 0xa0;
    else if (c == 0xed) hi = 0x9f;
  } else if (c < 0xf5) {
    n = 4;
    cp = c & 0x07;
    if (c == 0xf0) lo = 0x90;
    else if (c == 0xf4) hi = 0x8f;
  } else {
    // F5..F7 would start sequences above U+10FFFF; F8..FF never occur in UTF-8
    u8err = c < 0xf8 ? Err.Utf8TooLarge : Err.Utf8BadByte;
    return -2;
  }
  for (let i = 1; i < n; i++) {
    if (p + <usize>i >= end) return -1;
    const b = <u32>load<u8>(p + <usize>i);
    if ((b & 0xc0) != 0x80) {
      u8err = Err.Utf8Truncated;
      return -2;
    }
    if (i == 1 && (b < lo || b > hi)) {
      u8err = b < lo ? Err.Utf8Overlong : c == 0xed ? Err.Utf8Surrogate : Err.Utf8TooLarge;
      return -2;
    }
    cp = (cp << 6) | (b & 0x3f);
  }
  u8n = n;
  return <i32>cp;
}

/** Decode a non-ASCII character of text or an attribute value; returns false on sig set. */
function textChar(p: usize, end: usize): bool {
  const cp = utf8(p, end);
  if (cp >= 0) {
    if (cp == 0xfffe || cp == 0xffff) {
      fail(Err.IllegalChar, p);
      return false;
    }
    return true;
  }
  if (cp == -1) sig = Sig.More;
  else fail(u8err, p);
  return false;
}

/** Length of a NameStartChar at p; 0 when it is not one; -1 need more; -2 after fail(). */
function nameStartAt(p: usize, end: usize): i32 {
  const c = <u32>load<u8>(p);
  if (c < 0x80) return (cls(c) & C.NameStart) != 0 ? 1 : 0;
  const cp = utf8(p, end);
  if (cp == -1) return -1;
  if (cp == -2) {
    fail(u8err, p);
    return -2;
  }
  return isNameStartCp(<u32>cp) ? u8n : 0;
}

/** Scan name characters from p, counting colons into curColon relative to `start`. */
function scanName(p: usize, end: usize, start: usize): usize {
  while (p < end) {
    const c = <u32>load<u8>(p);
    if ((cls(c) & C.Name) != 0) {
      if (c == Ch.Colon) curColon = curColon == -1 ? <i32>(p - start) : -2;
      p++;
      continue;
    }
    if (c < 0x80) return p;
    const cp = utf8(p, end);
    if (cp == -1) break;
    if (cp == -2) {
      fail(u8err, p);
      return p;
    }
    if (!isNameCp(<u32>cp)) {
      fail(Err.BadNameChar, p);
      return p;
    }
    p += <usize>u8n;
  }
  sig = Sig.More;
  return p;
}

/** Namespaces in XML §4: a QName is NCName or NCName ':' NCName. */
function qnameOk(start: usize, len: i32, colon: i32): bool {
  if (colon == -1) return true;
  if (colon < 1 || colon >= len - 1) return false;
  const q = start + <usize>colon + 1;
  const c = <u32>load<u8>(q);
  if (c < 0x80) return (cls(c) & C.NameStart) != 0;
  const cp = utf8(q, start + <usize>len);
  return cp >= 0 && isNameStartCp(<u32>cp);
}

/**
 * A reference at p ('&'). Returns the position after ';', or 0 with sig set (More/Event).
 * RFC 6120 §11.1: only the five predefined entities and character references are allowed.
 */
function reference(p: usize, end: usize): usize {
  let q = p + 1;
  const limit = p + 40;
  if (q >= end) {
    sig = Sig.More;
    return 0;
  }
  if (load<u8>(q) == Ch.Hash) {
    q++;
    let hex = false;
    if (q < end && load<u8>(q) == Ch.LowerX) {
      hex = true;
      q++;
    }
    let v: u32 = 0;
    let digits = 0;
    while (true) {
      if (q >= limit) {
        fail(Err.ReferenceTooLong, p);
        return 0;
      }
      if (q >= end) {
        sig = Sig.More;
        return 0;
      }
      const c = <i32>load<u8>(q);
      if (c == Ch.Semi) break;
      let d: i32;
      if (c >= Ch.D0 && c <= Ch.D9) d = c - Ch.D0;
      else if (hex && c >= Ch.LowerA && c <= Ch.LowerF) d = c - Ch.LowerA + 10;
      else if (hex && c >= Ch.UpperA && c <= Ch.UpperF) d = c - Ch.UpperA + 10;
      else {
        fail(Err.BadReference, p);
        return 0;
      }
      v = v * (hex ? 16 : 10) + <u32>d;
      if (v > 0x10ffff) v = 0x110000;
      digits++;
      q++;
    }
    if (digits == 0) {
      fail(Err.BadReference, p);
      return 0;
    }
    if (!isXmlChar(v)) {
      fail(Err.BadCharRef, p);
      return 0;
    }
    return q + 1;
  }
  // named reference
  const first = <u32>load<u8>(q);
  if (first < 0x80 && (cls(first) & C.NameStart) == 0) {
    fail(Err.BadReference, p);
    return 0;
  }
  while (true) {
    if (q >= limit) {
      fail(Err.ReferenceTooLong, p);
      return 0;
    }
    if (q >= end) {
      sig = Sig.More;
      return 0;
    }
    const c = <u32>load<u8>(q);
    if (c == Ch.Semi) break;
    if (c < 0x80 && (cls(c) & C.Name) == 0) {
      fail(Err.BadReference, p);
      return 0;
    }
    q++;
  }
  const n = <i32>(q - p - 1);
  const a = p + 1;
  const c0 = load<u8>(a);
  let ok = false;
  if (n == 2) ok = load<u8>(a + 1) == 0x74 && (c0 == 0x6c || c0 == 0x67); // lt gt
  else if (n == 3) ok = c0 == 0x61 && load<u8>(a + 1) == 0x6d && load<u8>(a + 2) == 0x70; // amp
  else if (n == 4) {
    const w = load<u32>(a);
    ok = w == 0x736f7061 || w == 0x746f7571; // apos quot
  }
  if (!ok) {
    fail(Err.UndefinedEntity, p);
    return 0;
  }
  return q + 1;
}

@inline function skipWs(p: usize, end: usize): usize {
  while (p < end && (cls(<u32>load<u8>(p)) & C.Ws) != 0) p++;
  return p;
}

// ---- state functions: each returns the new position and may set sig ----

/** Stream byte 0: an optional UTF-8 BOM, then an optional XML declaration (XML 1.0 §2.8). */
function doPrologStart(p: usize, end: usize): usize {
  if (p >= end) return more(p);
  sStart = p;
  if (phase == Phase.Start && load<u8>(p) == 0xef) {
    if (end - p < 3) return more(p);
    if (load<u8>(p + 1) == 0xbb && load<u8>(p + 2) == 0xbf) {
      phase = Phase.Prolog;
      sStart = p + 3;
      return p + 3;
    }
  }
  phase = Phase.Prolog;
  // "<?xml" followed by whitespace
  const avail = <i32>(end - p);
  const n = avail < 6 ? avail : 6;
  let match = true;
  for (let i = 0; i < n && match; i++) {
    const c = <u32>load<u8>(p + <usize>i);
    if (i == 5) match = (cls(c) & C.Ws) != 0;
    else match = c == <u32>load<u8>(changetype<usize>("<?xml") + (<usize>i << 1));
  }
  if (match && n < 6) return more(p);
  if (match) {
    aux |= Aux.HadXmlDecl;
    tok = Tok.InTag;
    tagKind = TagKind.XmlDecl;
    attrCount = 0;
    wsSeen = 1;
    preWs = p + 5;
    return p + 6;
  }
  tok = Tok.Top;
  sStart = 0;
  return p;
}

/** Between top-level elements (and before the header): whitespace only (RFC 6120 §4.6.1). */
function doTop(p: usize, end: usize): usize {
  while (p < end) {
    const c = <u32>load<u8>(p);
    if (c == Ch.Lt) {
      sStart = p;
      if (phase == Phase.Stream && p + 1 < end) {
        const q = load<u8>(p + 1) == Ch.Slash ? fastEndTag(p + 2, end) : fastTag(p, end);
        if (q != 0) return q;
      }
      tok = Tok.Lt;
      return p + 1;
    }
    if ((cls(c) & C.Ws) == 0) {
      fail(Err.TextAtTopLevel, p);
      return p;
    }
    p++;
  }
  sig = Sig.More;
  return p;
}

function doLt(p: usize, end: usize): usize {
  if (p >= end) return more(p);
  const c = <u32>load<u8>(p);
  if (c == Ch.Slash) {
    tok = Tok.EndName;
    nameStart = p + 1;
    curColon = -1;
    return p + 1;
  }
  if (c == Ch.Bang) {
    if (p + 1 >= end) return more(p);
    const c2 = load<u8>(p + 1);
    // RFC 6120 §11.1: comments and DTDs are not allowed on an XML stream
    if (c2 == Ch.Minus) fail(Err.Comment, p - 1);
    else if (c2 == Ch.UpperD) fail(Err.Doctype, p - 1);
    else if (c2 == Ch.LBracket) {
      if (p + 8 > end) return more(p);
      // "[CDATA[" — allowed by XML and not excluded by RFC 6120 §11.1
      const ok = load<u32>(p + 2) == 0x54414443 && load<u8>(p + 6) == 0x41;
      if (!ok || load<u8>(p + 7) != Ch.LBracket) fail(Err.BadMarkupDecl, p - 1);
      else if (depth == 0) fail(Err.TextAtTopLevel, p - 1);
      else {
        tok = Tok.Cdata;
        return p + 8;
      }
    } else fail(Err.BadMarkupDecl, p - 1);
    return p;
  }
  if (c == Ch.Question) {
    // "<?xml" + whitespace/'?' anywhere but at byte 0 is a misplaced XML declaration (XML 1.0
    // §2.8); any other "<?" is a processing instruction, which RFC 6120 §11.1 forbids.
    if (p + 4 >= end) return more(p);
    const w = load<u32>(p);
    const c4 = <u32>load<u8>(p + 4);
    if ((w | 0x20202000) == 0x6c6d783f && ((cls(c4) & C.Ws) != 0 || c4 == Ch.Question)) fail(Err.XmlDeclNotAtStart, p - 1);
    else fail(Err.ProcessingInstruction, p - 1);
    return p;
  }
  const n = nameStartAt(p, end);
  if (n == -1) return more(p);
  if (n == -2) return p;
  if (n == 0) {
    fail(Err.BadTagStart, p);
    return p;
  }
  nameStart = p;
  elemColon = -1;
  attrCount = 0;
  tagKind = TagKind.Element;
  tok = Tok.StartName;
  return p + <usize>n;
}

function doStartName(p: usize, end: usize): usize {
  curColon = elemColon;
  p = scanName(p, end, nameStart);
  elemColon = curColon;
  if (sig != Sig.Go) return p;
  elemNameLen = <i32>(p - nameStart);
  if (!qnameOk(nameStart, elemNameLen, elemColon)) {
    fail(Err.BadQName, nameStart);
    return p;
  }
  tok = Tok.InTag;
  wsSeen = 0;
  return p;
}

function doInTag(p: usize, end: usize): usize {
  while (p < end) {
    const c = <u32>load<u8>(p);
    if ((cls(c) & C.Ws) == 0) break;
    if (wsSeen == 0) {
      wsSeen = 1;
      preWs = p;
    }
    p++;
  }
  if (p >= end) return more(p);
  const c = <u32>load<u8>(p);
  if (c == Ch.Gt) {
    if (tagKind == TagKind.XmlDecl) {
      fail(Err.BadXmlDecl, p);
      return p;
    }
    p++;
    finishStartTag(p, false);
    return p;
  }
  if (c == Ch.Slash) {
    if (tagKind == TagKind.XmlDecl) {
      fail(Err.BadXmlDecl, p);
      return p;
    }
    tok = Tok.TagSlash;
    return p + 1;
  }
  if (c == Ch.Question && tagKind == TagKind.XmlDecl) {
    tok = Tok.DeclQ;
    return p + 1;
  }
  const n = nameStartAt(p, end);
  if (n == -1) return more(p);
  if (n == -2) return p;
  if (n == 0) {
    fail(Err.BadNameChar, p);
    return p;
  }
  // XML 1.0 §3.1: attributes are separated from the name and each other by whitespace
  if (wsSeen == 0) {
    fail(Err.AttrNoSpace, p);
    return p;
  }
  attrNameStart = p;
  attrColon = -1;
  tok = Tok.AttrName;
  return p + <usize>n;
}

function doAttrName(p: usize, end: usize): usize {
  curColon = attrColon;
  p = scanName(p, end, attrNameStart);
  attrColon = curColon;
  if (sig != Sig.Go) return p;
  attrNameLen = <i32>(p - attrNameStart);
  if (!qnameOk(attrNameStart, attrNameLen, attrColon)) {
    fail(Err.BadQName, attrNameStart);
    return p;
  }
  tok = Tok.AttrEq;
  return p;
}

function doAttrEq(p: usize, end: usize): usize {
  p = skipWs(p, end);
  if (p >= end) return more(p);
  if (load<u8>(p) != Ch.Eq) {
    fail(Err.AttrNoEq, p);
    return p;
  }
  tok = Tok.AttrQuote;
  return p + 1;
}

function doAttrQuote(p: usize, end: usize): usize {
  p = skipWs(p, end);
  if (p >= end) return more(p);
  const c = <i32>load<u8>(p);
  if (c != Ch.DQuote && c != Ch.SQuote) {
    fail(Err.AttrNoQuote, p);
    return p;
  }
  quote = c;
  valStart = p + 1;
  valAmp = 0;
  tok = Tok.AttrVal;
  return p + 1;
}

function doAttrVal(p: usize, end: usize): usize {
  while (true) {
    p = skipAttrPlain(p, end, quote);
    while (p < end && (cls(<u32>load<u8>(p)) & C.Attr) == 0) p++;
    if (p >= end) return more(p);
    const c = <i32>load<u8>(p);
    if (c == quote) break;
    if (c == Ch.DQuote || c == Ch.SQuote) {
      p++;
      continue;
    }
    if (c == Ch.Amp) {
      valAmp |= 1;
      const r = reference(p, end);
      if (r == 0) return p;
      p = r;
      continue;
    }
    if (c == Ch.Lt) {
      fail(Err.LtInAttrValue, p);
      return p;
    }
    if (c >= 0x80) {
      valAmp |= 2;
      if (!textChar(p, end)) return p;
      p += <usize>u8n;
      continue;
    }
    fail(Err.IllegalChar, p);
    return p;
  }
  // the closing quote: record the attribute
  if (attrCount >= maxAttrs) {
    fail(Err.TooManyAttrs, attrNameStart);
    return p;
  }
  const nlen = attrNameLen;
  for (let i = 0; i < attrCount; i++) {
    const e = ATTRS + (<usize>(i * A.Size) << 2);
    if (load<i32>(e + (A.NameLen << 2)) != nlen) continue;
    const o = sStart + <usize>load<i32>(e + (A.NameOff << 2));
    if (memory.compare(o, attrNameStart, nlen) == 0) {
      // XML 1.0 §3.1 WFC: Unique Att Spec
      fail(Err.DuplicateAttr, attrNameStart);
      return p;
    }
  }
  const e = ATTRS + (<usize>(attrCount * A.Size) << 2);
  store<i32>(e + (A.NameOff << 2), rel(attrNameStart));
  store<i32>(e + (A.NameLen << 2), nlen);
  store<i32>(e + (A.Colon << 2), attrColon);
  store<i32>(e + (A.ValOff << 2), rel(valStart));
  store<i32>(e + (A.ValLen << 2), <i32>(p - valStart));
  store<i32>(e + (A.Amp << 2), valAmp);
  store<i32>(e + (A.PreWs << 2), rel(preWs));
  store<i32>(e + (A.Spare << 2), 0);
  attrCount++;
  tok = Tok.InTag;
  wsSeen = 0;
  return p + 1;
}

/** After '/' in a start tag or '?' ending the XML declaration: '>' must follow. */
function doTagEnd(p: usize, end: usize, selfClose: bool, err: i32): usize {
  if (p >= end) return more(p);
  if (load<u8>(p) != Ch.Gt) {
    fail(err, p);
    return p;
  }
  p++;
  finishStartTag(p, selfClose);
  return p;
}

function doEndName(p: usize, end: usize): usize {
  if (p >= end) return more(p);
  if (p == nameStart) {
    const n = nameStartAt(p, end);
    if (n == -1) return more(p);
    if (n == -2) return p;
    if (n == 0) {
      fail(Err.BadEndTag, p);
      return p;
    }
    p += <usize>n;
  }
  curColon = 0;
  p = scanName(p, end, nameStart);
  if (sig != Sig.Go) return p;
  elemNameLen = <i32>(p - nameStart);
  tok = Tok.EndWs;
  return p;
}

function doEndWs(p: usize, end: usize): usize {
  p = skipWs(p, end);
  if (p >= end) return more(p);
  if (load<u8>(p) != Ch.Gt) {
    fail(Err.BadEndTag, p);
    return p;
  }
  p++;
  finishEndTag(p);
  return p;
}

// ---- SIMD skips (16 bytes per step) over runs of ordinary characters ----

/**
 * Splatted byte constants, loaded from memory: V8 builds a v128 constant with three
 * instructions at every use (it does not hoist them out of loops); a load from a fixed address
 * is one, often folded into the compare.
 */
const VEC: usize = memory.data<u8>([
  39, 39, 39, 39, 39, 39, 39, 39, 39, 39, 39, 39, 39, 39, 39, 39, 34, 34, 34, 34, 34, 34, 34, 34, 34, 34, 34, 34, 34, 34, 34, 34, 60, 60, 60, 60, 60, 60, 60, 60, 60, 60, 60, 60, 60, 60, 60, 60, 38, 38, 38, 38, 38, 38, 38, 38, 38, 38, 38, 38, 38, 38, 38, 38, 32, 32, 32, 32, 32, 32, 32, 32, 32, 32, 32, 32, 32, 32, 32, 32, 93, 93, 93, 93, 93, 93, 93, 93, 93, 93, 93, 93, 93, 93, 93, 93, 224, 224, 224, 224, 224, 224, 224, 224, 224, 224, 224, 224, 224, 224, 224, 224, 237, 237, 237, 237, 237, 237, 237, 237, 237, 237, 237, 237, 237, 237, 237, 237, 239, 239, 239, 239, 239, 239, 239, 239, 239, 239, 239, 239, 239, 239, 239, 239, 194, 194, 194, 194, 194, 194, 194, 194, 194, 194, 194, 194, 194, 194, 194, 194, 192, 192, 192, 192, 192, 192, 192, 192, 192, 192, 192, 192, 192, 192, 192, 192, 223, 223, 223, 223, 223, 223, 223, 223, 223, 223, 223, 223, 223, 223, 223, 223, 15, 15, 15, 15, 15, 15, 15, 15, 15, 15, 15, 15, 15, 15, 15, 15, 1, 3, 3, 3, 3, 3, 3, 3, 3, 3, 18, 2, 2, 6, 6, 10, 0, 0, 4, 1, 2, 25, 2, 17, 0, 0, 0, 0, 0, 0, 0, 0, 58, 58, 58, 58, 58, 58, 58, 58, 58, 58, 58, 58, 58, 58, 58, 58, 255, 255, 255, 255, 0, 0, 0, 0, 255, 255, 255, 255, 0, 0, 0, 0,
], 16);
const enum V {
  SQuote = 0,
  DQuote = 1,
  Lt = 2,
  Amp = 3,
  Space = 4,
  RBracket = 5,
  E0 = 6,
  ED = 7,
  EF = 8,
  C2 = 9,
  C0 = 10,
  DF = 11,
  Nib = 12,
  /** name character classes by low and by high nibble (nameStops) */
  NameLo = 13,
  NameHi = 14,
  Colon = 15,
  /** i32 lanes -1, 0, -1, 0: two absent (offset, length) spans of the descriptor */
  Spans = 16,
}
@inline function vc(i: i32): v128 {
  return v128.load(VEC + (<usize>i << 4));
}

/** First position in [p, end-15) whose byte may end an attribute value quoted by q. */
@inline function skipAttrPlain(p: usize, end: usize, q: i32): usize {
  const vq = i8x16.splat(<i8>q);
  const vlt = vc(V.Lt);
  const vamp = vc(V.Amp);
  const vsp = vc(V.Space);
  while (p + 16 <= end) {
    const v = v128.load(p);
    // signed < 0x20 catches both controls and every byte ≥ 0x80
    const m = v128.or(v128.or(i8x16.eq(v, vq), i8x16.eq(v, vlt)), v128.or(i8x16.eq(v, vamp), i8x16.lt_s(v, vsp)));
    const bits = i8x16.bitmask(m);
    if (bits != 0) return p + <usize>ctz(bits);
    p += 16;
  }
  return p;
}

/** Bits of the bytes in v that stop character data whatever their neighbours: '<' '&' ']' and controls. */
@inline function textStops(v: v128): u32 {
  const m = v128.or(
    v128.or(i8x16.eq(v, vc(V.Lt)), i8x16.eq(v, vc(V.Amp))),
    v128.or(i8x16.eq(v, vc(V.RBracket)), i8x16.lt_u(v, vc(V.Space))),
  );
  return <u32>i8x16.bitmask(m);
}

/** First position in [p, end-15) whose byte may end a run of character data (or is non-ASCII). */
@inline function skipTextPlain(p: usize, end: usize): usize {
  while (p + 16 <= end) {
    const v = v128.load(p);
    const bits = textStops(v) | <u32>i8x16.bitmask(v);
    if (bits != 0) return p + <usize>ctz(bits);
    p += 16;
  }
  return p;
}

/**
 * From a non-ASCII byte at p, 16 bytes at a time: validate every UTF-8 sequence that starts
 * before the first markup or control byte of the block, and skip the ASCII between them without
 * looking at it again. Returns where the scan stopped (a markup/control byte, or fewer than 16
 * bytes before `end`, or at a block with more than 8 non-ASCII bytes); with sig set (More or a
 * failure) it returns the offending lead byte.
 */
function skipTextUtf8(p: usize, end: usize): usize {
  while (p + 16 <= end) {
    const v = v128.load(p);
    const stop = textStops(v);
    const lim: u32 = stop == 0 ? 16 : ctz(stop);
    const mlim: u32 = (<u32>1 << lim) - 1;
    // lead and continuation bytes before the stop; each sequence clears the bits it covers
    let hi = <u32>i8x16.bitmask(v) & mlim;
    // Only 2-byte (C2..DF) and 3-byte (E1..EC, EE) sequences, which can be neither overlong,
    // surrogates nor U+FFFE/FFFF: the whole block is checked by masks — every lead's
    // continuation positions must be exactly the 80..BF bytes (RFC 3629 §4). A sequence that
    // runs past the block restarts the next block at its lead; one that runs into a stop byte,
    // and any other lead byte, goes to the per-sequence loop below, which reports the error.
    const special = v128.or(
      v128.or(i8x16.eq(v, vc(V.E0)), i8x16.eq(v, vc(V.ED))),
      v128.or(i8x16.ge_u(v, vc(V.EF)), i8x16.lt_u(v, vc(V.C2))),
    );
    if (((<u32>i8x16.bitmask(v128.and(special, v128.not(i8x16.lt_s(v, vc(V.C0)))))) & hi) == 0) {
      const cont = <u32>i8x16.bitmask(i8x16.lt_s(v, vc(V.C0))) & hi;
      const l3 = <u32>i8x16.bitmask(i8x16.gt_s(v, vc(V.DF))) & hi;
      const l2 = hi & ~cont & ~l3;
      // leads whose sequence does not end inside the block (only possible without a stop)
      const cross = stop == 0 ? (l2 & 0x8000) | (l3 & 0xc000) : 0;
      const adv: u32 = cross == 0 ? lim : ctz(cross);
      const m: u32 = (<u32>1 << adv) - 1;
      const a2 = l2 & ~cross;
      const a3 = l3 & ~cross;
      const want = (a2 << 1) | (a3 << 1) | (a3 << 2);
      if (((cont ^ want) & m) == 0 && (want & ~m) == 0) {
        if (stop != 0) return p + <usize>lim;
        p += <usize>adv;
        continue;
      }
    }
    // dense non-ASCII the masks did not settle (4-byte sequences, special leads, errors): the
    // caller's scalar loop is cheaper than a mask per character
    if (popcnt(hi) > 8) return p;
    let q = p;
    while (hi != 0) {
      const a = p + <usize>ctz(hi);
      const d = <u32>load<u8>(a);
      if (d < 0xe0 && d >= 0xc2 && a + 1 < end && (load<u8>(a + 1) & 0xc0) == 0x80) {
        q = a + 2;
      } else if (d > 0xe0 && d < 0xef && d != 0xed && a + 2 < end && (load<u16>(a + 1) & 0xc0c0) == 0x8080) {
        q = a + 3;
      } else {
        // overlong/surrogate-prone leads, 4-byte sequences, U+FFFE/FFFF, stray bytes, window end
        if (!textChar(a, end)) return a;
        q = a + <usize>u8n;
      }
      const k = <u32>(q - p);
      hi = k >= 32 ? 0 : hi & ~((<u32>1 << k) - 1);
    }
    // a sequence never spans a stop byte (continuation bytes are >= 0x80)
    if (stop != 0) return p + <usize>lim;
    p = max(q, p + 16);
  }
  return p;
}

/**
 * End of the run of ASCII NameChars starting at p (low 32 bits) and the offset of its one ':'
 * relative to `from` (high 32 bits: -1 none, -2 several). Both in one i64 rather than a global
 * for the colon, whose store and immediate reload stalled every name. Byte by byte, for what
 * the 16-byte nameStops cannot take: names of 16 bytes or more, the window's last bytes, and
 * recordAttrs' walk.
 */
@inline function nameRun(p: usize, end: usize, from: usize): u64 {
  let colon = -1;
  while (p < end) {
    const c = <u32>load<u8>(p);
    if ((cls(c) & C.Name) == 0) break;
    if (c == Ch.Colon) colon = colon == -1 ? <i32>(p - from) : -2;
    p++;
  }
  return (<u64>(<u32>colon) << 32) | <u64>p;
}
/**
 * Bits of the 16 bytes of v that are not ASCII NameChars (XML 1.0 §2.3) or are ':', plus bit
 * 16. Two 16-entry lookups, by low and by high nibble, whose AND is non-zero exactly for
 * [-.0-9A-Z_a-z]: bit 0 = low nibble 0..9 under high 3, 5, 7 (digits, P..Y, p..y); bit 4 = low
 * a under high 5, 7 ('Z', 'z'); bit 1 = low 1..f under high 4, 6 (A..O, a..o); bit 2 = '-' '.';
 * bit 3 = '_'. A name therefore stops at its colon, and the (rare) prefixed name is measured
 * again by nameRun: the common unprefixed name pays no colon compare.
 */
@inline function nameStops(v: v128): u32 {
  const nib = vc(V.Nib);
  const lo = i8x16.swizzle(vc(V.NameLo), v128.and(v, nib));
  const hi = i8x16.swizzle(vc(V.NameHi), v128.and(i16x8.shr_u(v, 4), nib));
  return <u32>i8x16.bitmask(i8x16.eq(v128.and(lo, hi), i8x16.splat(0))) | 0x10000;
}

@inline function runEnd(r: u64): usize {
  return <usize>(<u32>r);
}
@inline function runColonOf(r: u64): i32 {
  return <i32>(r >> 32);
}

/**
 * An end tag from just after "</" (its own small function: half of all tags are end tags, and
 * they need none of the start tag's registers).
 */
function fastEndTag(ns: usize, end: usize): usize {
  if (depth > 0) {
    // the common case: exactly the open element's name, then '>' (XML 1.0 §3 Element Type Match)
    const top = ELEM + (<usize>(depth - 1) << 3);
    const len = load<i32>(top + 4);
    const gt = ns + <usize>len;
    if (gt < end && load<u8>(gt) == Ch.Gt && eqBytes(sStart + <usize>load<i32>(top), ns, len)) {
      closeElement(gt + 1);
      return gt + 1;
    }
  }
  if (ns >= end || (cls(<u32>load<u8>(ns)) & C.NameStart) == 0) return 0;
  let p = ns + 1;
  while (p < end && (cls(<u32>load<u8>(p)) & C.Name) != 0) p++;
  if (p >= end || load<u8>(p) != Ch.Gt) return 0;
  nameStart = ns;
  elemNameLen = <i32>(p - ns);
  finishEndTag(p + 1);
  return p + 1;
}

/**
 * Fill the attribute table with the n attributes of a start tag that fastTag has checked, from
 * just after the element name: names, '=' and quoted values without references or non-ASCII,
 * so the walk needs no checks. For the general start-tag routine and the exact duplicate check.
 */
function recordAttrs(p: usize, n: i32): void {
  const base = sStart;
  for (let i = 0; i < n; i++) {
    const ws = p;
    while ((cls(<u32>load<u8>(p)) & C.Ws) != 0) p++;
    const an = p;
    const r = nameRun(p + 1, p + 0x7fffffff, an);
    p = runEnd(r);
    const alen = <i32>(p - an);
    while (load<u8>(p) != Ch.DQuote && load<u8>(p) != Ch.SQuote) p++;
    const q = load<u8>(p);
    const vs = ++p;
    while (load<u8>(p) != q) p++;
    const e = ATTRS + (<usize>(i * A.Size) << 2);
    store<i32>(e + (A.NameOff << 2), <i32>(an - base));
    store<i32>(e + (A.NameLen << 2), alen);
    store<i32>(e + (A.Colon << 2), runColonOf(r));
    store<i32>(e + (A.ValOff << 2), <i32>(vs - base));
    store<i32>(e + (A.ValLen << 2), <i32>(p - vs));
    store<i32>(e + (A.Amp << 2), 0);
    store<i32>(e + (A.PreWs << 2), <i32>(ws - base));
    store<i32>(e + (A.Spare << 2), 0);
    p++;
  }
}

/** Whether two of the n recorded attributes have the same name (XML 1.0 §3.1). */
function hasDuplicate(n: i32): bool {
  const base = sStart;
  for (let i = 1; i < n; i++) {
    const e = ATTRS + (<usize>(i * A.Size) << 2);
    const len = load<i32>(e + (A.NameLen << 2));
    const a = base + <usize>load<i32>(e);
    for (let j = 0; j < i; j++) {
      const d = ATTRS + (<usize>(j * A.Size) << 2);
      if (load<i32>(d + (A.NameLen << 2)) == len && eqBytes(base + <usize>load<i32>(d), a, len)) return true;
    }
  }
  return false;
}

/** fastTag's flags, one word rather than three live booleans */
const enum FT {
  Top = 1,
  Seen = 2,
  Prefixed = 4,
  Self = 8,
  /** the element's own name is prefixed (its colon is in elemColon already) */
  ElemPrefixed = 16,
}

/**
 * Fast path for the common tag: ASCII names, attribute values without references or non-ASCII,
 * the whole tag inside the window. Anything else (window end, references, non-ASCII, any error)
 * returns 0 and the resumable state machine reads the same tag again from its '<' — so a byte
 * is scanned at most twice, and errors are always reported by the one slow path.
 */
function fastTag(lt: usize, end: usize): usize {
  // the callers have seen that a byte other than '/' follows the '<'
  let p = lt + 1;
  let c = <u32>load<u8>(p);
  if ((cls(c) & C.NameStart) == 0) return 0;
  const ns = p;
  let nlen: i32 = 16;
  let bits = depth == 0 ? FT.Top : 0;
  if (ns + 16 <= end) {
    // the element name, 16 bytes at once
    const nv = v128.load(ns);
    nlen = <i32>ctz(nameStops(nv));
  }
  if (nlen == 16 || load<u8>(ns + <usize>nlen) == Ch.Colon) {
    // a long or prefixed name, or the window's last bytes
    const r = nameRun(ns + 1, end, ns);
    nlen = <i32>(runEnd(r) - ns);
    const colon = runColonOf(r);
    // Namespaces in XML §3 (a QName); checked here, on the branch that found the colon
    if (colon == -2 || (colon >= 0 && !qnameOk(ns, nlen, colon))) return 0;
    // a prefixed element takes the general routine, as a prefixed attribute does
    if (colon >= 0) {
      bits |= FT.Prefixed | FT.ElemPrefixed;
      elemColon = colon;
    }
  }
  p = ns + <usize>nlen;
  if (p >= end) return 0;
  c = <u32>load<u8>(p);
  // Few live values in the attribute loop, so that V8 can keep them in registers: three
  // booleans in one word, the attribute limit checked after the loop, the state block and the
  // element's base reloaded where a stanza's attribute is recorded.
  let n = 0;
  let xv: usize = 0;
  let xl = 0;
  let names: u64 = 0;
  // a stanza's descriptor spans go straight into the state block
  if (depth == 0) clearSpans(st);
  while (true) {
    // p < end here
    const ws = p;
    while ((cls(c) & C.Ws) != 0) {
      if (++p >= end) return 0;
      c = <u32>load<u8>(p);
    }
    // one class test for the frequent case, an attribute name after whitespace; the tag's end
    // ('>' and '/' are not NameStart) is checked only when that test fails
    if (ws == p || (cls(c) & C.NameStart) == 0) {
      if (c == Ch.Gt) {
        p++;
        break;
      }
      if (c != Ch.Slash || p + 1 >= end || load<u8>(p + 1) != Ch.Gt) return 0;
      bits |= FT.Self;
      p += 2;
      break;
    }
    const an = p;
    // the name, 16 bytes at once (longer names, and the window's last 16 bytes: slow path)
    if (an + 16 > end) return 0;
    const nv = v128.load(an);
    let alen = <i32>ctz(nameStops(nv));
    if (alen == 16) return 0;
    p = an + <usize>alen;
    c = <u32>load<u8>(p);
    let cm = 0;
    if (c == Ch.Colon) {
      // Namespaces in XML §3: one colon between two NCNames (names under 16 bytes only)
      const r = nameRun(an + 1, an + 16, an);
      alen = <i32>(runEnd(r) - an);
      if (alen >= 16 || runColonOf(r) < 0 || !qnameOk(an, alen, runColonOf(r))) return 0;
      cm = 1;
      bits |= FT.Prefixed;
      p = an + <usize>alen;
      c = <u32>load<u8>(p);
    }
    if (c == Ch.Eq && ((c = <u32>load<u8>(p + 1)) == Ch.SQuote || c == Ch.DQuote)) {
      // the usual name='value' without spaces around '=' (p + 1 < an + 16 <= end)
      p++;
    } else {
      while ((cls(c) & C.Ws) != 0) {
        if (++p >= end) return 0;
        c = <u32>load<u8>(p);
      }
      if (c != Ch.Eq) return 0;
      do {
        if (++p >= end) return 0;
        c = <u32>load<u8>(p);
      } while ((cls(c) & C.Ws) != 0);
      if (c != Ch.DQuote && c != Ch.SQuote) return 0;
    }
    const q = c;
    const vs = ++p;
    // 16 bytes at a time to this value's quote, '<', '&', a control or a non-ASCII byte (signed
    // < 0x20); the quote's vector is picked by address (V.SQuote, V.DQuote = 0, 1). Anything
    // but the quote, and a value in the window's last 16 bytes, goes to the slow path.
    const vq = v128.load(VEC + (<usize>(q == Ch.DQuote) << 4));
    while (true) {
      if (p + 16 > end) return 0;
      const v = v128.load(p);
      const m = v128.or(v128.or(i8x16.eq(v, vq), i8x16.eq(v, vc(V.Lt))), v128.or(i8x16.eq(v, vc(V.Amp)), i8x16.lt_s(v, vc(V.Space))));
      const mb = i8x16.bitmask(m);
      if (mb != 0) {
        p += <usize>ctz(mb);
        break;
      }
      p += 16;
    }
    if (<u32>load<u8>(p) != q) return 0;
    // Nothing is recorded per attribute: the common tag needs no attribute table. A 64-bit set
    // of (first byte, last byte, length) hashes tells that no name can repeat; a hit only means
    // the exact check below has to run (XML 1.0 §3.1, Unique Att Spec).
    const h = <u32>load<u8>(an) * 14 + <u32>load<u8>(an + <usize>alen - 1) + (<u32>alen << 3);
    const bit = <u64>1 << <u64>(h & 63);
    if ((names & bit) != 0) bits |= FT.Seen;
    names |= bit;
    n++;
    // the attributes the descriptor and the namespace scope need, picked out in this same pass
    if (cm != 0) {
      // prefixed: for the general routine
    } else if (alen == 5) {
      if (isXmlnsAt(an)) {
        xv = vs;
        xl = <i32>(p - vs);
      }
    } else if ((bits & FT.Top) != 0) {
      const s0 = st;
      const vo = <i32>vs;
      const vl = <i32>(p - vs);
      if (alen == 2) {
        const w = load<u16>(an);
        if (w == 0x6f74) {
          WO(s0, F.ToOff, vo);
          WO(s0, F.ToLen, vl);
        } else if (w == 0x6469) {
          WO(s0, F.IdOff, vo);
          WO(s0, F.IdLen, vl);
        }
      } else if (alen == 4) {
        const w = load<u32>(an);
        if (w == 0x6d6f7266) {
          WO(s0, F.FromOff, vo);
          WO(s0, F.FromLen, vl);
          WO(s0, F.FromAttrStart, <i32>ws);
          WO(s0, F.FromAttrEnd, vo + vl + 1);
        } else if (w == 0x65707974) {
          WO(s0, F.TypeOff, vo);
          WO(s0, F.TypeLen, vl);
        }
      }
    }
    if (++p >= end) return 0;
    c = <u32>load<u8>(p);
  }
  if (n > maxAttrs) return 0;
  const base = sStart;
  const s0 = st;
  const top = (bits & FT.Top) != 0;
  const seen = (bits & FT.Seen) != 0;
  const self = (bits & FT.Self) != 0;
  const level = depth + 1;
  // Unprefixed element, no prefixed attribute, no xmlns='' of the xml namespace, within the
  // limits: nothing but the default namespace can be in play, so the general routine (which
  // would find every failure below) is not needed. Everything else goes through it, with the
  // attribute table it reads filled by a second, cheap walk over the already checked tag.
  const general =
    (bits & FT.Prefixed) != 0 ||
    <i32>(p - base) > maxBytes ||
    level > maxDepth ||
    nsCount >= NS_CAP ||
    (xl == XML_NS_LEN && eqBytes(xv, XML_NS, xl));
  if (general || seen) {
    recordAttrs(ns + <usize>nlen, n);
    if (seen && hasDuplicate(n)) return 0;
  }
  if (general) {
    nameStart = ns;
    elemNameLen = nlen;
    if ((bits & FT.ElemPrefixed) == 0) elemColon = -1;
    tagKind = TagKind.Element;
    attrCount = n;
    finishStartTag(p, self);
    return p;
  }
  const ns0 = nsCount;
  let nsOff: usize = 0;
  let nsLen = 0;
  let nsIn = true;
  let nsAmp = 0;
  if (xv != 0) {
    // Namespaces in XML §3: the default namespace declaration of this element
    const d = NSS + <usize>(nsCount * NS_SIZE);
    store<i32>(d, 0);
    store<i32>(d + 4, 0);
    store<i32>(d + 8, <i32>(xv - base));
    store<i32>(d + 12, xl);
    store<i32>(d + 16, level);
    store<i32>(d + 20, 0);
    nsCount++;
    nsOff = xv;
    nsLen = xl;
  } else if (ns0 == 0 && (top || SO(s0, F.ChildCount) == 0)) {
    // no declaration inside the stanza: the header's default namespace (RFC 6120 §4.8.3)
    nsOff = <usize>SO(s0, F.StreamNsOff);
    nsLen = SO(s0, F.StreamNsLen);
    nsIn = false;
    nsAmp = SO(s0, F.StreamNsAmp);
  } else if (top || (depth == 1 && SO(s0, F.ChildCount) == 0)) {
    resolve(ns, 0);
    nsOff = resOff;
    nsLen = resLen;
    nsIn = resInStanza;
    nsAmp = resAmp;
  }
  if (top) {
    const kind = kindOf(ns, nlen);
    let flags = (nsIn ? 0 : Fl.NsAbs) | (nsAmp != 0 ? Fl.NsAmp : 0);
    WO(s0, F.Kind, kind);
    WO(s0, F.NameEnd, <i32>ns + nlen);
    const to = SO(s0, F.ToOff);
    WO(s0, F.ToAtom, to >= 0 ? intern(<usize>to, SO(s0, F.ToLen)) : 0);
    WO(s0, F.ToAtomGen, atomGen);
    const ty = SO(s0, F.TypeOff);
    WO(s0, F.Type, ty >= 0 ? typeForKind(kind, decodeType(<usize>ty, SO(s0, F.TypeLen), false)) : Type.None);
    WO(s0, F.NsOff, <i32>nsOff);
    WO(s0, F.NsLen, nsLen);
    clearChild(s0);
    attrCount = 0;
    if (self) {
      nsCount = ns0;
      WO(s0, F.Flags, flags | Fl.SelfClosing);
      finishStanza(p);
      return p;
    }
    WO(s0, F.Flags, flags);
  } else {
    // unprefixed (a prefix takes the general routine): the local name is the name
    if (depth == 1) captureChild(ns, nlen, nsOff, nsLen, nsIn, nsAmp);
    attrCount = 0;
    if (self) {
      nsCount = ns0;
      tok = Tok.Text;
      return p;
    }
  }
  const slot = ELEM + (<usize>depth << 3);
  store<i32>(slot, <i32>(ns - base));
  store<i32>(slot + 4, nlen);
  depth = level;
  tok = Tok.Text;
  return p;
}

/** Character data inside a stanza: the hot loop. */
function doText(p: usize, end: usize): usize {
  while (true) {
    if (p >= end) return more(p);
    let c = <u32>load<u8>(p);
    // tags often follow each other directly: the byte already read decides before the SIMD skip
    if (c != Ch.Lt) {
      p = skipTextPlain(p, end);
      while (p < end && (cls(<u32>load<u8>(p)) & C.Text) == 0) p++;
      if (p >= end) return more(p);
      c = <u32>load<u8>(p);
    }
    if (c == Ch.Lt) {
      const q = p + 1 >= end ? <usize>0 : load<u8>(p + 1) == Ch.Slash ? fastEndTag(p + 2, end) : fastTag(p, end);
      if (q == 0) {
        tok = Tok.Lt;
        return p + 1;
      }
      // Inside a stanza (depth >= 1) both fast paths leave tok at Text unless they raised a
      // signal (a complete stanza, an error, the stream's end), so the signal alone decides.
      if (sig != Sig.Go) return q;
      p = q;
      continue;
    }
    if (c == Ch.Amp) {
      const r = reference(p, end);
      if (r == 0) return p;
      p = r;
      continue;
    }
    if (c == Ch.RBracket) {
      // XML 1.0 §2.4: "]]>" may not appear in character data
      if (p + 2 >= end) {
        if (p + 1 < end && load<u8>(p + 1) != Ch.RBracket) {
          p++;
          continue;
        }
        sig = Sig.More;
        return p;
      }
      if (load<u8>(p + 1) == Ch.RBracket && load<u8>(p + 2) == Ch.Gt) {
        fail(Err.CdataEndInText, p);
        return p;
      }
      p++;
      continue;
    }
    if (c >= 0x80) {
      // Non-ASCII text: validate sequences 16 bytes at a time while the window allows
      const q = skipTextUtf8(p, end);
      if (sig != Sig.Go) return q;
      if (q != p) {
        p = q;
        continue;
      }
      // Dense non-ASCII text or the last 15 bytes of the window: a scalar loop until the next
      // markup character.
      // Common complete sequences inline — C2..DF xx and E1..EC/EE xx xx cannot be overlong,
      // surrogates or U+FFFE/FFFF — others fully decoded.
      let d = c;
      while (true) {
        if (d < 0x80) {
          if ((cls(d) & C.Text) != 0) break;
          p++;
        } else if (d < 0xe0 && d >= 0xc2 && p + 1 < end && (load<u8>(p + 1) & 0xc0) == 0x80) {
          p += 2;
        } else if (d > 0xe0 && d < 0xef && d != 0xed && p + 2 < end && (load<u16>(p + 1) & 0xc0c0) == 0x8080) {
          p += 3;
        } else {
          if (!textChar(p, end)) return p;
          p += <usize>u8n;
        }
        if (p >= end) return more(p);
        d = <u32>load<u8>(p);
      }
      continue;
    }
    fail(Err.IllegalChar, p);
    return p;
  }
  return p;
}

/** Inside <![CDATA[ … ]]>: any Char until "]]>". */
function doCdata(p: usize, end: usize): usize {
  while (true) {
    while (p < end && (cls(<u32>load<u8>(p)) & C.Text) == 0) p++;
    if (p >= end) return more(p);
    const c = <u32>load<u8>(p);
    if (c == Ch.Lt || c == Ch.Amp) {
      p++;
      continue;
    }
    if (c == Ch.RBracket) {
      if (p + 2 >= end) {
        if (p + 1 < end && load<u8>(p + 1) != Ch.RBracket) {
          p++;
          continue;
        }
        sig = Sig.More;
        return p;
      }
      if (load<u8>(p + 1) == Ch.RBracket && load<u8>(p + 2) == Ch.Gt) {
        tok = Tok.Text;
        return p + 3;
      }
      p++;
      continue;
    }
    if (c >= 0x80) {
      if (!textChar(p, end)) return p;
      p += <usize>u8n;
      continue;
    }
    fail(Err.IllegalChar, p);
    return p;
  }
  return p;
}

/** Advance state `s` over its window until one event; see Ev. */
export function run(s: usize): i32 {
  if (SO(s, F.Phase) >= Phase.Closed) {
    const a = SO(s, F.Aux);
    WO(s, F.Len, 0);
    WO(s, F.PosRel, 0);
    WO(s, F.SStartRel, -1);
    if ((a & Aux.PendingClose) != 0) {
      WO(s, F.Aux, a & ~Aux.PendingClose);
      return Ev.StreamClose;
    }
    if ((a & Aux.PendingError) != 0) {
      WO(s, F.Aux, a & ~Aux.PendingError);
      return Ev.Error;
    }
    return Ev.NeedMore;
  }
  let p = load_(s);
  const end = winEnd;
  assert(p <= end && (sStart == 0 || sStart <= p), 'resume position outside the window');
  // Stanzas are collected into the ring rather than returned one per call, which saves a
  // JS→WASM call, a state load and save and a turn of JS's loop per stanza.
  let count = 0;
  while (true) {
    sig = Sig.Go;
    while (sig == Sig.Go) {
      switch (tok) {
        case Tok.Text:
          p = doText(p, end);
          break;
        case Tok.Lt:
          p = doLt(p, end);
          break;
        case Tok.StartName:
          p = doStartName(p, end);
          break;
        case Tok.InTag:
          p = doInTag(p, end);
          break;
        case Tok.AttrName:
          p = doAttrName(p, end);
          break;
        case Tok.AttrEq:
          p = doAttrEq(p, end);
          break;
        case Tok.AttrQuote:
          p = doAttrQuote(p, end);
          break;
        case Tok.AttrVal:
          p = doAttrVal(p, end);
          break;
        case Tok.TagSlash:
          p = doTagEnd(p, end, true, Err.BadEmptyTag);
          break;
        case Tok.EndName:
          p = doEndName(p, end);
          break;
        case Tok.EndWs:
          p = doEndWs(p, end);
          break;
        case Tok.Top:
          p = doTop(p, end);
          break;
        case Tok.Cdata:
          p = doCdata(p, end);
          break;
        case Tok.DeclQ:
          p = doTagEnd(p, end, false, Err.BadXmlDecl);
          break;
        case Tok.PrologStart:
          p = doPrologStart(p, end);
          break;
        default:
          unreachable();
      }
    }
    if (sig != Sig.Event || event != Ev.Stanza) break;
    // 7 vector moves (memory.copy is a call into the engine)
    const d = RING + (<usize>(count * R.Slots) << 2);
    v128.store(d, v128.load(s));
    v128.store(d + 16, v128.load(s + 16));
    v128.store(d + 32, v128.load(s + 32));
    v128.store(d + 48, v128.load(s + 48));
    v128.store(d + 64, v128.load(s + 64));
    v128.store(d + 80, v128.load(s + 80));
    v128.store(d + 96, v128.load(s + 96));
    if (++count == R.Cap) break;
  }
  if (count > 0) {
    // The batch goes to JS first; what ended it is reported by the next call. The window is
    // left as it is (no retain, no free) because the descriptors point into it.
    if (sig == Sig.Event) {
      if (event == Ev.StreamClose) aux |= Aux.PendingClose;
      else if (event == Ev.Error) aux |= Aux.PendingError;
    } else if (sig == Sig.More && sStart != 0 && (depth != 0 || nsCount != 0 || attrCount != 0)) {
      W(F.SavedAttrs, attrCount);
      tablesOwner = s;
    }
    save(p);
    return (count << 4) | Ev.Stanza;
  }
  if (sig == Sig.Event) {
    save(p);
    if (event == Ev.Error) {
      WO(s, F.Len, 0);
      WO(s, F.PosRel, 0);
      WO(s, F.SStartRel, -1);
    }
    return event;
  }
  // window used up
  if (sStart != 0 && checkLimitsAtNeedMore(end)) {
    save(p);
    return Ev.Error;
  }
  save(p);
  if (sStart == 0) {
    W(F.Len, 0);
    W(F.PosRel, 0);
    const pend = <usize>S(F.Pend);
    if (pend != 0) {
      free(pend);
      W(F.Pend, 0);
      W(F.PendCap, 0);
    }
    if (scratchOwner == s) scratchOwner = 0;
  } else {
    retain(s, sStart);
    if (depth != 0 || nsCount != 0 || attrCount != 0) {
      W(F.SavedAttrs, attrCount);
      tablesOwner = s;
    }
  }
  return Ev.NeedMore;
}

/**
 * Forget the stanzas of the last batch after the one that ended at `at` (absolute, inside the
 * window): JS re-reads them with the next `run`. Used when a handler feeds another parser (which
 * reuses the ring and may take the scratch window), changes the limits, or throws. Between two
 * top-level elements the whole tokenizer state is "in the stream, at top level".
 */
export function rewind(s: usize, at: usize): void {
  WO(s, F.PosRel, <i32>(at - <usize>SO(s, F.Base)));
  WO(s, F.SStartRel, -1);
  WO(s, F.Tok, Tok.Top);
  WO(s, F.Phase, Phase.Stream);
  WO(s, F.Depth, 0);
  WO(s, F.NsCount, 0);
  WO(s, F.SavedAttrs, 0);
  WO(s, F.Aux, SO(s, F.Aux) & ~(Aux.PendingClose | Aux.PendingError));
  WO(s, F.ErrCode, 0);
  if (tablesOwner == s) tablesOwner = 0;
  free(<usize>SO(s, F.Tables));
  WO(s, F.Tables, 0);
}

export function setSig(v: i32): void {
  sig = v;
}

// ---- framing: what a complete start or end tag means (RFC 6120 §4, Namespaces in XML) ----

let resOff: usize = 0;
let resLen: i32 = 0;
let resInStanza: bool = false;
let resAmp: i32 = 0;

const STREAMS_NS = 'http://etherx.jabber.org/streams';

/** Resolve a prefix (length 0: the default namespace). False when the prefix is unbound. */
function resolve(pfx: usize, plen: i32): bool {
  for (let i = nsCount - 1; i >= 0; i--) {
    const e = NSS + <usize>(i * NS_SIZE);
    if (load<i32>(e + 4) != plen) continue;
    if (plen != 0 && !eqBytes(sStart + <usize>load<i32>(e), pfx, plen)) continue;
    resOff = sStart + <usize>load<i32>(e + 8);
    resLen = load<i32>(e + 12);
    resAmp = load<i32>(e + 20);
    resInStanza = true;
    return true;
  }
  // bindings declared on the stream header apply to every stanza (RFC 6120 §4.8)
  const sb = <usize>S(F.StreamBlock);
  if (sb != 0) {
    const n = load<i32>(sb + 8);
    for (let i = n - 1; i >= 0; i--) {
      const e = sb + 12 + <usize>(i * 20);
      if (load<i32>(e + 4) != plen) continue;
      if (plen != 0 && !eqBytes(<usize>load<i32>(e), pfx, plen)) continue;
      resOff = <usize>load<i32>(e + 8);
      resLen = load<i32>(e + 12);
      resAmp = load<i32>(e + 16);
      resInStanza = false;
      return true;
    }
  }
  resInStanza = false;
  resAmp = 0;
  if (plen == 0) {
    resOff = 0;
    resLen = 0;
    return true;
  }
  if (plen == 3 && eqAscii(pfx, 3, 'xml')) {
    resOff = XML_NS;
    resLen = XML_NS_LEN;
    return true;
  }
  return false;
}

/** The five bytes at n are "xmlns". */
@inline function isXmlnsAt(n: usize): bool {
  return load<u32>(n) == 0x6e6c6d78 && load<u8>(n + 4) == 0x73;
}

@inline function attrEntry(i: i32): usize {
  return ATTRS + (<usize>(i * A.Size) << 2);
}
@inline function af(e: usize, f: i32): i32 {
  return load<i32>(e + (<usize>f << 2));
}

/** Copy the header's qualified name and namespace bindings into the connection's stream block. */
function buildStreamBlock(ns0: i32): bool {
  const count = nsCount - ns0;
  let bytes = elemNameLen;
  for (let i = ns0; i < nsCount; i++) {
    const e = NSS + <usize>(i * NS_SIZE);
    bytes += load<i32>(e + 4) + load<i32>(e + 12);
  }
  free(<usize>S(F.StreamBlock));
  const blk = alloc(<usize>(12 + count * 20 + bytes));
  let q = blk + 12 + <usize>(count * 20);
  memory.copy(q, nameStart, elemNameLen);
  store<i32>(blk, <i32>q);
  store<i32>(blk + 4, elemNameLen);
  store<i32>(blk + 8, count);
  q += <usize>elemNameLen;
  for (let i = 0; i < count; i++) {
    const e = NSS + <usize>((ns0 + i) * NS_SIZE);
    const d = blk + 12 + <usize>(i * 20);
    const pl = load<i32>(e + 4);
    const ul = load<i32>(e + 12);
    memory.copy(q, sStart + <usize>load<i32>(e), pl);
    store<i32>(d, <i32>q);
    store<i32>(d + 4, pl);
    q += <usize>pl;
    memory.copy(q, sStart + <usize>load<i32>(e + 8), ul);
    store<i32>(d + 8, <i32>q);
    store<i32>(d + 12, ul);
    store<i32>(d + 16, load<i32>(e + 20));
    q += <usize>ul;
  }
  W(F.StreamBlock, <i32>blk);
  return true;
}

/** The header start tag is complete (RFC 6120 §4.7, §4.8). */
function streamHeader(p: usize, selfClose: bool, ns0: i32, nsOff: usize, nsLen: i32): void {
  const local = elemColon < 0 ? nameStart : nameStart + <usize>elemColon + 1;
  const llen = elemColon < 0 ? elemNameLen : elemNameLen - elemColon - 1;
  // RFC 6120 §4.9.3.10: the stream element must be in http://etherx.jabber.org/streams
  if (!eqAscii(local, llen, 'stream') || !eqAscii(nsOff, nsLen, STREAMS_NS)) {
    fail(Err.HeaderNotStream, nameStart);
    return;
  }
  buildStreamBlock(ns0);
  nsCount = ns0;
  // the default namespace of every stanza without declarations of its own, found once
  resolve(0, 0);
  W(F.StreamNsOff, <i32>resOff);
  W(F.StreamNsLen, resLen);
  W(F.StreamNsAmp, resAmp);
  W(F.Start, <i32>sStart);
  W(F.End, <i32>p);
  W(F.NameEnd, <i32>(nameStart + <usize>elemNameLen));
  W(F.NsOff, <i32>nsOff);
  W(F.NsLen, nsLen);
  W(F.AttrCount, attrCount);
  W(F.Flags, (aux & Aux.HadXmlDecl) != 0 ? Fl.HadXmlDecl : 0);
  attrCount = 0;
  sStart = 0;
  tok = Tok.Top;
  phase = Phase.Stream;
  if (selfClose) {
    aux |= Aux.PendingClose;
    phase = Phase.Closed;
  }
  emit(Ev.StreamOpen);
}

/**
 * The stanza's attribute spans, absent until an attribute sets them: three stores instead of
 * ten (assembly/layout.ts keeps ToOff..TypeLen as four (offset, length) pairs, then
 * FromAttrStart, FromAttrEnd).
 */
@inline function clearSpans(s0: usize): void {
  const v = vc(V.Spans);
  v128.store(s0 + (F.ToOff << 2), v);
  v128.store(s0 + (F.IdOff << 2), v);
  store<i64>(s0 + (F.FromAttrStart << 2), -1);
}

/** No child yet: ChildNameOff..ChildNsLen are two (offset, length) pairs, then ChildCount. */
@inline function clearChild(s0: usize): void {
  v128.store(s0 + (F.ChildNameOff << 2), vc(V.Spans));
  WO(s0, F.ChildCount, 0);
}

/** Descriptor fields of a stanza's start tag (absolute; shiftDescriptor follows the bytes when they move). */
function captureStanza(nsOff: usize, nsLen: i32, nsIn: bool, nsAmp: i32): void {
  const s0 = st;
  const local = elemColon < 0 ? nameStart : nameStart + <usize>elemColon + 1;
  const llen = elemColon < 0 ? elemNameLen : elemNameLen - elemColon - 1;
  const kind = kindOf(local, llen);
  let flags = 0;
  WO(s0, F.Kind, kind);
  WO(s0, F.NameEnd, <i32>nameStart + elemNameLen);
  clearSpans(s0);
  WO(s0, F.ToAtom, 0);
  let type = Type.None;
  for (let i = 0; i < attrCount; i++) {
    const e = attrEntry(i);
    if (af(e, A.Colon) >= 0) continue;
    const nl = af(e, A.NameLen);
    if (nl != 2 && nl != 4) continue;
    const n = sStart + <usize>af(e, A.NameOff);
    const vo = <i32>sStart + af(e, A.ValOff);
    const vl = af(e, A.ValLen);
    const amp = af(e, A.Amp);
    if (nl == 2) {
      const w = load<u16>(n);
      if (w == 0x6f74) {
        // "to"
        WO(s0, F.ToOff, vo);
        WO(s0, F.ToLen, vl);
        flags |= (amp & 1 ? Fl.ToAmp : 0) | (amp & 2 ? Fl.ToHi : 0);
        if (amp == 0) {
          WO(s0, F.ToAtom, intern(<usize>vo, vl));
          WO(s0, F.ToAtomGen, atomGen);
        }
      } else if (w == 0x6469) {
        // "id"
        WO(s0, F.IdOff, vo);
        WO(s0, F.IdLen, vl);
        flags |= (amp & 1 ? Fl.IdAmp : 0) | (amp & 2 ? Fl.IdHi : 0);
      }
    } else {
      const w = load<u32>(n);
      if (w == 0x6d6f7266) {
        // "from"
        WO(s0, F.FromOff, vo);
        WO(s0, F.FromLen, vl);
        WO(s0, F.FromAttrStart, <i32>sStart + af(e, A.PreWs));
        WO(s0, F.FromAttrEnd, vo + vl + 1);
        flags |= (amp & 1 ? Fl.FromAmp : 0) | (amp & 2 ? Fl.FromHi : 0);
      } else if (w == 0x65707974) {
        // "type"
        WO(s0, F.TypeOff, vo);
        WO(s0, F.TypeLen, vl);
        if (amp & 1) flags |= Fl.TypeAmp;
        type = typeForKind(kind, decodeType(<usize>vo, vl, (amp & 1) != 0));
      }
    }
  }
  WO(s0, F.Type, type);
  WO(s0, F.NsOff, <i32>nsOff);
  if (!nsIn) flags |= Fl.NsAbs;
  WO(s0, F.NsLen, nsLen);
  if (nsAmp) flags |= Fl.NsAmp;
  clearChild(s0);
  WO(s0, F.Flags, flags);
}

/**
 * A direct child of the stanza: count it, describe the first one, note <error/>. Inlined: it
 * runs for every child, and the call cost more than its body (body corpus: -1.2 % instructions).
 */
@inline function captureChild(local: usize, llen: i32, nsOff: usize, nsLen: i32, nsIn: bool, nsAmp: i32): void {
  const s0 = st;
  const cc = SO(s0, F.ChildCount) + 1;
  let flags = SO(s0, F.Flags);
  WO(s0, F.ChildCount, cc);
  if (llen == 5 && load<u32>(local) == 0x6f727265 && load<u8>(local + 4) == 0x72) flags |= Fl.HasErrorChild; // "error"
  if (cc == 1) {
    WO(s0, F.ChildNameOff, <i32>local);
    WO(s0, F.ChildNameLen, llen);
    WO(s0, F.ChildNsOff, <i32>nsOff);
    if (!nsIn) flags |= Fl.ChildNsAbs;
    WO(s0, F.ChildNsLen, nsLen);
    if (nsAmp) flags |= Fl.ChildNsAmp;
  }
  WO(s0, F.Flags, flags);
}

/** A top-level element is complete: semantic verdict, absolute offsets, Ev.Stanza. */
function finishStanza(p: usize): void {
  const s0 = st;
  if (<i32>(p - sStart) > maxBytes) {
    fail(Err.StanzaTooLarge, sStart);
    return;
  }
  const flags = SO(s0, F.Flags);
  WO(s0, 
    F.Status,
    semanticStatus(SO(s0, F.Kind), SO(s0, F.Type), SO(s0, F.IdOff) >= 0, SO(s0, F.ChildCount), (flags & Fl.HasErrorChild) != 0),
  );
  // the other fields are absolute already (shiftDescriptor kept them so across moves)
  WO(s0, F.Start, <i32>sStart);
  WO(s0, F.End, <i32>p);
  sStart = 0;
  tok = Tok.Top;
  emit(Ev.Stanza);
}

function finishStartTag(p: usize, selfClose: bool): void {
  if (tagKind == TagKind.XmlDecl) {
    const e = checkXmlDecl(ATTRS, attrCount, sStart);
    if (e != Err.None) {
      fail(e, sStart);
      return;
    }
    attrCount = 0;
    sStart = 0;
    tok = Tok.Top;
    return;
  }
  if (<i32>(p - sStart) > maxBytes) {
    fail(Err.StanzaTooLarge, sStart);
    return;
  }
  const level = depth + 1;
  if (level > maxDepth) {
    fail(Err.TooDeep, nameStart);
    return;
  }
  const ns0 = nsCount;
  // 1. namespace declarations on this element (Namespaces in XML 1.0 §3)
  let prefixed = 0;
  for (let i = 0; i < attrCount; i++) {
    const e = attrEntry(i);
    const n = sStart + <usize>af(e, A.NameOff);
    const nl = af(e, A.NameLen);
    const colon = af(e, A.Colon);
    let pfx: usize = 0;
    let plen = 0;
    if (colon == -1) {
      if (nl != 5 || !isXmlnsAt(n)) continue;
    } else if (colon == 5 && isXmlnsAt(n)) {
      pfx = n + 6;
      plen = nl - 6;
    } else {
      prefixed++;
      continue;
    }
    store<i32>(e + (A.Spare << 2), 1);
    const v = sStart + <usize>af(e, A.ValOff);
    const vl = af(e, A.ValLen);
    const isXmlUri = vl == XML_NS_LEN && eqBytes(v, XML_NS, vl);
    if (plen > 0) {
      // §3: prefixes cannot be undeclared; xmlns is never declared; xml only to its own name
      const isXmlPfx = plen == 3 && eqAscii(pfx, 3, 'xml');
      // a whitespace-only name is as empty as '' (and never a URI reference, RFC 3986)
      let blank = true;
      for (let k = 0; k < vl && blank; k++) blank = (cls(<u32>load<u8>(v + <usize>k)) & C.Ws) != 0;
      if (blank || (plen == 5 && eqAscii(pfx, 5, 'xmlns')) || isXmlPfx != isXmlUri) {
        fail(Err.BadNsDecl, n);
        return;
      }
    } else if (isXmlUri) {
      fail(Err.BadNsDecl, n);
      return;
    }
    if (nsCount >= NS_CAP) {
      fail(Err.TooManyNsDecls, n);
      return;
    }
    const d = NSS + <usize>(nsCount * NS_SIZE);
    store<i32>(d, plen > 0 ? rel(pfx) : 0);
    store<i32>(d + 4, plen);
    store<i32>(d + 8, rel(v));
    store<i32>(d + 12, vl);
    store<i32>(d + 16, level);
    store<i32>(d + 20, af(e, A.Amp) & 1);
    nsCount++;
  }
  // 2. the element's own namespace: needed for the stanza, its children and the header, and
  // to check a prefix; an unprefixed deeper element always resolves and nobody asks for it
  let nsOff: usize = 0;
  let nsLen = 0;
  let nsIn = false;
  let nsAmp = 0;
  if (elemColon >= 0 || depth == 0 || (depth == 1 && S(F.ChildCount) == 0) || phase == Phase.Prolog) {
    if (!resolve(nameStart, elemColon < 0 ? 0 : elemColon)) {
      fail(Err.UnboundPrefix, nameStart);
      return;
    }
    nsOff = resOff;
    nsLen = resLen;
    nsIn = resInStanza;
    nsAmp = resAmp;
  }
  // 3. prefixed attributes: bound, and unique after expansion (Namespaces in XML §6.3)
  if (prefixed > 0) {
    for (let i = 0; i < attrCount; i++) {
      const e = attrEntry(i);
      const colon = af(e, A.Colon);
      if (colon < 0 || af(e, A.Spare) != 0) continue;
      const n = sStart + <usize>af(e, A.NameOff);
      if (!resolve(n, colon)) {
        fail(Err.UnboundPrefix, n);
        return;
      }
    }
    if (prefixed > 1) {
      for (let i = 0; i < attrCount; i++) {
        const e = attrEntry(i);
        const ci = af(e, A.Colon);
        if (ci < 0 || af(e, A.Spare) != 0) continue;
        const ni = sStart + <usize>af(e, A.NameOff);
        const li = af(e, A.NameLen) - ci - 1;
        for (let j = i + 1; j < attrCount; j++) {
          const f = attrEntry(j);
          const cj = af(f, A.Colon);
          if (cj < 0 || af(f, A.Spare) != 0) continue;
          const nj = sStart + <usize>af(f, A.NameOff);
          if (af(f, A.NameLen) - cj - 1 != li) continue;
          if (!eqBytes(ni + <usize>ci + 1, nj + <usize>cj + 1, li)) continue;
          resolve(ni, ci);
          const uo = resOff;
          const ul = resLen;
          resolve(nj, cj);
          if (ul == resLen && eqBytes(uo, resOff, ul)) {
            fail(Err.DuplicateAttrNs, nj);
            return;
          }
        }
      }
    }
  }
  if (phase == Phase.Prolog) {
    streamHeader(p, selfClose, ns0, nsOff, nsLen);
    return;
  }
  if (depth == 0) captureStanza(nsOff, nsLen, nsIn, nsAmp);
  else if (depth == 1) {
    const local = elemColon < 0 ? nameStart : nameStart + <usize>elemColon + 1;
    const llen = elemColon < 0 ? elemNameLen : elemNameLen - elemColon - 1;
    captureChild(local, llen, nsOff, nsLen, nsIn, nsAmp);
  }
  attrCount = 0;
  if (selfClose) {
    nsCount = ns0;
    if (depth == 0) {
      W(F.Flags, S(F.Flags) | Fl.SelfClosing);
      finishStanza(p);
    } else tok = Tok.Text;
    return;
  }
  const slot = ELEM + (<usize>depth << 3);
  store<i32>(slot, rel(nameStart));
  store<i32>(slot + 4, elemNameLen);
  depth = level;
  tok = Tok.Text;
}

function finishEndTag(p: usize): void {
  const nl = elemNameLen;
  if (depth == 0) {
    if (phase != Phase.Stream) {
      fail(Err.NoStreamHeader, sStart);
      return;
    }
    // RFC 6120 §4.4: the closing tag of the stream
    const sb = <usize>S(F.StreamBlock);
    if (load<i32>(sb + 4) != nl || !eqBytes(<usize>load<i32>(sb), nameStart, nl)) {
      fail(Err.EndTagMismatch, nameStart);
      return;
    }
    phase = Phase.Closed;
    sStart = 0;
    tok = Tok.Top;
    emit(Ev.StreamClose);
    return;
  }
  // XML 1.0 §3 WFC: Element Type Match
  const e = ELEM + (<usize>(depth - 1) << 3);
  if (load<i32>(e + 4) != nl || !eqBytes(sStart + <usize>load<i32>(e), nameStart, nl)) {
    fail(Err.EndTagMismatch, nameStart);
    return;
  }
  closeElement(p);
}

/** The innermost open element ended at p: leave its namespace scope; a stanza may be complete. */
@inline function closeElement(p: usize): void {
  depth--;
  while (nsCount > 0 && load<i32>(NSS + <usize>((nsCount - 1) * NS_SIZE) + 16) > depth) nsCount--;
  if (depth == 0) finishStanza(p);
  else tok = Tok.Text;
}

/** The window ended inside an element: refuse to retain more than the limit allows. */
function checkLimitsAtNeedMore(end: usize): bool {
  if (<i32>(end - sStart) > maxBytes) {
    fail(Err.StanzaTooLarge, sStart);
    return true;
  }
  return false;
}

/**
 * Character classes for the tokenizer: one 256-byte lookup table in static memory, and the
 * XML 1.0 (Fifth Edition) name/char predicates for code points outside ASCII.
 */

/** ASCII characters the tokenizer compares against. */
export const enum Ch {
  Tab = 0x09,
  Lf = 0x0a,
  Cr = 0x0d,
  Space = 0x20,
  Bang = 0x21,
  DQuote = 0x22,
  Hash = 0x23,
  Amp = 0x26,
  SQuote = 0x27,
  Minus = 0x2d,
  Dot = 0x2e,
  Slash = 0x2f,
  D0 = 0x30,
  D9 = 0x39,
  Colon = 0x3a,
  Semi = 0x3b,
  Lt = 0x3c,
  Eq = 0x3d,
  Gt = 0x3e,
  Question = 0x3f,
  UpperA = 0x41,
  UpperD = 0x44,
  UpperF = 0x46,
  LBracket = 0x5b,
  RBracket = 0x5d,
  LowerA = 0x61,
  LowerF = 0x66,
  LowerX = 0x78,
}

/** Class bits of CLS entries. */
export const enum C {
  /** ASCII NameStartChar except ':' */
  NameStart = 1,
  /** ASCII NameChar (':' included; the tokenizer counts colons for QName checks) */
  Name = 2,
  /** XML S: space, tab, CR, LF */
  Ws = 4,
  /** stops the character-data scan: '<' '&' ']' non-ASCII and forbidden controls */
  Text = 8,
  /** stops the attribute-value scan: '<' '&' quotes, non-ASCII and forbidden controls */
  Attr = 16,
  /** C0 controls that XML 1.0 §2.2 forbids (everything below 0x20 but TAB, LF, CR) */
  Bad = 32,
}

// Generated once (see docs/architecture.md); rows of 32 bytes, 0x00..0xFF.
export const CLS: usize = memory.data<u8>([
  56, 56, 56, 56, 56, 56, 56, 56, 56, 4, 4, 56, 56, 4, 56, 56, 56, 56, 56, 56, 56, 56, 56, 56, 56, 56, 56, 56, 56, 56, 56, 56,
  4, 0, 16, 0, 0, 0, 24, 16, 0, 0, 0, 0, 0, 2, 2, 0, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 0, 24, 0, 0, 0,
  0, 3, 3, 3, 3, 3, 3, 3, 3, 3, 3, 3, 3, 3, 3, 3, 3, 3, 3, 3, 3, 3, 3, 3, 3, 3, 3, 0, 0, 8, 0, 3,
  0, 3, 3, 3, 3, 3, 3, 3, 3, 3, 3, 3, 3, 3, 3, 3, 3, 3, 3, 3, 3, 3, 3, 3, 3, 3, 3, 0, 0, 0, 0, 0,
  24, 24, 24, 24, 24, 24, 24, 24, 24, 24, 24, 24, 24, 24, 24, 24, 24, 24, 24, 24, 24, 24, 24, 24, 24, 24, 24, 24, 24, 24, 24, 24,
  24, 24, 24, 24, 24, 24, 24, 24, 24, 24, 24, 24, 24, 24, 24, 24, 24, 24, 24, 24, 24, 24, 24, 24, 24, 24, 24, 24, 24, 24, 24, 24,
  24, 24, 24, 24, 24, 24, 24, 24, 24, 24, 24, 24, 24, 24, 24, 24, 24, 24, 24, 24, 24, 24, 24, 24, 24, 24, 24, 24, 24, 24, 24, 24,
  24, 24, 24, 24, 24, 24, 24, 24, 24, 24, 24, 24, 24, 24, 24, 24, 24, 24, 24, 24, 24, 24, 24, 24, 24, 24, 24, 24, 24, 24, 24, 24,
]);

/** "http://www.w3.org/XML/1998/namespace", the fixed binding of the `xml` prefix. */
export const XML_NS: usize = memory.data<u8>([
  104, 116, 116, 112, 58, 47, 47, 119, 119, 119, 46, 119, 51, 46, 111, 114, 103, 47, 88, 77, 76,
  47, 49, 57, 57, 56, 47, 110, 97, 109, 101, 115, 112, 97, 99, 101,
]);
export const XML_NS_LEN: i32 = 36;

@inline
export function cls(c: u32): u32 {
  return <u32>load<u8>(CLS + <usize>c);
}

/** XML 1.0 §2.3 NameStartChar, for code points ≥ 0x80. */
export function isNameStartCp(c: u32): bool {
  if (c < 0x2ff) return (c >= 0xc0 && c != 0xd7 && c != 0xf7);
  if (c < 0x370) return c == 0x2ff;
  if (c <= 0x1fff) return c != 0x37e;
  if (c < 0x2070) return c == 0x200c || c == 0x200d;
  if (c <= 0x218f) return true;
  if (c < 0x2c00) return false;
  if (c <= 0x2fef) return true;
  if (c < 0x3001) return false;
  if (c <= 0xd7ff) return true;
  if (c < 0xf900) return false;
  if (c <= 0xfdcf) return true;
  if (c < 0xfdf0) return false;
  if (c <= 0xfffd) return true;
  return c >= 0x10000 && c <= 0xeffff;
}

/** XML 1.0 §2.3 NameChar, for code points ≥ 0x80. */
export function isNameCp(c: u32): bool {
  return (
    isNameStartCp(c) || c == 0xb7 || (c >= 0x300 && c <= 0x36f) || c == 0x203f || c == 0x2040
  );
}

/** XML 1.0 §2.2 Char (for character references and decoded non-ASCII text). */
@inline
export function isXmlChar(c: u32): bool {
  return c >= 0x20
    ? c <= 0xd7ff || (c >= 0xe000 && c <= 0xfffd) || (c >= 0x10000 && c <= 0x10ffff)
    : c == 0x09 || c == 0x0a || c == 0x0d;
}

/**
 * The WASM core's fatal error codes (assembly/layout.ts `Err`) mapped to the RFC 6120 §4.9.3
 * stream error condition each one means, with a specific human-readable reason.
 */
import { Err } from '../../assembly/layout.js';
import type { CoreError } from './api.js';

type Condition = CoreError['condition'];

interface CodeInfo {
  condition: Condition;
  /** Reason text; `%s` is replaced by the offending token when the core points at one. */
  message: string;
}

const NWF: Condition = 'not-well-formed';

export const CODES: ReadonlyMap<number, CodeInfo> = new Map<number, CodeInfo>([
  [Err.Utf8BadByte, { condition: NWF, message: 'invalid UTF-8 byte sequence' }],
  [Err.Utf8Overlong, { condition: NWF, message: 'overlong UTF-8 encoding' }],
  [Err.Utf8Surrogate, { condition: NWF, message: 'UTF-8 encoded surrogate code point' }],
  [Err.Utf8TooLarge, { condition: NWF, message: 'UTF-8 sequence beyond U+10FFFF' }],
  [Err.Utf8Truncated, { condition: NWF, message: 'truncated UTF-8 sequence' }],
  [Err.IllegalChar, { condition: NWF, message: 'character not allowed by XML 1.0 §2.2' }],
  [Err.TextAtTopLevel, { condition: NWF, message: 'character data between stanzas' }],
  [Err.BadTagStart, { condition: NWF, message: "'<' not followed by a name, '/', '!' or '?'" }],
  [Err.BadNameChar, { condition: NWF, message: 'illegal character in a name' }],
  [Err.BadQName, { condition: NWF, message: "malformed qualified name '%s'" }],
  [Err.EndTagMismatch, { condition: NWF, message: "end tag '%s' does not match the open element" }],
  [Err.BadEndTag, { condition: NWF, message: 'malformed end tag' }],
  [Err.AttrNoSpace, { condition: NWF, message: "missing whitespace before attribute '%s'" }],
  [Err.AttrNoEq, { condition: NWF, message: "attribute name not followed by '='" }],
  [Err.AttrNoQuote, { condition: NWF, message: 'attribute value not quoted' }],
  [Err.LtInAttrValue, { condition: NWF, message: "'<' in an attribute value" }],
  [Err.DuplicateAttr, { condition: NWF, message: "duplicate attribute '%s'" }],
  [Err.DuplicateAttrNs, { condition: NWF, message: "attribute '%s' duplicates another after namespace expansion" }],
  [Err.BadReference, { condition: NWF, message: "malformed reference '%s'" }],
  [Err.BadCharRef, { condition: NWF, message: "character reference '%s' to a character XML forbids" }],
  [Err.CdataEndInText, { condition: NWF, message: "']]>' in character data" }],
  [Err.BadMarkupDecl, { condition: NWF, message: "malformed '<!' markup" }],
  [Err.BadEmptyTag, { condition: NWF, message: "'/' not followed by '>' in a start tag" }],
  [Err.BadXmlDecl, { condition: NWF, message: 'malformed XML declaration' }],
  [Err.XmlDeclNotAtStart, { condition: NWF, message: 'XML declaration not at the start of the stream' }],
  [Err.NoStreamHeader, { condition: NWF, message: 'end tag before the stream header' }],
  [Err.Comment, { condition: 'restricted-xml', message: 'XML comments are not allowed (RFC 6120 §11.1)' }],
  [Err.ProcessingInstruction, { condition: 'restricted-xml', message: 'processing instructions are not allowed (RFC 6120 §11.1)' }],
  [Err.Doctype, { condition: 'restricted-xml', message: 'document type declarations are not allowed (RFC 6120 §11.1)' }],
  [Err.UndefinedEntity, { condition: 'restricted-xml', message: "entity reference '%s' is not one of the five predefined (RFC 6120 §11.1)" }],
  [Err.UnboundPrefix, { condition: 'bad-namespace-prefix', message: "namespace prefix of '%s' is not bound" }],
  [Err.BadNsDecl, { condition: 'bad-namespace-prefix', message: "illegal namespace declaration '%s'" }],
  [Err.HeaderNotStream, { condition: 'invalid-namespace', message: "stream header '%s' is not <stream xmlns='http://etherx.jabber.org/streams'>" }],
  [Err.UnsupportedEncoding, { condition: 'unsupported-encoding', message: 'only UTF-8 is supported (RFC 6120 §11.6)' }],
  [Err.StanzaTooLarge, { condition: 'policy-violation', message: 'stanza exceeds the maximum size' }],
  [Err.TooDeep, { condition: 'policy-violation', message: 'elements nested too deeply' }],
  [Err.TooManyAttrs, { condition: 'policy-violation', message: 'too many attributes on one element' }],
  [Err.TooManyNsDecls, { condition: 'policy-violation', message: 'too many namespace declarations in one stanza' }],
  [Err.ReferenceTooLong, { condition: 'policy-violation', message: 'character or entity reference too long' }],
]);

/** Condition and message for a core error code; `token` fills the message's `%s`. */
export function describeCode(code: number, token: string): { condition: Condition; message: string } {
  const info = CODES.get(code);
  if (!info) return { condition: NWF, message: `unknown core error ${code}` };
  return { condition: info.condition, message: info.message.replace('%s', token) };
}

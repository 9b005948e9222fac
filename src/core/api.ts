/**
 * The contract between the WASM stanza core (assembly/ + src/core/) and the layers above it
 * (src/stream, src/router, src/modules). Everything above the core programs against these types
 * only; the implementation lives in src/core/parser.ts.
 *
 * Zero-copy: a socket chunk is copied once into WASM linear memory. For each complete top-level
 * element the core fills a descriptor of offsets; a StanzaView reads that descriptor and the
 * bytes in place. A StanzaView is valid ONLY during the handler call that receives it: the input
 * region is reused by the next feed(). Copy (`raw()`) what must outlive the call.
 */

export interface ParserLimits {
  /** Largest top-level element in bytes (default 262144; the stream layer lowers it pre-auth). */
  maxStanzaBytes: number;
  /** Deepest nesting inside a stanza (the stanza itself is depth 1). */
  maxDepth: number;
  /** Most attributes (namespace declarations included) on one element. */
  maxAttributes: number;
}

export const DEFAULT_LIMITS: ParserLimits = {
  maxStanzaBytes: 262144,
  maxDepth: 64,
  maxAttributes: 64,
};

/** Kind of a top-level element, decided in WASM from the element's local name. */
export enum StanzaKind {
  Message = 1,
  Presence = 2,
  Iq = 3,
  /** Any other top-level element: <starttls/>, <auth/>, <response/>, <enable/>, <r/>, <a/>, … */
  Other = 4,
}

/** The `type` attribute, decoded in WASM (RFC 6120 §8.2.3, RFC 6121 §4.7.1, §5.2.2). */
export enum StanzaType {
  /** No type attribute. */
  None = 0,
  /** A type attribute whose value is not legal for this kind (the core flags it in status). */
  Unknown = 1,
  // iq
  Get = 2,
  Set = 3,
  Result = 4,
  Error = 5,
  // message
  Chat = 6,
  Groupchat = 7,
  Headline = 8,
  Normal = 9,
  // presence
  Unavailable = 10,
  Subscribe = 11,
  Subscribed = 12,
  Unsubscribe = 13,
  Unsubscribed = 14,
  Probe = 15,
}

/**
 * Per-stanza verdict of the semantic checks (the stream survives; the router answers with a
 * stanza error). Fatal problems (not-well-formed, restricted-xml, …) never reach a StanzaView:
 * they arrive through ParserHandler.onError.
 */
export enum StanzaStatus {
  Ok = 0,
  /** iq without id (RFC 6120 §8.2.3) → bad-request */
  IqMissingId = 1,
  /** iq without type, or type not get|set|result|error → bad-request */
  IqBadType = 2,
  /** iq get/set without exactly one child element → bad-request */
  IqGetSetChildCount = 3,
  /** iq result with more than one child element → bad-request */
  IqResultChildCount = 4,
  /** iq error without an <error/> child → bad-request (never answered: it is an error) */
  IqErrorWithoutError = 5,
  /** message type not chat|error|groupchat|headline|normal (RFC 6121 §5.2.2) → bad-request */
  MessageBadType = 6,
  /** presence type not one of RFC 6121 §4.7.1 → bad-request */
  PresenceBadType = 7,
}

/** Decoded attributes of the stream header (cold path: once per stream). */
export interface StreamHeader {
  /** Qualified name as written, e.g. 'stream:stream'. */
  name: string;
  /** The namespace the element name resolves to (must be http://etherx.jabber.org/streams). */
  namespace: string;
  /** Default namespace declared on the header (jabber:client for c2s). */
  defaultNamespace: string | null;
  to: string | null;
  from: string | null;
  id: string | null;
  version: string | null;
  lang: string | null;
  /** Whether an XML declaration preceded the header. */
  hadXmlDeclaration: boolean;
  /** Prefixes the header declares (`xmlns:p`), the stream element's own included; absent = not reported. */
  declaredPrefixes?: string[];
}

/** A fatal error found by the core; the parser refuses further input until reset(). */
export interface CoreError {
  /** Stable numeric code from the WASM core (see src/core/codes.ts). */
  code: number;
  /** The RFC 6120 §4.9.3 stream error condition this maps to. */
  condition:
    | 'not-well-formed'
    | 'invalid-namespace'
    | 'restricted-xml'
    | 'policy-violation'
    | 'bad-namespace-prefix'
    | 'invalid-xml'
    | 'unsupported-encoding';
  /** Human-readable, specific reason ("duplicate attribute 'to'", "comment not allowed"). */
  message: string;
  /** Byte offset in the stream where it was detected. */
  offset: number;
}

/** A read-only window on one complete top-level element, valid during the handler call only. */
export interface StanzaView {
  readonly kind: StanzaKind;
  readonly type: StanzaType;
  readonly status: StanzaStatus;
  /** The element's bytes [start, end) in `buffer` (a view on WASM memory, not a copy). */
  readonly buffer: Uint8Array;
  readonly start: number;
  readonly end: number;
  /** Offset just after the element's qualified name in its start tag: where to insert attrs. */
  readonly nameEnd: number;
  /** Span of the whole `from='…'` attribute incl. leading whitespace, or -1 when absent. */
  readonly fromAttrStart: number;
  readonly fromAttrEnd: number;
  /** Number of child elements of the top-level element. */
  readonly childCount: number;
  /**
   * True when the element declares no namespace of its own (no xmlns on it): its name resolves
   * through the stream header's declarations. Lets the stream check a stanza's namespace without
   * decoding it. Optional: views that cannot tell leave it undefined.
   */
  readonly nsInherited?: boolean;

  /** Qualified element name as written ('message', 'starttls', 'sm:enable'). */
  name(): string;
  /** The namespace the element resolves to (xmlns on it, or inherited from the stream). */
  namespace(): string;
  /** Attribute values, entity-decoded; null when absent. */
  to(): string | null;
  from(): string | null;
  id(): string | null;
  /** Raw type attribute value (for error messages about illegal values). */
  typeString(): string | null;
  /** First child element's local name and namespace; null when there is no child. */
  childName(): string | null;
  childNamespace(): string | null;

  /** A copy of the element's bytes that outlives the call. */
  raw(): Buffer;
  /** The element as a string (UTF-8 decode of raw()). */
  toString(): string;
}

export interface ParserHandler {
  onStreamOpen(header: StreamHeader): void;
  onStanza(stanza: StanzaView): void;
  onStreamClose(): void;
  onError(error: CoreError): void;
}

/** One connection's parser. Many live side by side on one WASM instance per thread. */
export interface StreamParser {
  /** Copy the chunk into WASM memory and parse it; the handler is called synchronously. */
  feed(chunk: Uint8Array): void;
  /** Forget everything: the next bytes start a new stream (after STARTTLS / SASL success). */
  reset(): void;
  /**
   * During onStanza only: a copy of the bytes fed after the current element (what the client
   * pipelined behind it in this read). Lets the stream layer carry input across a restart after
   * SASL success. Optional (added): parsers that cannot tell leave it out.
   */
  rest?(): Uint8Array;
  setLimits(limits: Partial<ParserLimits>): void;
  /** Release this connection's WASM state; the parser is unusable afterwards. */
  free(): void;
}

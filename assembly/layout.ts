/**
 * The ONE description of the WASM boundary, compiled by AssemblyScript (assembly/) and imported
 * by TypeScript (src/core/). Only plain `export const enum`s live here so that both compilers
 * accept the file unchanged. See docs/architecture.md, "WASM boundary".
 *
 * A parser state is a block of `F.Size` i32 slots in WASM memory; JS reads the descriptor part
 * through an Int32Array at index (state >> 2) + F.<field>. Offsets in the descriptor are absolute
 * byte addresses in WASM memory (the same numbers index the Uint8Array/Buffer over memory.buffer).
 */

/**
 * What `run(state)` returns. Low 4 bits: the event. Several stanzas come in one call: when the
 * value is ≥ 16, `value >> 4` complete stanzas' descriptors are in the ring (`R`), the low bits
 * are Ev.Stanza, and JS calls `run` again after handling them (an event that ended the batch —
 * stream close, error — is returned by that next call). Otherwise one event per call; JS calls
 * again until NeedMore or Error.
 */
export const enum Ev {
  /** All buffered input consumed (a partial element may be retained for the next chunk). */
  NeedMore = 0,
  /** The stream header closed its start tag; header attributes are in the attribute table. */
  StreamOpen = 1,
  /** Complete top-level elements: `value >> 4` descriptors in the ring. */
  Stanza = 2,
  /** `</stream:stream>` was read. Further input is ignored. */
  StreamClose = 3,
  /** A fatal error: F.ErrCode, F.ErrAddr. Further input is ignored until reset(). */
  Error = 4,
}

/** i32 slot indexes in a parser state. */
export const enum F {
  // ---- descriptor, valid during the handler call after Ev.Stanza (and Ev.StreamOpen) ----
  Kind = 0,
  Type = 1,
  Status = 2,
  /** [Start, End): the element's bytes. */
  Start = 3,
  End = 4,
  /** Just after the qualified name in the start tag. */
  NameEnd = 5,
  /** Raw (not entity-decoded) attribute value spans; Off = -1 when absent. */
  ToOff = 6,
  ToLen = 7,
  FromOff = 8,
  FromLen = 9,
  IdOff = 10,
  IdLen = 11,
  TypeOff = 12,
  TypeLen = 13,
  /** The whole ` from='…'` attribute including its leading whitespace; -1 when absent. */
  FromAttrStart = 14,
  FromAttrEnd = 15,
  /** The namespace URI the element resolves to (raw bytes; len 0 = no namespace). */
  NsOff = 16,
  NsLen = 17,
  /** First child element: local name and namespace; Off = -1 when there is no child. */
  ChildNameOff = 18,
  ChildNameLen = 19,
  ChildNsOff = 20,
  ChildNsLen = 21,
  ChildCount = 22,
  /** Bit set of `Fl`. */
  Flags = 23,
  /** Slot + 1 of the `to` value in the atom table (0: not interned), and the slot's generation. */
  ToAtom = 24,
  ToAtomGen = 25,
  /** After Ev.Error: the absolute address where it was detected (the code: ErrCode). */
  ErrAddr = 26,
  /** Absolute address of the end of the current input window (maps ErrAddr to a stream offset). */
  WinEnd = 27,
  // ---- limits (set by JS at any time) ----
  MaxBytes = 28,
  MaxDepth = 29,
  MaxAttrs = 30,
  // ---- internal resumable state (JS does not read these) ----
  Phase = 31,
  Tok = 32,
  Depth = 33,
  NsCount = 34,
  Base = 35,
  Len = 36,
  PosRel = 37,
  SStartRel = 38,
  Pend = 39,
  PendCap = 40,
  Tables = 41,
  StreamBlock = 42,
  NameStart = 43,
  ElemNameLen = 44,
  ElemColon = 45,
  TagKind = 46,
  WsSeen = 47,
  AttrNameStart = 48,
  AttrNameLen = 49,
  AttrColon = 50,
  Quote = 51,
  ValStart = 52,
  ValFlags = 53,
  PreWs = 54,
  Aux = 55,
  /** Attributes of the last start tag (the stream header at Ev.StreamOpen) in the attr table. */
  AttrCount = 56,
  /** After Ev.Error: the `Err` code. */
  ErrCode = 57,
  /** internal: attributes of the unfinished tag while its tables wait in scratch or a spill */
  SavedAttrs = 58,
  /** internal: the stream header's default namespace (absolute span; Off 0 = none), so that a
   * stanza without declarations of its own does not search the header's bindings */
  StreamNsOff = 59,
  StreamNsLen = 60,
  StreamNsAmp = 61,
  /** Slots in a state (248 bytes: one 256-byte allocator block with its header). */
  Size = 62,
}

/**
 * The descriptor ring (one per instance): `run` copies each complete stanza's descriptor (state
 * slots 0 to R.Slots - 1, F numbering) into the next entry, up to R.Cap per call. JS reads entry
 * i at i32 index ringAddr() / 4 + i * R.Slots + F.<field>; the entries stay valid until the next
 * `run` or `prepare` of any parser on the instance.
 */
export const enum R {
  Cap = 64,
  Slots = 28,
}

/** Descriptor flag bits (F.Flags). "Amp" = the raw value contains '&' and needs decoding. */
export const enum Fl {
  ToAmp = 1,
  FromAmp = 2,
  IdAmp = 4,
  TypeAmp = 8,
  NsAmp = 16,
  ChildNsAmp = 32,
  /** NsOff/ChildNsOff point outside the input (the stream header's bindings, a static string):
   * the namespace is inherited, and it does not move with the stanza's bytes */
  NsAbs = 64,
  ChildNsAbs = 128,
  HasErrorChild = 256,
  SelfClosing = 512,
  /** at Ev.StreamOpen: an XML declaration preceded the header */
  HadXmlDecl = 1024,
  /** the raw value has bytes ≥ 0x80 (decode as UTF-8; otherwise it is ASCII) */
  ToHi = 2048,
  FromHi = 4096,
  IdHi = 8192,
}

/** Attribute table entry: A.Size i32 slots each; offsets absolute after Ev.StreamOpen. */
export const enum A {
  NameOff = 0,
  NameLen = 1,
  /** index of ':' inside the name, -1 when unprefixed */
  Colon = 2,
  ValOff = 3,
  ValLen = 4,
  /** bit 1: the raw value contains '&'; bit 2: it has non-ASCII bytes */
  Amp = 5,
  /** start of the whitespace before the name */
  PreWs = 6,
  Spare = 7,
  Size = 8,
}

/** The atom table: short ASCII values (the `to` JIDs a client sends again and again). */
export const enum Atom {
  Slots = 1024,
  MaxLen = 52,
  /** bytes per slot: generation i32, length i32, last use i32, the bytes */
  SlotSize = 64,
}

/** Mirrors StanzaKind in src/core/api.ts (a unit test asserts equality). */
export const enum Kind {
  Message = 1,
  Presence = 2,
  Iq = 3,
  Other = 4,
}

/** Mirrors StanzaType in src/core/api.ts. */
export const enum Type {
  None = 0,
  Unknown = 1,
  Get = 2,
  Set = 3,
  Result = 4,
  Error = 5,
  Chat = 6,
  Groupchat = 7,
  Headline = 8,
  Normal = 9,
  Unavailable = 10,
  Subscribe = 11,
  Subscribed = 12,
  Unsubscribe = 13,
  Unsubscribed = 14,
  Probe = 15,
}

/** Mirrors StanzaStatus in src/core/api.ts. */
export const enum Status {
  Ok = 0,
  IqMissingId = 1,
  IqBadType = 2,
  IqGetSetChildCount = 3,
  IqResultChildCount = 4,
  IqErrorWithoutError = 5,
  MessageBadType = 6,
  PresenceBadType = 7,
}

/** Fatal error codes; src/core/codes.ts maps each to its RFC 6120 §4.9.3 condition and text. */
export const enum Err {
  None = 0,
  // not-well-formed: encoding level
  Utf8BadByte = 1,
  Utf8Overlong = 2,
  Utf8Surrogate = 3,
  Utf8TooLarge = 4,
  Utf8Truncated = 5,
  IllegalChar = 6,
  // not-well-formed: syntax
  TextAtTopLevel = 10,
  BadTagStart = 11,
  BadNameChar = 12,
  BadQName = 13,
  EndTagMismatch = 14,
  BadEndTag = 15,
  AttrNoSpace = 16,
  AttrNoEq = 17,
  AttrNoQuote = 18,
  LtInAttrValue = 19,
  DuplicateAttr = 20,
  DuplicateAttrNs = 21,
  BadReference = 22,
  BadCharRef = 23,
  CdataEndInText = 24,
  BadMarkupDecl = 25,
  BadEmptyTag = 26,
  BadXmlDecl = 27,
  XmlDeclNotAtStart = 28,
  NoStreamHeader = 29,
  // restricted-xml (RFC 6120 §11.1)
  Comment = 40,
  ProcessingInstruction = 41,
  Doctype = 42,
  UndefinedEntity = 43,
  // namespaces
  UnboundPrefix = 50,
  BadNsDecl = 51,
  HeaderNotStream = 52,
  // unsupported-encoding
  UnsupportedEncoding = 60,
  // policy-violation (limits)
  StanzaTooLarge = 70,
  TooDeep = 71,
  TooManyAttrs = 72,
  TooManyNsDecls = 73,
  ReferenceTooLong = 74,
}

/** internal: stream phase */
export const enum Phase {
  Start = 0,
  Prolog = 1,
  Stream = 2,
  Closed = 3,
  Failed = 4,
}

/**
 * The one error vocabulary of Hermod.
 *
 * Three families, each with the exact condition names of its RFC:
 *  - stream errors (RFC 6120 §4.9.3): fatal, the stream is closed after sending them;
 *  - stanza errors (RFC 6120 §8.3.3): a reply of type='error', the stream lives on;
 *  - SASL failures (RFC 6120 §6.5): <failure/> inside the SASL negotiation.
 * Every layer that refuses something throws or returns one of the classes below, so that the
 * transport and router can turn it into bytes in one place, and tests can assert on `condition`.
 */

export const STREAMS_NS = 'http://etherx.jabber.org/streams';
export const STREAM_ERRORS_NS = 'urn:ietf:params:xml:ns:xmpp-streams';
export const STANZA_ERRORS_NS = 'urn:ietf:params:xml:ns:xmpp-stanzas';
export const SASL_NS = 'urn:ietf:params:xml:ns:xmpp-sasl';

/** RFC 6120 §4.9.3, in the RFC's order (§4.9.3.1 … §4.9.3.25). */
export const STREAM_ERROR_CONDITIONS = [
  'bad-format',
  'bad-namespace-prefix',
  'conflict',
  'connection-timeout',
  'host-gone',
  'host-unknown',
  'improper-addressing',
  'internal-server-error',
  'invalid-from',
  'invalid-namespace',
  'invalid-xml',
  'not-authorized',
  'not-well-formed',
  'policy-violation',
  'remote-connection-failed',
  'reset',
  'resource-constraint',
  'restricted-xml',
  'see-other-host',
  'system-shutdown',
  'undefined-condition',
  'unsupported-encoding',
  'unsupported-feature',
  'unsupported-stanza-type',
  'unsupported-version',
] as const;

export type StreamErrorCondition = (typeof STREAM_ERROR_CONDITIONS)[number];

/** RFC 6120 §8.3.3, with the error type each condition carries by default (§8.3.2). */
export const STANZA_ERROR_TYPES = {
  'bad-request': 'modify',
  conflict: 'cancel',
  'feature-not-implemented': 'cancel',
  forbidden: 'auth',
  gone: 'cancel',
  'internal-server-error': 'cancel',
  'item-not-found': 'cancel',
  'jid-malformed': 'modify',
  'not-acceptable': 'modify',
  'not-allowed': 'cancel',
  'not-authorized': 'auth',
  'policy-violation': 'modify',
  'recipient-unavailable': 'wait',
  redirect: 'modify',
  'registration-required': 'auth',
  'remote-server-not-found': 'cancel',
  'remote-server-timeout': 'wait',
  'resource-constraint': 'wait',
  'service-unavailable': 'cancel',
  'subscription-required': 'auth',
  'undefined-condition': 'cancel',
  'unexpected-request': 'wait',
} as const;

export type StanzaErrorCondition = keyof typeof STANZA_ERROR_TYPES;
export type StanzaErrorType = 'auth' | 'cancel' | 'continue' | 'modify' | 'wait';

/** RFC 6120 §6.5, in the RFC's order (§6.5.1 … §6.5.11). */
export const SASL_FAILURE_CONDITIONS = [
  'aborted',
  'account-disabled',
  'credentials-expired',
  'encryption-required',
  'incorrect-encoding',
  'invalid-authzid',
  'invalid-mechanism',
  'malformed-request',
  'mechanism-too-weak',
  'not-authorized',
  'temporary-auth-failure',
] as const;

export type SaslFailureCondition = (typeof SASL_FAILURE_CONDITIONS)[number];

/** Escape text for use inside XML character data or a quoted attribute value. */
export function escapeXml(text: string): string {
  return text.replace(/[&<>"']/g, (c) =>
    c === '&' ? '&amp;' : c === '<' ? '&lt;' : c === '>' ? '&gt;' : c === '"' ? '&quot;' : '&apos;',
  );
}

/** Characters XML 1.0 cannot carry at all, not even as references (§2.2 Char). */
const NOT_XML_CHAR = /[^\t\n\r\x20-\uD7FF\uE000-\uFFFD\u{10000}-\u{10FFFF}]/gu;

/**
 * The human-readable <text/> of an error: it may quote what the peer sent (the offending token of
 * a parse error), which can hold NUL or other characters no XML may contain; they become U+FFFD
 * so that the error itself stays well-formed.
 */
export function escapeErrorText(text: string): string {
  return escapeXml(text.replace(NOT_XML_CHAR, '\uFFFD'));
}

/** The stable `code` of an error: ERR_XMPP_<FAMILY>_<CONDITION> (policy-violation → POLICY_VIOLATION). */
function errorCode(family: 'STREAM' | 'STANZA' | 'SASL', condition: string): string {
  return `ERR_XMPP_${family}_${condition.toUpperCase().replace(/-/g, '_')}`;
}

/** A fatal stream-level error: send <stream:error/>, then </stream:stream>, then close. */
export class StreamError extends Error {
  readonly code: string;
  constructor(
    readonly condition: StreamErrorCondition,
    readonly text?: string,
  ) {
    super(text ? `${condition}: ${text}` : condition);
    this.name = 'StreamError';
    this.code = errorCode('STREAM', condition);
  }

  /** RFC 6120 §4.9.2: the condition element, and an optional descriptive <text/>. */
  toXml(): string {
    const text = this.text
      ? `<text xmlns='${STREAM_ERRORS_NS}'>${escapeErrorText(this.text)}</text>`
      : '';
    return `<stream:error><${this.condition} xmlns='${STREAM_ERRORS_NS}'/>${text}</stream:error>`;
  }
}

/** A stanza-level error: the sender gets a type='error' reply, the stream lives on. */
export class StanzaError extends Error {
  readonly code: string;
  readonly type: StanzaErrorType;
  constructor(
    readonly condition: StanzaErrorCondition,
    readonly text?: string,
    type?: StanzaErrorType,
    /**
     * RFC 6120 §8.3.2: an application-specific condition element (serialised XML, qualified by
     * its own namespace), e.g. XEP-0191's <blocked xmlns='urn:xmpp:blocking:errors'/>. Added
     * compatibly (optional, last).
     */
    readonly appCondition?: string,
  ) {
    super(text ? `${condition}: ${text}` : condition);
    this.name = 'StanzaError';
    this.type = type ?? STANZA_ERROR_TYPES[condition];
    this.code = errorCode('STANZA', condition);
  }

  /** RFC 6120 §8.3.2: <error type='…'><condition xmlns='…stanzas'/><text/>?</error> */
  toXml(by?: string): string {
    const text = this.text
      ? `<text xmlns='${STANZA_ERRORS_NS}'>${escapeErrorText(this.text)}</text>`
      : '';
    const byAttr = by ? ` by='${escapeXml(by)}'` : '';
    return `<error type='${this.type}'${byAttr}><${this.condition} xmlns='${STANZA_ERRORS_NS}'/>${text}${this.appCondition ?? ''}</error>`;
  }
}

/** A SASL negotiation failure (RFC 6120 §6.5): the stream lives on, the client may retry. */
export class SaslFailure extends Error {
  readonly code: string;
  constructor(
    readonly condition: SaslFailureCondition,
    readonly text?: string,
  ) {
    super(text ? `${condition}: ${text}` : condition);
    this.name = 'SaslFailure';
    this.code = errorCode('SASL', condition);
  }

  toXml(): string {
    const text = this.text ? `<text>${escapeErrorText(this.text)}</text>` : '';
    return `<failure xmlns='${SASL_NS}'><${this.condition}/>${text}</failure>`;
  }
}

/** A refusal outside the protocol: bad configuration, bad CLI arguments, unusable data dir. */
export class ConfigError extends Error {
  readonly code = 'ERR_HERMOD_CONFIG';
  constructor(
    message: string,
    readonly key?: string,
  ) {
    super(key ? `${key}: ${message}` : message);
    this.name = 'ConfigError';
  }
}

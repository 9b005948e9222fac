import { describe, expect, it } from 'vitest';
import { SASL_FAILURE_CONDITIONS, STREAM_ERROR_CONDITIONS, SaslFailure, StanzaError, StreamError } from '../../src/errors.js';

describe('error vocabulary', () => {
  it('serialises a stream error with its RFC 6120 §4.9.3 condition and escaped text', () => {
    const err = new StreamError('policy-violation', 'stanza > 1 KiB');
    expect(err.toXml()).toBe(
      "<stream:error><policy-violation xmlns='urn:ietf:params:xml:ns:xmpp-streams'/>" +
        "<text xmlns='urn:ietf:params:xml:ns:xmpp-streams'>stanza &gt; 1 KiB</text></stream:error>",
    );
    expect(err.code).toBe('ERR_XMPP_STREAM_POLICY_VIOLATION');
  });

  it('replaces characters XML cannot carry (NUL, controls, lone surrogates) in error text by U+FFFD', () => {
    const quoted = "missing whitespace before attribute 'A\u0000\u001b\ud800'";
    for (const xml of [new StreamError('not-well-formed', quoted).toXml(), new StanzaError('bad-request', quoted).toXml(), new SaslFailure('aborted', quoted).toXml()]) {
      expect(xml).toContain('attribute &apos;A\ufffd\ufffd\ufffd&apos;');
    }
    expect(new StreamError('not-well-formed', 'tab\there, \u{1f600} stays').toXml()).toContain('tab\there, \u{1f600} stays');
  });

  it('lists the 25 stream error conditions of RFC 6120 §4.9.3 and the 11 SASL failures of §6.5, in RFC order', () => {
    expect(STREAM_ERROR_CONDITIONS).toHaveLength(25);
    expect(STREAM_ERROR_CONDITIONS[0]).toBe('bad-format');
    expect(STREAM_ERROR_CONDITIONS[13]).toBe('policy-violation'); // §4.9.3.14
    expect(STREAM_ERROR_CONDITIONS[24]).toBe('unsupported-version');
    expect(SASL_FAILURE_CONDITIONS).toHaveLength(11);
    expect(SASL_FAILURE_CONDITIONS[9]).toBe('not-authorized'); // §6.5.10
  });

  it('gives each stanza error the default type of RFC 6120 §8.3.3', () => {
    expect(new StanzaError('service-unavailable').toXml()).toBe(
      "<error type='cancel'><service-unavailable xmlns='urn:ietf:params:xml:ns:xmpp-stanzas'/></error>",
    );
    expect(new StanzaError('bad-request').type).toBe('modify');
    expect(new StanzaError('not-authorized').type).toBe('auth');
    expect(new StanzaError('recipient-unavailable').type).toBe('wait');
  });

  it('serialises a SASL failure per RFC 6120 §6.5', () => {
    expect(new SaslFailure('not-authorized').toXml()).toBe(
      "<failure xmlns='urn:ietf:params:xml:ns:xmpp-sasl'><not-authorized/></failure>",
    );
  });
});

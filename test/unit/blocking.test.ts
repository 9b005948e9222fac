import { describe, expect, it } from 'vitest';
import { StanzaError } from '../../src/errors.js';
import { Jid } from '../../src/jid.js';
import { blockedError, blockMatches } from '../../src/modules/blocking.js';

describe('XEP-0191 JID matching (XEP-0016 §2.1 order)', () => {
  const j = (s: string) => Jid.parse(s);

  it('a bare JID item blocks that account and every resource of it, nothing else', () => {
    const list = new Set(['eve@example.org']);
    expect(blockMatches(list, j('eve@example.org'))).toBe(true);
    expect(blockMatches(list, j('eve@example.org/phone'))).toBe(true);
    expect(blockMatches(list, j('eve@other.example'))).toBe(false);
    expect(blockMatches(list, j('example.org'))).toBe(false);
  });

  it('a full JID item blocks only that resource', () => {
    const list = new Set(['eve@example.org/phone']);
    expect(blockMatches(list, j('eve@example.org/phone'))).toBe(true);
    expect(blockMatches(list, j('eve@example.org/pc'))).toBe(false);
    expect(blockMatches(list, j('eve@example.org'))).toBe(false);
  });

  it('a domain item blocks the domain and every JID at it; domain/resource only that resource at any account', () => {
    expect(blockMatches(new Set(['spam.example']), j('anyone@spam.example/x'))).toBe(true);
    expect(blockMatches(new Set(['spam.example']), j('spam.example'))).toBe(true);
    expect(blockMatches(new Set(['spam.example']), j('a@notspam.example'))).toBe(false);
    const res = new Set(['example.org/bot']);
    expect(blockMatches(res, j('a@example.org/bot'))).toBe(true);
    expect(blockMatches(res, j('example.org/bot'))).toBe(true);
    expect(blockMatches(res, j('a@example.org/pc'))).toBe(false);
  });

  it('an empty list blocks nothing', () => {
    expect(blockMatches(new Set(), j('eve@example.org/phone'))).toBe(false);
  });
});

describe('stanza errors with an application-specific condition (RFC 6120 §8.3.2)', () => {
  it('puts the condition element after the text', () => {
    expect(blockedError().toXml()).toBe(
      "<error type='cancel'><not-acceptable xmlns='urn:ietf:params:xml:ns:xmpp-stanzas'/>" +
        "<text xmlns='urn:ietf:params:xml:ns:xmpp-stanzas'>you have blocked this contact</text>" +
        "<blocked xmlns='urn:xmpp:blocking:errors'/></error>",
    );
    expect(new StanzaError('bad-request').toXml()).toBe("<error type='modify'><bad-request xmlns='urn:ietf:params:xml:ns:xmpp-stanzas'/></error>");
  });
});

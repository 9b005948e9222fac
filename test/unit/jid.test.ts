import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { StanzaError } from '../../src/errors.js';
import { Jid, prepareDomainpart, prepareLocalpart, prepareResourcepart } from '../../src/jid.js';

function malformed(fn: () => unknown): StanzaError {
  try {
    fn();
  } catch (err) {
    expect(err).toBeInstanceOf(StanzaError);
    expect((err as StanzaError).condition).toBe('jid-malformed');
    expect((err as StanzaError).type).toBe('modify');
    return err as StanzaError;
  }
  throw new Error('expected jid-malformed');
}

describe('JID parsing (RFC 7622 §3.1)', () => {
  it('splits localpart, domainpart and resourcepart', () => {
    const j = Jid.parse('juliet@example.com/balcony');
    expect([j.local, j.domain, j.resource]).toEqual(['juliet', 'example.com', 'balcony']);
    expect(j.bare).toBe('juliet@example.com');
    expect(j.full).toBe('juliet@example.com/balcony');
    expect(j.toString()).toBe(j.full);
    expect(j.isBare).toBe(false);
  });

  it('accepts a domain alone, a domain with a resource, and a bare JID', () => {
    expect(Jid.parse('example.com')).toMatchObject({ local: null, domain: 'example.com', resource: null, full: 'example.com' });
    expect(Jid.parse('example.com/foo')).toMatchObject({ local: null, domain: 'example.com', resource: 'foo', bare: 'example.com' });
    expect(Jid.parse('juliet@example.com')).toMatchObject({ resource: null, isBare: true });
  });

  it("takes everything after the first '/' as the resource, '@' and '/' included", () => {
    const j = Jid.parse('juliet@example.com/foo/bar@baz');
    expect(j.resource).toBe('foo/bar@baz');
    expect(j.bare).toBe('juliet@example.com');
    expect(Jid.parse('example.com/juliet@example.net').local).toBeNull();
  });

  it("splits localpart at the first '@', so a second '@' lands in the domainpart and is refused", () => {
    malformed(() => Jid.parse('a@b@example.com'));
  });

  it('refuses empty parts', () => {
    for (const text of ['', '@example.com', 'juliet@', 'juliet@example.com/', '/balcony', 'juliet@/balcony', '@/']) {
      malformed(() => Jid.parse(text));
      expect(Jid.tryParse(text)).toBeNull();
    }
    malformed(() => Jid.of('', 'example.com'));
    malformed(() => Jid.of('juliet', 'example.com', ''));
  });
});

describe('localpart (RFC 7622 §3.3, UsernameCaseMapped)', () => {
  it('maps case, so JIDs differing in case are equal', () => {
    expect(Jid.parse('Juliet@Example.COM/Balcony').full).toBe('juliet@example.com/Balcony');
    expect(Jid.parse('JULIET@example.com').equals(Jid.parse('juliet@example.com'))).toBe(true);
  });

  it('maps fullwidth forms to their ASCII equivalents (width mapping)', () => {
    expect(prepareLocalpart('ＪＵＬＩＥＴ')).toBe('juliet');
  });

  it('normalizes to NFC and keeps non-ASCII letters', () => {
    expect(prepareLocalpart('Ju\u0308rgen')).toBe('jürgen');
    expect(prepareLocalpart('ΑΒΓ')).toBe('αβγ');
    expect(prepareLocalpart('测试')).toBe('测试');
    expect(prepareLocalpart('müller+tag')).toBe('müller+tag');
  });

  it('accepts every printable ASCII character except those RFC 7622 §3.3.1 forbids', () => {
    expect(prepareLocalpart("!#$%()*+,-.;=?[\\]^_`{|}~")).toBe("!#$%()*+,-.;=?[\\]^_`{|}~");
    for (const c of ['"', '&', "'", '/', ':', '<', '>', '@', ' ']) malformed(() => prepareLocalpart(`a${c}b`));
  });

  it('refuses compatibility characters instead of folding them (IdentifierClass HasCompat)', () => {
    malformed(() => prepareLocalpart('ﬁsh'));
    malformed(() => prepareLocalpart('x²'));
  });

  it('refuses symbols, non-ASCII spaces, controls and invisible characters', () => {
    for (const bad of ['☃', 'a\u00a0b', 'a\u0007', 'a\u200db', 'a\u200bb', 'a\u00adb', '\ud800', 'a\ue000', 'a\u0378']) {
      malformed(() => prepareLocalpart(bad));
    }
  });

  it('applies the Bidi Rule (RFC 5893, RFC 8265 §3.3.2) to right-to-left localparts', () => {
    // Right-to-left letters alone, with digits at the end, with marks, with ASCII neutrals inside.
    expect(prepareLocalpart('שלום')).toBe('שלום');
    expect(prepareLocalpart('مرحبا')).toBe('مرحبا');
    expect(prepareLocalpart('דני2')).toBe('דני2');
    expect(prepareLocalpart('عمر\u0660\u0661')).toBe('عمر\u0660\u0661');
    expect(prepareLocalpart('\u0645\u064e')).toBe('\u0645\u064e');
    expect(prepareLocalpart('דן.כהן')).toBe('דן.כהן');
    // Left-to-right text mixed in (rule 2), a digit or neutral first (rule 1), a neutral last
    // (rule 3), European and Arabic digits together (rule 4).
    for (const bad of ['a\u05d0b', 'abcم', 'שלוםa', '1שלום', '.שלום', 'שלום.', 'م\u06f1\u0661']) {
      malformed(() => prepareLocalpart(bad));
    }
    // Left-to-right localparts with European digits and marks are untouched by the rule.
    expect(prepareLocalpart('jürgen2')).toBe('jürgen2');
  });

  it('limits a localpart to 1023 octets of UTF-8', () => {
    expect(prepareLocalpart('a'.repeat(1023))).toHaveLength(1023);
    malformed(() => prepareLocalpart('a'.repeat(1024)));
    expect(prepareLocalpart('é'.repeat(511))).toHaveLength(511);
    malformed(() => prepareLocalpart('é'.repeat(512)));
  });
});

describe('domainpart (RFC 7622 §3.2)', () => {
  it('lowercases and strips one final dot', () => {
    expect(prepareDomainpart('Example.COM.')).toBe('example.com');
    expect(Jid.parse('juliet@example.com.').equals(Jid.parse('juliet@example.com'))).toBe(true);
    malformed(() => prepareDomainpart('.'));
    malformed(() => prepareDomainpart('example.com..'));
  });

  it('keeps internationalized names as U-labels and converts A-labels to them (§3.2.2)', () => {
    expect(prepareDomainpart('Bücher.example')).toBe('bücher.example');
    expect(prepareDomainpart('xn--bcher-kva.example')).toBe('bücher.example');
    expect(prepareDomainpart('ｅｘａｍｐｌｅ．com')).toBe('example.com');
    expect(prepareDomainpart('example。com')).toBe('example.com');
  });

  it('refuses invalid A-labels and characters IDNA2008 does not allow', () => {
    malformed(() => prepareDomainpart('xn--a.example'));
    malformed(() => prepareDomainpart('xn--ls8h.example'));
    malformed(() => prepareDomainpart('☃.example'));
  });

  it('accepts IPv4 addresses and bracketed IPv6 literals', () => {
    expect(prepareDomainpart('127.0.0.1')).toBe('127.0.0.1');
    expect(prepareDomainpart('[::1]')).toBe('[::1]');
    expect(Jid.parse('juliet@[2001:DB8::1]/x').domain).toBe('[2001:db8::1]');
    expect(prepareDomainpart('[0:0:0::1]')).toBe('[::1]');
    for (const bad of ['[::g]', '[::1', '[]', '[example.com]', '[fe80::1%eth0]']) malformed(() => prepareDomainpart(bad));
  });

  it('refuses labels that are not host-name labels', () => {
    for (const bad of ['exa mple.com', 'a..b', '-a.com', 'a-.com', 'a_b.com', 'a!b.com', 'exam:ple', 'a\u0000b']) {
      malformed(() => prepareDomainpart(bad));
    }
    expect(prepareDomainpart('a-b.c0m')).toBe('a-b.c0m');
  });

  it('limits labels to 63 octets and the domainpart to 1023', () => {
    expect(prepareDomainpart(`${'a'.repeat(63)}.com`)).toHaveLength(67);
    malformed(() => prepareDomainpart(`${'a'.repeat(64)}.com`));
    malformed(() => prepareDomainpart(Array(17).fill('a'.repeat(63)).join('.')));
  });
});

describe('resourcepart (RFC 7622 §3.4, OpaqueString)', () => {
  it('keeps case, spaces, symbols and punctuation', () => {
    expect(prepareResourcepart('My Phone ♥ (work)/2')).toBe('My Phone ♥ (work)/2');
  });

  it('maps non-ASCII spaces to U+0020 and normalizes to NFC', () => {
    expect(prepareResourcepart('a\u00a0b\u3000c')).toBe('a b c');
    expect(prepareResourcepart('Cafe\u0301')).toBe('Café');
  });

  it('refuses controls, invisible, unassigned, private-use and noncharacters', () => {
    for (const bad of ['a\u0007', 'a\u007f', 'a\u0085', 'a\u200b', 'a\u200d', 'a\u2028', 'a\u0378', 'a\ue000', 'a\ufdd0', 'a\ud800']) {
      malformed(() => prepareResourcepart(bad));
    }
  });

  it('limits a resourcepart to 1023 octets of UTF-8', () => {
    expect(prepareResourcepart('r'.repeat(1023))).toHaveLength(1023);
    malformed(() => prepareResourcepart('r'.repeat(1024)));
    malformed(() => prepareResourcepart('€'.repeat(342)));
  });
});

describe('Jid API', () => {
  it('toBare drops the resource and returns the same object when already bare', () => {
    const full = Jid.parse('juliet@example.com/balcony');
    expect(full.toBare().full).toBe('juliet@example.com');
    const bare = Jid.parse('juliet@example.com');
    expect(bare.toBare()).toBe(bare);
  });

  it('withResource prepares the new resource', () => {
    const j = Jid.parse('juliet@example.com').withResource('Tab\u00a01');
    expect(j.full).toBe('juliet@example.com/Tab 1');
    malformed(() => j.withResource(''));
  });

  it('equals compares prepared full JIDs', () => {
    expect(Jid.parse('a@b.example/R').equals(Jid.parse('A@B.EXAMPLE/R'))).toBe(true);
    expect(Jid.parse('a@b.example/R').equals(Jid.parse('a@b.example/r'))).toBe(false);
    expect(Jid.parse('a@b.example/R').equals(Jid.parse('a@b.example'))).toBe(false);
  });

  it('names the problem in the error text', () => {
    expect(malformed(() => Jid.parse('a@exa mple.com')).text).toMatch(/domainpart/);
  });
});

describe('JID preparation properties', () => {
  it('never throws anything but jid-malformed, and preparing twice changes nothing', () => {
    fc.assert(
      fc.property(fc.string({ unit: 'grapheme', maxLength: 40 }), (text) => {
        let jid: Jid;
        try {
          jid = Jid.parse(text);
        } catch (err) {
          return err instanceof StanzaError && err.condition === 'jid-malformed';
        }
        const again = Jid.parse(jid.full);
        return again.full === jid.full && again.local === jid.local && again.domain === jid.domain && again.resource === jid.resource;
      }),
      { numRuns: 3000 },
    );
  });

  it('round-trips JIDs built from valid ASCII parts', () => {
    const local = fc.stringMatching(/^[a-z0-9._+-]{1,20}$/);
    const label = fc.stringMatching(/^[a-z0-9]([a-z0-9-]{0,10}[a-z0-9])?$/);
    const resource = fc.stringMatching(/^[\x20-\x7e]{1,30}$/);
    fc.assert(
      fc.property(local, fc.array(label, { minLength: 1, maxLength: 4 }), resource, (l, labels, r) => {
        const text = `${l}@${labels.join('.')}/${r}`;
        const j = Jid.parse(text);
        return j.full === text && j.local === l && j.resource === r;
      }),
    );
  });
});

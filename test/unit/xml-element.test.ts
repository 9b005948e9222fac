import { describe, expect, it } from 'vitest';
import { StanzaError } from '../../src/errors.js';
import { childElements, errorReply, firstChildElement, iqResult, parseElement } from '../../src/xml/element.js';

describe('cold-path element helpers', () => {
  it('parses bytes and strings alike and skips text between children', () => {
    const el = parseElement(Buffer.from("<iq id='1'>\n  <query xmlns='jabber:iq:roster'/>\n</iq>"));
    expect(firstChildElement(el)?.attrs.xmlns).toBe('jabber:iq:roster');
    expect(childElements(el)).toHaveLength(1);
    expect(firstChildElement(parseElement('<a>text</a>'))).toBeNull();
  });

  it('builds an error reply with swapped addresses, the same id, and no id when there was none (RFC 6120 §8.3.1)', () => {
    const err = new StanzaError('item-not-found', "no 'x' here");
    expect(errorReply({ name: 'iq', id: 'q1', from: 'bob@x', to: 'alice@x/r' }, err)).toBe(
      "<iq type='error' id='q1' from='bob@x' to='alice@x/r'><error type='cancel'><item-not-found xmlns='urn:ietf:params:xml:ns:xmpp-stanzas'/>" +
        "<text xmlns='urn:ietf:params:xml:ns:xmpp-stanzas'>no &apos;x&apos; here</text></error></iq>",
    );
    expect(errorReply({ name: 'message', id: null, from: null, to: 'a@x/r' }, new StanzaError('bad-request'))).toBe(
      "<message type='error' to='a@x/r'><error type='modify'><bad-request xmlns='urn:ietf:params:xml:ns:xmpp-stanzas'/></error></message>",
    );
  });

  it('builds IQ results with or without payload, escaping the addresses', () => {
    expect(iqResult({ id: 'a&b', from: null, to: "x@y/it's" })).toBe("<iq type='result' id='a&amp;b' to='x@y/it&apos;s'/>");
    expect(iqResult({ id: '1', from: 'localhost', to: null }, '<q/>')).toBe("<iq type='result' id='1' from='localhost'><q/></iq>");
  });
});

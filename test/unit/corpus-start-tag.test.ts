/**
 * Start tags real clients may write but that code reading stanzas as text tends to misread:
 * attribute values holding '>', '/>', quotes of the other kind, or text that looks like another
 * attribute (XML 1.0 §3.1 allows all of it). The reader (src/xml/start-tag.ts) and the places
 * that decide on a stanza's start tag as text — XEP-0198 unacknowledged messages to offline
 * storage, the XEP-0280 forwarded copy — must see the attributes the element really has.
 */
import { describe, expect, it } from 'vitest';
import { forwardedXml } from '../../src/modules/carbons.js';
import { keepUnacked } from '../../src/router/unacked.js';
import { createMemoryStorage } from '../../src/storage/memory.js';
import { readStartTag } from '../../src/xml/start-tag.js';

describe('readStartTag', () => {
  it('reads name, attributes and end of a plain tag', () => {
    const t = readStartTag("<message to='a@b' type=\"chat\"><body>x</body></message>");
    expect(t.name).toBe('message');
    expect([...t.attrs]).toEqual([
      ['to', 'a@b'],
      ['type', 'chat'],
    ]);
    expect(t.end).toBe("<message to='a@b' type=\"chat\">".length);
  });

  it("skips '>', '/>' and look-alike attributes inside values (XML 1.0 §3.1)", () => {
    const text = `<message id='a>b' title="x/>y" note=' type="headline" xmlns=z' type='chat'>`;
    const t = readStartTag(text + '</message>');
    expect(t.attrs.get('id')).toBe('a>b');
    expect(t.attrs.get('type')).toBe('chat');
    expect(t.attrs.has('xmlns')).toBe(false);
    expect(t.end).toBe(text.length);
  });

  it('handles whitespace around = and self-closing tags, and prefixed names', () => {
    const t = readStartTag("<c:presence\n\ttype = 'subscribe'\txmlns:c='jabber:client' />");
    expect(t.name).toBe('c:presence');
    expect(t.attrs.get('type')).toBe('subscribe');
    expect(t.attrs.get('xmlns:c')).toBe('jabber:client');
    expect(t.end).toBe("<c:presence\n\ttype = 'subscribe'\txmlns:c='jabber:client' />".length);
  });
});

describe('stanzas with tricky start tags', () => {
  it("stores an unacknowledged chat message offline by its real type, not a '>'-cut guess (RFC 6121 §8.5.2.2.1)", () => {
    const storage = createMemoryStorage({ iterations: 16 });
    keepUnacked(storage, 'bob@localhost', [
      "<message id='x>y' type='headline'><body>not for storage</body></message>",
      "<message id=' type=\"headline\"' type='chat'><body>kept</body></message>",
    ]);
    expect(storage.offline.takeAll('bob@localhost').map((m) => m.stanza)).toEqual([
      "<message id=' type=\"headline\"' type='chat'><body>kept</body></message>",
    ]);
  });

  it('puts the forwarded copy in jabber:client exactly once (XEP-0297 §4)', () => {
    expect(forwardedXml("<message id='a>b' xmlns='jabber:client'><body/></message>")).toBe("<message id='a>b' xmlns='jabber:client'><body/></message>");
    expect(forwardedXml("<message id=' xmlns=x'><body/></message>")).toBe("<message xmlns='jabber:client' id=' xmlns=x'><body/></message>");
    expect(forwardedXml("<c:message xmlns:c='jabber:client'><c:body/></c:message>")).toBe("<c:message xmlns:c='jabber:client'><c:body/></c:message>");
  });
});

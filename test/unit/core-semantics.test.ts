import { describe, expect, it } from 'vitest';
import { StanzaKind, StanzaStatus, StanzaType } from '../../src/core/api.js';
import { parseWhole, STREAM_OPEN, type StanzaRecord } from './core-helpers.js';

function one(stanza: string): StanzaRecord {
  const ev = parseWhole(`${STREAM_OPEN}${stanza}`);
  expect(ev.map((e) => e.ev)).toEqual(['open', 'stanza']);
  return ev[1] as StanzaRecord;
}

describe('stanza kind and type decoded in WASM (RFC 6120 §8, RFC 6121 §4.7.1, §5.2.2)', () => {
  const cases: [string, StanzaKind, StanzaType][] = [
    ["<message type='chat'/>", StanzaKind.Message, StanzaType.Chat],
    ["<message type='groupchat'/>", StanzaKind.Message, StanzaType.Groupchat],
    ["<message type='headline'/>", StanzaKind.Message, StanzaType.Headline],
    ["<message type='normal'/>", StanzaKind.Message, StanzaType.Normal],
    ["<message type='error'><error/></message>", StanzaKind.Message, StanzaType.Error],
    ['<message/>', StanzaKind.Message, StanzaType.None],
    ["<presence type='unavailable'/>", StanzaKind.Presence, StanzaType.Unavailable],
    ["<presence type='subscribe'/>", StanzaKind.Presence, StanzaType.Subscribe],
    ["<presence type='subscribed'/>", StanzaKind.Presence, StanzaType.Subscribed],
    ["<presence type='unsubscribe'/>", StanzaKind.Presence, StanzaType.Unsubscribe],
    ["<presence type='unsubscribed'/>", StanzaKind.Presence, StanzaType.Unsubscribed],
    ["<presence type='probe'/>", StanzaKind.Presence, StanzaType.Probe],
    ["<presence type='error'/>", StanzaKind.Presence, StanzaType.Error],
    ['<presence/>', StanzaKind.Presence, StanzaType.None],
    ["<iq type='get' id='1'><ping xmlns='urn:xmpp:ping'/></iq>", StanzaKind.Iq, StanzaType.Get],
    ["<iq type='set' id='1'><x/></iq>", StanzaKind.Iq, StanzaType.Set],
    ["<iq type='result' id='1'/>", StanzaKind.Iq, StanzaType.Result],
    ["<iq type='error' id='1'><error type='cancel'/></iq>", StanzaKind.Iq, StanzaType.Error],
    ["<iq type='&#x67;et' id='1'><x/></iq>", StanzaKind.Iq, StanzaType.Get],
    ["<starttls xmlns='urn:ietf:params:xml:ns:xmpp-tls'/>", StanzaKind.Other, StanzaType.None],
    ["<sm:r xmlns:sm='urn:xmpp:sm:3'/>", StanzaKind.Other, StanzaType.None],
    ["<c:message xmlns:c='jabber:client' type='chat'/>", StanzaKind.Message, StanzaType.Chat],
  ];
  for (const [xml, kind, type] of cases) {
    it(`${xml} → kind ${StanzaKind[kind]}, type ${StanzaType[type]}`, () => {
      const s = one(xml);
      expect([s.kind, s.type]).toEqual([kind, type]);
    });
  }
});

describe('per-stanza semantic status; the stream continues (RFC 6120 §8.2.3)', () => {
  const cases: [string, StanzaStatus][] = [
    ["<iq type='get'><ping xmlns='urn:xmpp:ping'/></iq>", StanzaStatus.IqMissingId],
    ["<iq id='1'><ping xmlns='urn:xmpp:ping'/></iq>", StanzaStatus.IqBadType],
    ["<iq id='1' type='chat'><x/></iq>", StanzaStatus.IqBadType],
    ["<iq id='1' type='GET'><x/></iq>", StanzaStatus.IqBadType],
    ["<iq id='1' type='get'/>", StanzaStatus.IqGetSetChildCount],
    ["<iq id='1' type='set'><a/><b/></iq>", StanzaStatus.IqGetSetChildCount],
    ["<iq id='1' type='get'>text only</iq>", StanzaStatus.IqGetSetChildCount],
    ["<iq id='1' type='set'><a><b/><c/></a></iq>", StanzaStatus.Ok],
    ["<iq id='1' type='result'><a/><b/></iq>", StanzaStatus.IqResultChildCount],
    ["<iq id='1' type='result'><a/></iq>", StanzaStatus.Ok],
    ["<iq id='1' type='error'><query xmlns='jabber:iq:roster'/></iq>", StanzaStatus.IqErrorWithoutError],
    ["<iq id='1' type='error'><query xmlns='jabber:iq:roster'/><error type='cancel'/></iq>", StanzaStatus.Ok],
    ["<message type='invisible'/>", StanzaStatus.MessageBadType],
    ["<message type='get'/>", StanzaStatus.MessageBadType],
    ["<message type=''/>", StanzaStatus.MessageBadType],
    ["<presence type='available'/>", StanzaStatus.PresenceBadType],
    ["<presence type='chat'/>", StanzaStatus.PresenceBadType],
    ["<enable xmlns='urn:xmpp:sm:3' type='whatever'/>", StanzaStatus.Ok],
  ];
  for (const [xml, status] of cases) {
    it(`${xml} → ${StanzaStatus[status]}`, () => {
      expect(one(xml).status).toBe(status);
    });
  }

  it('keeps parsing after a stanza with a bad status', () => {
    const ev = parseWhole(`${STREAM_OPEN}<iq type='get'/><message type='chat'><body>x</body></message>`);
    expect(ev.map((e) => (e.ev === 'stanza' ? e.status : e.ev))).toEqual(['open', StanzaStatus.IqMissingId, StanzaStatus.Ok]);
  });
});

describe('descriptor fields', () => {
  it('reports absent attributes as null / -1 and no child as null', () => {
    const s = one('<presence/>');
    expect([s.to, s.from, s.id, s.typeString, s.fromAttr, s.childName, s.childNamespace, s.childCount]).toEqual([
      null, null, null, null, null, null, null, 0,
    ]);
    expect(s.nameEnd).toBe('<presence'.length);
    expect(s.length).toBe('<presence/>'.length);
  });

  it('resolves the stanza namespace from the stream header, its own xmlns, or a prefix', () => {
    expect(one('<message/>').namespace).toBe('jabber:client');
    expect(one("<auth xmlns='urn:ietf:params:xml:ns:xmpp-sasl' mechanism='PLAIN'>=</auth>").namespace).toBe('urn:ietf:params:xml:ns:xmpp-sasl');
    expect(one("<sm:enable xmlns:sm='urn:xmpp:sm:3'/>").namespace).toBe('urn:xmpp:sm:3');
    expect(one("<message xmlns='jabber:client'/>").namespace).toBe('jabber:client');
    expect(one("<x xmlns=''/>").namespace).toBe('');
  });

  it('names the first child with its local name and resolved namespace', () => {
    const s = one("<iq type='set' id='a'><b:bind xmlns:b='urn:ietf:params:xml:ns:xmpp-bind'><resource>r</resource></b:bind></iq>");
    expect([s.childName, s.childNamespace, s.childCount]).toEqual(['bind', 'urn:ietf:params:xml:ns:xmpp-bind', 1]);
    const m = one("<message><body>x</body><active xmlns='http://jabber.org/protocol/chatstates'/></message>");
    expect([m.childName, m.childNamespace, m.childCount]).toEqual(['body', 'jabber:client', 2]);
    const q = one("<iq type='get' id='q' xmlns:d='urn:d'><query xmlns='urn:x&amp;y'/></iq>");
    expect(q.childNamespace).toBe('urn:x&y');
  });

  it('spans the whole from attribute with its leading whitespace, for splicing', () => {
    const s = one(`<message to='a'\n\t from = "x@y/z" id='1'/>`);
    expect(s.fromAttr).toBe(`\n\t from = "x@y/z"`);
    expect(s.from).toBe('x@y/z');
  });

  it('decodes references in to/from/id/type only when present', () => {
    const s = one(`<message to='a&amp;b' from='&#x61;@b' id='&lt;&gt;&apos;&quot;' type='c&#104;at'/>`);
    expect([s.to, s.from, s.id, s.typeString, s.type]).toEqual(['a&b', 'a@b', `<>'"`, 'chat', StanzaType.Chat]);
  });

  it('decodes non-ASCII attribute values as UTF-8', () => {
    expect(one(`<message to='jüliet@exämple.com/bälcony'/>`).to).toBe('jüliet@exämple.com/bälcony');
  });
});

describe('atom table for repeated `to` values', () => {
  it('returns the right string for repeated, evicted and re-inserted values', () => {
    const tos = Array.from({ length: 3000 }, (_, i) => `user${i % 1500}@example.com/r${i % 7}`);
    const input = STREAM_OPEN + tos.map((t) => `<message to='${t}'/>`).join('') + tos.map((t) => `<message to='${t}'/>`).join('');
    const got = parseWhole(input).flatMap((e) => (e.ev === 'stanza' ? [e.to] : []));
    expect(got).toEqual([...tos, ...tos]);
  });
});

/**
 * A JavaScript StanzaView over a string, for tests that must not depend on the WASM core
 * (unit tests of the router) and as the scenario runner's fallback when the core is not built.
 * It computes the same fields the core's descriptor carries, including the RFC 6120 §8.2.3 and
 * RFC 6121 type checks, with regular expressions over well-formed test input.
 */
import { StanzaKind, StanzaStatus, StanzaType, type StanzaView } from '../../src/core/api.js';
import { unescapeXML } from 'ltx';
import { childElements, parseElement } from '../../src/xml/element.js';

const TYPES: Record<string, Record<string, StanzaType>> = {
  iq: { get: StanzaType.Get, set: StanzaType.Set, result: StanzaType.Result, error: StanzaType.Error },
  message: {
    chat: StanzaType.Chat,
    groupchat: StanzaType.Groupchat,
    headline: StanzaType.Headline,
    normal: StanzaType.Normal,
    error: StanzaType.Error,
  },
  presence: {
    unavailable: StanzaType.Unavailable,
    subscribe: StanzaType.Subscribe,
    subscribed: StanzaType.Subscribed,
    unsubscribe: StanzaType.Unsubscribe,
    unsubscribed: StanzaType.Unsubscribed,
    probe: StanzaType.Probe,
    error: StanzaType.Error,
  },
};

const KINDS: Record<string, StanzaKind> = { message: StanzaKind.Message, presence: StanzaKind.Presence, iq: StanzaKind.Iq };

export function jsView(xml: string, streamNs = 'jabber:client', pad = 5): StanzaView {
  const buffer = Buffer.concat([Buffer.alloc(pad, 0x20), Buffer.from(xml, 'utf8'), Buffer.alloc(pad, 0x20)]);
  const start = pad;
  const end = pad + Buffer.byteLength(xml);
  const head = /^<([^\s/>]+)/.exec(xml);
  if (!head) throw new Error(`not an element: ${xml}`);
  const name = head[1]!;
  const nameEnd = start + Buffer.byteLength(head[0]);
  const tagEnd = xml.indexOf('>');
  const attrs = new Map<string, { value: string; from: number; to: number }>();
  const re = /\s+([^\s=/>]+)\s*=\s*(?:'([^']*)'|"([^"]*)")/gy;
  re.lastIndex = head[0].length;
  for (let m = re.exec(xml); m && m.index < tagEnd; m = re.exec(xml)) {
    const from = start + Buffer.byteLength(xml.slice(0, m.index));
    attrs.set(m[1]!, { value: unescapeXML(m[2] ?? m[3] ?? ''), from, to: from + Buffer.byteLength(m[0]) });
  }
  const el = parseElement(xml);
  const local = name.includes(':') ? name.slice(name.indexOf(':') + 1) : name;
  const ns = (el.attrs.xmlns as string | undefined) ?? streamNs;
  const kind = KINDS[local] && ns === streamNs ? KINDS[local]! : StanzaKind.Other;
  const typeText = attrs.get('type')?.value ?? null;
  const children = childElements(el);
  let type = StanzaType.None;
  let status = StanzaStatus.Ok;
  if (kind !== StanzaKind.Other && typeText !== null) type = TYPES[local]![typeText] ?? StanzaType.Unknown;
  if (kind === StanzaKind.Iq) {
    if (type === StanzaType.None || type === StanzaType.Unknown) status = StanzaStatus.IqBadType;
    else if (!attrs.has('id')) status = StanzaStatus.IqMissingId;
    else if ((type === StanzaType.Get || type === StanzaType.Set) && children.length !== 1) status = StanzaStatus.IqGetSetChildCount;
    else if (type === StanzaType.Result && children.length > 1) status = StanzaStatus.IqResultChildCount;
    else if (type === StanzaType.Error && !children.some((c) => c.name === 'error')) status = StanzaStatus.IqErrorWithoutError;
  } else if (type === StanzaType.Unknown) {
    status = kind === StanzaKind.Message ? StanzaStatus.MessageBadType : StanzaStatus.PresenceBadType;
  }
  const first = children[0];
  const fromAttr = attrs.get('from');
  return {
    kind,
    type,
    status,
    buffer,
    start,
    end,
    nameEnd,
    fromAttrStart: fromAttr ? fromAttr.from : -1,
    fromAttrEnd: fromAttr ? fromAttr.to : -1,
    childCount: children.length,
    name: () => name,
    namespace: () => ns,
    to: () => attrs.get('to')?.value ?? null,
    from: () => fromAttr?.value ?? null,
    id: () => attrs.get('id')?.value ?? null,
    typeString: () => typeText,
    childName: () => (first ? first.getName() : null),
    childNamespace: () => (first ? ((first.attrs.xmlns as string | undefined) ?? ns) : null),
    raw: () => Buffer.from(buffer.subarray(start, end)),
    toString: () => xml,
  };
}

/**
 * What RFC 7395 §3.3.3's check (one complete element per WebSocket message) costs each inbound
 * message. The transport looks at the first tag's name only (classifyInbound: <open/>, <close/>,
 * RFC 6120 headers); the stream lets the parser that reads the message anyway tell the rest
 * (C2SStream.feedElement: the element must be as long as the message without its surrounding
 * whitespace). An earlier version scanned every tag in JS (0.7-2.6x the parse) and then asked
 * parser.rest() per element (an allocation, ~1.8x the parse of a chat message); both were
 * dropped for these figures. Compared with the check the
 * transport made before (a look at the first bytes for <open/>/<close/>, which let two elements
 * or half of one through) and, for scale, with the WASM core parsing the same message.
 *
 *   node dist/bench/core/websocket-frame.js [--messages 20000] [--rounds 15] [--json]
 *
 * Best of `rounds` alternating rounds per column (the box is shared: the minimum is the figure
 * least disturbed by the other processes).
 */
import type { ParserHandler, StreamParser } from '../../src/core/api.js';
import { loadCore } from '../../src/core/parser.js';
import { classifyInbound } from '../../src/transport/websocket.js';
import { nowNs, numArg, report, round, type Row } from './shard-common.js';

const messages = numArg('messages', 20_000);
const rounds = numArg('rounds', 15);

/** The transport's check before: could this message be <open/> or <close/>? */
function mayBeFramingBefore(bytes: Buffer): boolean {
  let i = 0;
  while (i < bytes.length && (bytes[i] === 0x20 || (bytes[i]! >= 0x09 && bytes[i]! <= 0x0d))) i++;
  const c = bytes[i];
  if (c === undefined) return false;
  if (c >= 0x80) return true;
  return c === 0x3c && (bytes[i + 1] === 0x6f || bytes[i + 1] === 0x63);
}

const CASES: [string, string][] = [
  ['chat message, 118 B', "<message xmlns='jabber:client' to='bob@localhost' type='chat' id='m1'><body>hello there, how are you?</body></message>"],
  [
    'presence with caps, 250 B',
    "<presence xmlns='jabber:client'><show>away</show><status>in a meeting</status><c xmlns='http://jabber.org/protocol/caps' hash='sha-1' node='https://conversations.im' ver='VB8L3VpdnGqxeGe7bcwMfNhuvpg='/></presence>",
  ],
  ['message with a 4 KiB body', `<message xmlns='jabber:client' to='bob@localhost' type='chat' id='m2'><body>${'lorem ipsum '.repeat(340)}</body></message>`],
  [
    'OMEMO-like message, 40 elements',
    `<message xmlns='jabber:client' to='bob@localhost' type='chat' id='m3'><encrypted xmlns='eu.siacs.conversations.axolotl'><header sid='123'>${Array.from(
      { length: 36 },
      (_, i) => `<key rid='${1000 + i}'>${'QUJD'.repeat(20)}</key>`,
    ).join('')}<iv>aXZpdml2</iv></header><payload>cGF5bG9hZA==</payload></encrypted><store xmlns='urn:xmpp:hints'/></message>`,
  ],
];

const HEADER = Buffer.from("<stream:stream xmlns='jabber:client' xmlns:stream='http://etherx.jabber.org/streams' to='localhost' version='1.0'>");

/** A parser inside a stream; with `length`, its handler makes the stream's check on each element. */
function parserWith(length: number | null): StreamParser {
  const handler: ParserHandler = {
    onStreamOpen: () => {},
    onStanza: (view) => {
      if (length !== null && view.end - view.start !== length) throw new Error('not the one element');
    },
    onStreamClose: () => {},
    onError: (e) => {
      throw new Error(e.message);
    },
  };
  const parser = loadCore().createParser(handler);
  parser.feed(HEADER);
  return parser;
}

function perMessage(run: () => void): number {
  const t = nowNs();
  run();
  return Number(nowNs() - t) / messages;
}

const rows: Row[] = [];
let sink = 0;
for (const [name, xml] of CASES) {
  const bytes = Buffer.from(xml);
  const plain = parserWith(null);
  const checked = parserWith(bytes.length);
  const best = { before: Infinity, classify: Infinity, parse: Infinity, parseChecked: Infinity };
  for (let r = 0; r < rounds; r++) {
    best.before = Math.min(best.before, perMessage(() => { for (let i = 0; i < messages; i++) if (mayBeFramingBefore(bytes)) sink++; }));
    best.classify = Math.min(best.classify, perMessage(() => { for (let i = 0; i < messages; i++) if (classifyInbound(bytes).kind === 'element') sink++; }));
    best.parse = Math.min(best.parse, perMessage(() => { for (let i = 0; i < messages; i++) plain.feed(bytes); }));
    best.parseChecked = Math.min(best.parseChecked, perMessage(() => { for (let i = 0; i < messages; i++) checked.feed(bytes); }));
  }
  plain.free();
  checked.free();
  const added = best.classify - best.before + (best.parseChecked - best.parse);
  rows.push({
    case: name,
    'before ns': round(best.before),
    'classifyInbound ns': round(best.classify),
    'core parse ns': round(best.parse),
    'parse + check ns': round(best.parseChecked),
    'added / parse': round(added / best.parse, 3),
  });
}
if (sink < 0) console.log(sink);
report(`RFC 7395 inbound check per WebSocket message (${messages} messages, best of ${rounds} rounds)`, rows);

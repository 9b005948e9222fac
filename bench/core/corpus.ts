/**
 * A generated, realistic client-to-server stream for the core benchmarks: what one busy client
 * sends after authentication — chat messages with bodies and chat states, receipts, presence with
 * entity capabilities, roster and disco IQs, stream-management acks, whitespace keepalives —
 * with non-ASCII text and escaped characters. Deterministic for a given seed.
 */

export const CORPUS_HEADER =
  "<?xml version='1.0'?><stream:stream xmlns='jabber:client' xmlns:stream='http://etherx.jabber.org/streams' to='example.com' version='1.0' xml:lang='en'>";

/** mulberry32: a small seeded PRNG, so every run measures the same bytes. */
function prng(seed: number): () => number {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

const WORDS = [
  'hello', 'are', 'you', 'coming', 'tonight', 'the', 'meeting', 'moved', 'to', 'room', 'B',
  'ok', 'see', 'you', 'there', 'thanks', 'lunch?', 'sure', 'deploy', 'finished', 'ça', 'va',
  'très', 'bien', 'Grüße', 'aus', 'München', 'привет', 'как', 'дела', 'こんにちは', '元気',
  'ですか', '🙂', '👍', 'naïve', 'café', 'fish', '&amp;', 'chips', '&lt;3', '&quot;quoted&quot;',
  "it's", 'a&gt;b', 'https://example.org/a?b=1&amp;c=2',
];
const USERS = ['juliet', 'romeo', 'nurse', 'tybalt', 'mercutio', 'benvolio', 'paris', 'laurence'];
const SHOWS = ['away', 'chat', 'dnd', 'xa'];
const STATES = ['active', 'composing', 'paused', 'inactive', 'gone'];

export function generateCorpus(targetBytes = 1 << 20, seed = 6120): Buffer {
  const r = prng(seed);
  const pick = <T>(a: readonly T[]): T => a[Math.floor(r() * a.length)];
  const jid = () => `${pick(USERS)}@example.${r() < 0.7 ? 'com' : 'net'}`;
  const full = () => `${jid()}/${pick(['balcony', 'orchard', 'phone', 'laptop-7f3a'])}`;
  const id = () => Math.floor(r() * 2 ** 48).toString(36);
  const sentence = (max: number) =>
    Array.from({ length: 1 + Math.floor(r() * max) }, () => pick(WORDS)).join(' ');
  const parts: string[] = [CORPUS_HEADER];
  let size = Buffer.byteLength(CORPUS_HEADER);
  while (size < targetBytes) {
    const x = r();
    let s: string;
    if (x < 0.35) {
      s =
        `<message to='${full()}' type='chat' id='${id()}'><body>${sentence(30)}</body>` +
        `<active xmlns='http://jabber.org/protocol/chatstates'/><request xmlns='urn:xmpp:receipts'/>` +
        `<origin-id xmlns='urn:xmpp:sid:0' id='${id()}'/></message>`;
    } else if (x < 0.47) {
      s = `<message to='${full()}' type='chat' id='${id()}'><${pick(STATES)} xmlns='http://jabber.org/protocol/chatstates'/><no-store xmlns='urn:xmpp:hints'/></message>`;
    } else if (x < 0.53) {
      s = `<message to='${full()}' id='${id()}'><received xmlns='urn:xmpp:receipts' id='${id()}'/></message>`;
    } else if (x < 0.68) {
      s =
        `<presence${r() < 0.3 ? ` to='${jid()}'` : ''}><show>${pick(SHOWS)}</show><status>${sentence(6)}</status>` +
        `<priority>${Math.floor(r() * 10)}</priority><c xmlns='http://jabber.org/protocol/caps' hash='sha-1' ` +
        `node='https://gajim.org' ver='${Buffer.from(id() + id()).toString('base64')}'/></presence>`;
    } else if (x < 0.72) {
      s = `<presence type='${pick(['unavailable', 'subscribe', 'subscribed', 'probe'])}' to='${jid()}'/>`;
    } else if (x < 0.78) {
      s = `<iq type='get' id='${id()}'><query xmlns='jabber:iq:roster' ver='ver${Math.floor(r() * 99)}'/></iq>`;
    } else if (x < 0.82) {
      s =
        `<iq type='set' id='${id()}'><query xmlns='jabber:iq:roster'><item jid='${jid()}' name='${pick(USERS)} ${pick(['Ö', 'é', '&amp;', 'x'])}'>` +
        `<group>${pick(['Friends', 'Family', 'Büro', 'Работа'])}</group></item></query></iq>`;
    } else if (x < 0.88) {
      s = `<iq type='get' to='${pick(['example.com', 'conference.example.com', full()])}' id='${id()}'><query xmlns='http://jabber.org/protocol/disco#info'/></iq>`;
    } else if (x < 0.91) {
      const feats = ['http://jabber.org/protocol/caps', 'urn:xmpp:ping', 'urn:xmpp:receipts', 'http://jabber.org/protocol/chatstates', 'urn:xmpp:carbons:2', 'jabber:iq:version'];
      s =
        `<iq type='result' to='${full()}' id='${id()}'><query xmlns='http://jabber.org/protocol/disco#info' node='https://gajim.org#${id()}'>` +
        `<identity category='client' type='pc' name='Gajim'/>${feats.map((f) => `<feature var='${f}'/>`).join('')}</query></iq>`;
    } else if (x < 0.95) {
      s = `<iq type='get' to='example.com' id='${id()}'><ping xmlns='urn:xmpp:ping'/></iq>`;
    } else if (x < 0.98) {
      s = r() < 0.5 ? `<r xmlns='urn:xmpp:sm:3'/>` : `<a xmlns='urn:xmpp:sm:3' h='${Math.floor(r() * 5000)}'/>`;
    } else {
      s = ' ';
    }
    parts.push(s);
    size += Buffer.byteLength(s);
  }
  return Buffer.from(parts.join(''));
}

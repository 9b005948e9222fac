/**
 * The start tag of a well-formed element held as text (a stanza as its client wrote it, copied
 * by carbons, the archive, offline storage or the WebSocket framing), read by its quotes.
 * XML 1.0 §3.1 lets attribute values hold '>', '/' and text that looks like markup (` xmlns=`,
 * ` type='chat'`), so neither a search for the first '>' nor a pattern over the tag can tell
 * where the tag ends or which attributes it has.
 */
export interface StartTag {
  /** Qualified name as written ('message', 'c:message'). */
  name: string;
  /** Attributes by qualified name, values as written (still escaped). */
  attrs: Map<string, string>;
  /** Index just after the tag's '>' (0 when `text` holds no complete start tag). */
  end: number;
}

const isSpace = (c: number) => c === 0x20 || c === 0x09 || c === 0x0a || c === 0x0d;

export function readStartTag(text: string): StartTag {
  let i = 1;
  while (i < text.length && !isSpace(text.charCodeAt(i)) && text[i] !== '/' && text[i] !== '>') i++;
  const tag: StartTag = { name: text.slice(1, i), attrs: new Map(), end: 0 };
  for (;;) {
    while (i < text.length && isSpace(text.charCodeAt(i))) i++;
    if (text[i] === '>') return { ...tag, end: i + 1 };
    if (text[i] === '/') return { ...tag, end: text[i + 1] === '>' ? i + 2 : 0 };
    const eq = text.indexOf('=', i);
    if (eq < 0) return tag;
    let open = eq + 1;
    while (open < text.length && isSpace(text.charCodeAt(open))) open++;
    const quote = text[open];
    if (quote !== "'" && quote !== '"') return tag;
    const close = text.indexOf(quote, open + 1);
    if (close < 0) return tag;
    tag.attrs.set(text.slice(i, eq).trimEnd(), text.slice(open + 1, close));
    i = close + 1;
  }
}

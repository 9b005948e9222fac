/**
 * Client-side framing of an XMPP stream into top-level elements (RFC 6120 §4.1: a stream is one
 * XML document whose first-level children are the stanzas and negotiation elements).
 *
 * The load tool trusts the server under test to send well-formed XML, so this framer does no
 * validation: it jumps from '<' to '<' with indexOf and only looks at each tag long enough to
 * know whether it opens, closes or is empty, skipping quoted attribute values (which may hold
 * '>') and CDATA sections. Text content is never scanned character by character, so framing
 * costs little more than the string concatenation of the chunks.
 */

export interface FrameSink {
  /** The `<stream:stream …>` opening tag (RFC 6120 §4.7), once per stream (and per restart). */
  streamOpen(tag: string): void;
  /** One complete first-level element, exactly as received. */
  element(xml: string): void;
  /** `</stream:stream>` (RFC 6120 §4.4). */
  streamClose(): void;
}

const LT = 0x3c;
const GT = 0x3e;
const SLASH = 0x2f;
const QUOT = 0x22;
const APOS = 0x27;
const BANG = 0x21;
const QMARK = 0x3f;

export class StanzaFramer {
  private buf = '';
  /** Where scanning resumes (always at a '<' or the end of what was consumed). */
  private pos = 0;
  /** Start of the first-level element being accumulated, or -1 between elements. */
  private start = -1;
  private depth = 0;
  private pushing = false;
  private resetInPush = false;

  constructor(private readonly sink: FrameSink) {}

  /** Forget everything: a stream restart (RFC 6120 §4.3.3) after STARTTLS or SASL. */
  reset(): void {
    this.resetInPush = this.pushing;
    this.buf = '';
    this.pos = 0;
    this.start = -1;
    this.depth = 0;
  }

  /** Bytes not yet framed (a partial element); for tests and leak checks. */
  get pending(): number {
    return this.buf.length - (this.start >= 0 ? this.start : this.pos);
  }

  push(chunk: string): void {
    this.pushing = true;
    try {
      this.scan(chunk);
    } finally {
      this.pushing = false;
    }
  }

  /**
   * True when a sink callback reset the framer: what follows in this chunk belongs to the new
   * stream, so scan() hands it over to a fresh pass instead of finishing with stale state.
   */
  private restarted(buf: string, from: number): boolean {
    if (!this.resetInPush) return false;
    this.resetInPush = false;
    if (from < buf.length) this.scan(buf.slice(from));
    return true;
  }

  private scan(chunk: string): void {
    this.buf = this.buf.length === 0 ? chunk : this.buf + chunk;
    const buf = this.buf;
    let i = this.pos;
    for (;;) {
      const lt = buf.indexOf('<', i);
      if (lt < 0) {
        i = buf.length;
        break;
      }
      const c = buf.charCodeAt(lt + 1);
      if (c !== c) {
        i = lt; // '<' is the last character: wait for more
        break;
      }
      if (c === BANG) {
        // CDATA (RFC 6120 §11.1 forbids comments and DTDs, but CDATA sections are legal text).
        const end = buf.startsWith('<![CDATA[', lt) ? buf.indexOf(']]>', lt + 9) : buf.indexOf('>', lt);
        if (end < 0) {
          i = lt;
          break;
        }
        i = end + (buf.charCodeAt(end) === GT ? 1 : 3);
        continue;
      }
      if (c === QMARK) {
        const end = buf.indexOf('?>', lt + 2);
        if (end < 0) {
          i = lt;
          break;
        }
        i = end + 2;
        continue;
      }
      const gt = tagEnd(buf, lt + 1);
      if (gt < 0) {
        i = lt;
        break;
      }
      i = gt + 1;
      if (c === SLASH) {
        if (this.depth === 0) {
          // Only the stream's own end tag closes at depth 0.
          this.sink.streamClose();
          if (this.restarted(buf, i)) return;
          continue;
        }
        if (--this.depth === 0) {
          this.sink.element(buf.slice(this.start, i));
          this.start = -1;
          if (this.restarted(buf, i)) return;
        }
        continue;
      }
      const empty = buf.charCodeAt(gt - 1) === SLASH;
      if (this.depth === 0) {
        if (buf.startsWith('stream:stream', lt + 1) || buf.startsWith('stream ', lt + 1)) {
          this.sink.streamOpen(buf.slice(lt, i));
          if (this.restarted(buf, i)) return;
          continue;
        }
        if (empty) {
          this.sink.element(buf.slice(lt, i));
          if (this.restarted(buf, i)) return;
          continue;
        }
        this.start = lt;
      }
      if (!empty) this.depth++;
    }
    // Keep only the unframed tail so the buffer never grows with the stream.
    const keep = this.start >= 0 ? this.start : i;
    if (keep >= buf.length) {
      this.buf = '';
      this.pos = 0;
      if (this.start >= 0) this.start = 0;
    } else if (keep > 0) {
      this.buf = buf.slice(keep);
      this.pos = i - keep;
      if (this.start >= 0) this.start = 0;
    } else {
      this.pos = i;
    }
  }
}

/** Index of the '>' that ends the tag whose name starts at `from`, skipping quoted values. */
function tagEnd(s: string, from: number): number {
  let i = from;
  for (;;) {
    const gt = s.indexOf('>', i);
    if (gt < 0) return -1;
    // Fast path: no quote between here and '>'.
    let q = -1;
    for (let k = i; k < gt; k++) {
      const ch = s.charCodeAt(k);
      if (ch === QUOT || ch === APOS) {
        q = k;
        break;
      }
    }
    if (q < 0) return gt;
    const close = s.indexOf(s[q], q + 1);
    if (close < 0) return -1;
    i = close + 1;
  }
}

/** Local name of an element string's root ('message', 'presence', 'iq', 'stream:features', …). */
export function elementName(xml: string): string {
  let i = 1;
  const n = xml.length;
  while (i < n) {
    const c = xml.charCodeAt(i);
    if (c === 0x20 || c === GT || c === SLASH || c === 0x09 || c === 0x0a || c === 0x0d) break;
    i++;
  }
  return xml.slice(1, i);
}

/** Value of attribute `name` on the root element (raw, not unescaped), or undefined. */
export function rootAttr(xml: string, name: string): string | undefined {
  const end = tagEnd(xml, 1);
  const head = end < 0 ? xml : xml.slice(0, end);
  let from = 0;
  for (;;) {
    const at = head.indexOf(name + '=', from);
    if (at < 0) return undefined;
    const before = head.charCodeAt(at - 1);
    if (before === 0x20 || before === 0x09 || before === 0x0a || before === 0x0d) {
      const q = head[at + name.length + 1];
      const close = head.indexOf(q, at + name.length + 2);
      if (close < 0) return undefined;
      return head.slice(at + name.length + 2, close);
    }
    from = at + 1;
  }
}

/** Text between the first `<tag>` (or `<tag …>`) and its `</tag>`, or undefined. */
export function childText(xml: string, tag: string): string | undefined {
  let at = xml.indexOf('<' + tag, 1);
  while (at >= 0) {
    const after = xml.charCodeAt(at + tag.length + 1);
    if (after === GT || after === 0x20 || after === SLASH) break;
    at = xml.indexOf('<' + tag, at + 1);
  }
  if (at < 0) return undefined;
  const gt = tagEnd(xml, at + 1);
  if (gt < 0 || xml.charCodeAt(gt - 1) === SLASH) return '';
  const close = xml.indexOf('</' + tag + '>', gt);
  return close < 0 ? undefined : xml.slice(gt + 1, close);
}

const XML_ESC: Record<string, string> = { '&': '&amp;', '<': '&lt;', '>': '&gt;', "'": '&apos;', '"': '&quot;' };
export function escapeXml(s: string): string {
  return s.replace(/[&<>'"]/g, (c) => XML_ESC[c]);
}

/**
 * Structured logs (pino): one JSON object per line by default, or one human-readable line per
 * event (`log.format: text`) for a terminal, without pino-pretty.
 *
 * Two promises, enforced here rather than left to every call site:
 *  - credentials never reach the log at any level: password, SASL payloads, component secrets
 *    and similar fields are replaced by "[redacted]" wherever they appear (top level or up to
 *    three levels down), and so is the text of credential-carrying elements (<auth/>,
 *    <response/>, <password/>, <handshake/>, …) inside logged XML, even at debug;
 *  - message contents (body, raw stanza XML, payloads) are logged only at debug and trace: in an
 *    info-or-above entry those fields become "[omitted]", and XML put into the message string has
 *    its element contents blanked.
 * Convention for callers: put stanza bytes in a `stanza` field (or `body`, `xml`), never in the
 * message text, and log them at debug.
 */
import { pino, stdTimeFunctions, type DestinationStream, type Logger, type LoggerOptions } from 'pino';
import type { LogLevel } from '../config/schema.js';

export type { Logger };

export interface LogOptions {
  level: LogLevel;
  format: 'json' | 'text';
}

/** Fields holding credentials: redacted at every level. */
export const SECRET_FIELDS = [
  'password',
  'passwd',
  'secret',
  'secrets',
  'components',
  'sasl',
  'saslPayload',
  'credentials',
  'authorization',
  'token',
  'handshake',
  'salt',
  'storedKey',
  'serverKey',
] as const;

/** Fields holding conversation content: dropped from entries at info and above. */
export const CONTENT_FIELDS = ['body', 'stanza', 'xml', 'payload', 'subject'] as const;

const REDACTED = '[redacted]';
const OMITTED = '[omitted]';
const CONTENT = new Set<string>(CONTENT_FIELDS);
/** pino's numeric level of `debug`: anything above it is info or more severe. */
const DEBUG = 20;

function redactPaths(): string[] {
  const paths: string[] = [];
  for (const f of SECRET_FIELDS) paths.push(f, `*.${f}`, `*.*.${f}`, `*.*.*.${f}`);
  return paths;
}

/**
 * XML inside a message string at info+: keep the tags (useful for diagnosis), blank the text
 * between them, so `<body>hi</body>` or `<auth …>AGFsaWNl…</auth>` leaves nothing readable.
 */
export function blankXmlText(text: string): string {
  if (!text.includes('<')) return text;
  return text.replace(/>([^<]+)</g, (_, inner: string) => (inner.trim() === '' ? `>${inner}<` : `>${OMITTED}<`));
}

/**
 * Elements whose text is a credential: SASL exchanges (RFC 6120 §6.4: PLAIN's <auth/> carries
 * the password in base64; SCRAM's <response/> carries the proof), XEP-0077 and XEP-0078
 * <password/>, XEP-0114 <handshake/>. Their text is replaced at every level, debug included.
 */
const CREDENTIAL_ELEMENT = /<((?:[\w.-]+:)?(?:auth|response|challenge|success|password|handshake))(\s[^>]*)?>([^<]*)<\/\1\s*>/g;

export function scrubCredentials(text: string): string {
  if (!text.includes('<')) return text;
  return text.replace(CREDENTIAL_ELEMENT, (all, name: string, attrs: string | undefined, inner: string) =>
    inner.trim() === '' || inner === REDACTED ? all : `<${name}${attrs ?? ''}>${REDACTED}</${name}>`,
  );
}

/** Top-level string (or byte) fields of a log object with credential elements scrubbed. */
function scrubFields(obj: Record<string, unknown>): Record<string, unknown> {
  let copy: Record<string, unknown> | undefined;
  for (const key of Object.keys(obj)) {
    const v = obj[key];
    const text = typeof v === 'string' ? v : v instanceof Uint8Array && CONTENT.has(key) ? Buffer.from(v.buffer, v.byteOffset, v.byteLength).toString('utf8') : undefined;
    if (text === undefined) continue;
    const clean = scrubCredentials(text);
    if (clean !== v) {
      copy ??= { ...obj };
      copy[key] = clean;
    }
  }
  return copy ?? obj;
}

function withoutContent(obj: Record<string, unknown>): Record<string, unknown> {
  let copy: Record<string, unknown> | undefined;
  for (const key of Object.keys(obj)) {
    if (CONTENT.has(key)) {
      copy ??= { ...obj };
      copy[key] = OMITTED;
    }
  }
  return copy ?? obj;
}

export function loggerOptions(level: LogLevel): LoggerOptions {
  return {
    level,
    base: { pid: process.pid },
    timestamp: stdTimeFunctions.isoTime,
    formatters: { level: (label) => ({ level: label }) },
    redact: { paths: redactPaths(), censor: REDACTED },
    hooks: {
      logMethod(args, method, levelValue) {
        const a = args as unknown[];
        const contentAllowed = levelValue <= DEBUG;
        for (let i = 0; i < a.length; i++) {
          const v = a[i];
          if (typeof v === 'string') a[i] = contentAllowed ? scrubCredentials(v) : blankXmlText(v);
          else if (i === 0 && v && typeof v === 'object' && !(v instanceof Error)) {
            const obj = v as Record<string, unknown>;
            a[i] = contentAllowed ? scrubFields(obj) : withoutContent(obj);
          }
        }
        return method.apply(this, args as Parameters<typeof method>);
      },
    },
  };
}

/**
 * The process logger. `destination` defaults to stdout; tests pass a collector. In text format
 * the destination receives human-readable lines instead of JSON.
 */
export function createLogger(options: LogOptions, destination?: DestinationStream): Logger {
  // Synchronous writes: Hermod logs events (connections, logins, errors), not stanzas, so the
  // cost is small, and the last lines before a crash or process.exit() are never lost in a buffer.
  const out: DestinationStream = destination ?? pino.destination({ fd: 1, sync: true });
  const stream = options.format === 'text' ? textStream(out) : out;
  return pino(loggerOptions(options.level), stream);
}

const LABEL: Record<string, string> = {
  trace: 'TRACE',
  debug: 'DEBUG',
  info: 'INFO ',
  warn: 'WARN ',
  error: 'ERROR',
  fatal: 'FATAL',
};

function quote(value: unknown): string {
  if (typeof value === 'string') return /^[^\s"=]+$/.test(value) ? value : JSON.stringify(value);
  if (typeof value === 'object' && value !== null) return JSON.stringify(value);
  return String(value);
}

/** One JSON log line → `2026-01-01T00:00:00.000Z INFO  [component] message key=value …`. */
export function formatTextLine(json: string): string {
  let entry: Record<string, unknown>;
  try {
    entry = JSON.parse(json) as Record<string, unknown>;
  } catch {
    return json.endsWith('\n') ? json : `${json}\n`;
  }
  const { time, level, msg, pid: _pid, component, err, ...rest } = entry;
  const parts = [String(time ?? ''), LABEL[String(level)] ?? String(level).toUpperCase()];
  if (component !== undefined) parts.push(`[${String(component)}]`);
  if (msg !== undefined && msg !== '') parts.push(String(msg));
  for (const [k, v] of Object.entries(rest)) parts.push(`${k}=${quote(v)}`);
  if (err && typeof err === 'object') {
    const e = err as { type?: string; message?: string; code?: string };
    parts.push(`err=${quote(`${e.type ?? 'Error'}: ${e.message ?? ''}`)}`);
    if (e.code) parts.push(`code=${quote(e.code)}`);
  }
  return `${parts.join(' ').replace(/\n/g, '\\n')}\n`;
}

function textStream(out: DestinationStream): DestinationStream {
  return {
    write(chunk: string) {
      // pino hands one complete entry per write.
      out.write(formatTextLine(chunk.endsWith('\n') ? chunk.slice(0, -1) : chunk));
    },
  };
}

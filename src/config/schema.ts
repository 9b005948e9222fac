/**
 * Hermod's configuration: the one object shape every layer reads (HermodConfig), and the schema
 * that knows, for every option, its YAML key, its default, what values it accepts and how to
 * print it back.
 *
 * Naming: the object uses camelCase properties; the YAML file uses the same names in snake_case
 * (`maxStanzaBytes` ⇄ `max_stanza_bytes`), like ejabberd.yml. Error messages and `check-config`
 * name options by their YAML path (`limits.max_stanza_bytes`), which is also what `--set` takes.
 *
 * Units in the object are fixed: durations in milliseconds, sizes in bytes, rates per second.
 * The file may write them with units (`30s`, `5m`, `64KiB`); a bare number is seconds / bytes.
 */
import { isIP } from 'node:net';
import { DEFAULT_LIMITS } from '../core/api.js';
import { prepareDomainpart } from '../jid.js';

export type LogLevel = 'fatal' | 'error' | 'warn' | 'info' | 'debug' | 'trace' | 'silent';
export const LOG_LEVELS: readonly LogLevel[] = ['fatal', 'error', 'warn', 'info', 'debug', 'trace', 'silent'];

/** A token bucket: `rate` units per second sustained, up to `burst` at once. rate 0 = no limit. */
export interface RateLimit {
  rate: number;
  burst: number;
}

export interface HermodConfig {
  /** The XMPP domain this server answers for (RFC 7622 domainpart). */
  domain: string;
  /** Directory of the SQLite database and the generated self-signed certificate. */
  dataDir: string;
  /** Shard worker threads; 0 runs everything on the main thread. */
  workers: number;
  /** XEP-0077 in-band registration. */
  registration: 'open' | 'closed';
  listen: {
    /** RFC 6120 client-to-server listener (STARTTLS). */
    c2s: { host: string; port: number; backlog: number };
    /** XEP-0368 Direct TLS listener. */
    directTls: { enabled: boolean; host: string; port: number };
    /** RFC 7395 XMPP over WebSocket. */
    websocket: { enabled: boolean; host: string; port: number; path: string };
    /** XEP-0114 component listener; runs when `components` has at least one entry. */
    component: { host: string; port: number };
  };
  tls: {
    /** `required`: no SASL before TLS (RFC 6120 §5.3.1 mandatory-to-negotiate). */
    policy: 'required' | 'optional';
    /** PEM certificate chain; null = self-signed certificate generated in dataDir. */
    cert: string | null;
    /** PEM private key matching `cert`. */
    key: string | null;
    /** Accounts whose last verified PLAIN login is remembered to skip PBKDF2 next time; 0 = off. */
    plainLoginCache: number;
  };
  limits: {
    /** Largest stanza after authentication (bytes). */
    maxStanzaBytes: number;
    /** Largest stanza before authentication (bytes). */
    preauthMaxStanzaBytes: number;
    /** Deepest element nesting inside a stanza. */
    maxDepth: number;
    /** Most attributes on one element. */
    maxAttributes: number;
    /** Per-connection inbound byte shaper (bytes per second); reading pauses when exceeded. */
    byteRate: RateLimit;
    /** The same shaper before authentication (lower: the peer is anonymous). */
    preauthByteRate: RateLimit;
    /** Per-connection stanza shaper (stanzas per second). */
    stanzaRate: RateLimit;
    /** Simultaneous connections from one IP address; 0 = no limit. */
    connectionsPerIp: number;
    /** Simultaneous connections in total; 0 = no limit. */
    maxConnections: number;
    /** SASL attempts allowed on one stream before it is closed (RFC 6120 §6.4.5). */
    authAttempts: number;
    /** Delay before answering a failed SASL attempt, doubled per consecutive failure from one IP (ms). */
    authFailureDelay: number;
    /** Ceiling of that delay (ms). */
    authFailureDelayMax: number;
    /** Failed authentications from one IP within authBanTime after which it is refused; 0 = never. */
    authBanFailures: number;
    /** The window those failures are counted in, and so how long a refusal lasts (ms). */
    authBanTime: number;
    /** Authenticated stream closed after this long without inbound bytes (ms); 0 = never. */
    idleTimeout: number;
    /** Time allowed to finish TLS, SASL and bind (ms). */
    preauthTimeout: number;
    /** Bytes queued for one slow reader before its stream is closed. */
    outputQueueBytes: number;
  };
  /** XEP-0198 Stream Management. */
  streamManagement: {
    enabled: boolean;
    /** How long a detached session waits to be resumed (ms); 0 disables resumption. */
    resumeTimeout: number;
    /** Unacknowledged stanzas kept per session before the stream is closed. */
    maxUnacked: number;
    /** Their bytes: the stanza count alone lets 256 KiB stanzas hold a gigabyte per session. */
    maxUnackedBytes: number;
  };
  offline: {
    /** Offline messages stored per user; further ones bounce with service-unavailable. */
    maxPerUser: number;
  };
  /** XEP-0313 message archives. */
  mam: {
    /** Archiving policy of accounts that set no preferences (XEP-0441). */
    default: 'always' | 'never' | 'roster';
    /** Archived messages older than this are deleted (ms); 0 = kept. */
    maxAge: number;
    /** Newest archived messages kept per account; 0 = no cap. */
    maxPerUser: number;
    /** How often retention runs (ms). */
    purgeInterval: number;
  };
  /** XEP-0045 multi-user chat service (src/muc). */
  muc: {
    enabled: boolean;
    /** The service's domain; null = conference.<domain>. */
    domain: string | null;
    /** Rooms held at once, persistent and temporary. */
    maxRooms: number;
    /** Rooms one session may be in at once. */
    maxRoomsPerSession: number;
    /** Occupants per room (also the ceiling of muc#roomconfig_maxusers). */
    maxOccupants: number;
    /** Groupchat messages kept per room for history on join (memory only). */
    historySize: number;
    /** Largest groupchat or private message content (bytes). */
    maxMessageBytes: number;
    /** XEP-0313 room archives offered at all (muc#roomconfig_enablearchiving in the room form). */
    archive: boolean;
    /** Whether a new room archives until its owners say otherwise. */
    archiveDefault: boolean;
  };
  /** XEP-0114 components: component domain → shared secret. */
  components: Record<string, string>;
  /** XEP-0157 contact addresses (URIs) published in the server's disco#info. */
  contact: import('../modules/contact.js').ContactAddresses;
  /** XEP-0363 HTTP File Upload (src/upload/). */
  upload: {
    enabled: boolean;
    /** The upload service's JID; '' = upload.<domain>. */
    domain: string;
    /** Where the HTTP service listens (main thread). */
    http: { host: string; port: number };
    /** The base URL clients are told (a reverse proxy's, usually https); '' = http://<host>:<port>. */
    publicUrl: string;
    /** Largest file accepted (bytes). */
    maxFileSize: number;
    /** Bytes of files one account may keep; 0 = no quota. */
    quota: number;
    /** Files older than this are deleted (ms); 0 = kept. */
    expireAfter: number;
    /** Where files are stored; null = <data_dir>/uploads. */
    dir: string | null;
    /**
     * Requests per `window` (ms), per account and per remote address: slot requests (counted by
     * each shard) and PUTs (the HTTP service). 0 = no limit.
     */
    rateLimit: { window: number; slotsPerAccount: number; slotsPerIp: number; putsPerAccount: number; putsPerIp: number };
  };
  /** Prometheus endpoint (GET /metrics). */
  metrics: { enabled: boolean; host: string; port: number };
  log: { level: LogLevel; format: 'json' | 'text' };
}

/** Thrown by a leaf parser: what is wrong, and optionally which sub-key (for maps). */
export class BadValue extends Error {
  constructor(
    message: string,
    readonly subKey?: string,
  ) {
    super(message);
  }
}

export interface Leaf<T> {
  readonly leaf: true;
  readonly default: T;
  /** One line for the annotated example and docs. */
  readonly doc: string;
  /** Converts a YAML value (already turned into JS) to the config value; throws BadValue. */
  parse(value: unknown): T;
  /** The value as it should be written back into YAML (units restored). */
  show(value: T): unknown;
  /** Printed as <redacted> by check-config and never logged. */
  readonly secret?: boolean;
  /** A filesystem path: a relative one in a file is taken relative to that file's folder. */
  readonly isPath?: boolean;
}

export type Schema<T> = {
  [K in keyof T]-?: Leaf<T[K]> | (T[K] extends object ? Schema<T[K]> : never);
};

export function isLeaf(node: unknown): node is Leaf<unknown> {
  return typeof node === 'object' && node !== null && (node as { leaf?: unknown }).leaf === true;
}

/** How a rejected value is quoted in error messages. */
export function describe(value: unknown): string {
  if (value === null || value === undefined) return 'nothing';
  if (Array.isArray(value)) return 'a list';
  if (typeof value === 'object') return 'a map';
  const text = JSON.stringify(value);
  return text.length > 60 ? `${text.slice(0, 57)}…"` : text;
}

function leaf<T>(spec: Omit<Leaf<T>, 'leaf' | 'show'> & { show?: (v: T) => unknown }): Leaf<T> {
  return { leaf: true, show: (v: T) => v, ...spec };
}

function bad(expect: string, value: unknown): BadValue {
  return new BadValue(`must be ${expect}, got ${describe(value)}`);
}

function int(def: number, min: number, max: number, doc: string, expect?: string): Leaf<number> {
  const what = expect ?? `an integer ${min}-${max}`;
  return leaf({
    default: def,
    doc,
    parse(v) {
      if (typeof v !== 'number' || !Number.isInteger(v) || v < min || v > max) throw bad(what, v);
      return v;
    },
  });
}

function port(def: number, doc: string): Leaf<number> {
  return int(def, 0, 65535, doc, 'an integer 0-65535 (0 = any free port)');
}

function bool(def: boolean, doc: string): Leaf<boolean> {
  return leaf({
    default: def,
    doc,
    parse(v) {
      if (typeof v !== 'boolean') {
        // YAML 1.2 (what the yaml package reads) no longer treats yes/no/on/off as booleans.
        const hint = typeof v === 'string' && /^(yes|no|on|off|y|n)$/i.test(v) ? ' (YAML 1.2 reads yes/no/on/off as text)' : '';
        throw new BadValue(`must be true or false, got ${describe(v)}${hint}`);
      }
      return v;
    },
  });
}

function oneOf<T extends string>(def: T, values: readonly T[], doc: string): Leaf<T> {
  const expect = values.map((x) => `"${x}"`).join(', ').replace(/, ([^,]*)$/, ' or $1');
  return leaf({
    default: def,
    doc,
    parse(v) {
      if (typeof v !== 'string' || !values.includes(v as T)) throw bad(`one of ${expect}`, v);
      return v as T;
    },
  });
}

function host(def: string, doc: string): Leaf<string> {
  return leaf({
    default: def,
    doc,
    parse(v) {
      // An address to bind: an IP literal, or a name the resolver knows (localhost, a hostname).
      const ok =
        typeof v === 'string' &&
        (isIP(v) !== 0 || /^(?=.{1,253}$)[a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?(\.[a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?)*$/i.test(v));
      if (!ok) throw bad('an IP address or host name to listen on', v);
      return v;
    },
  });
}

function domain(def: string, doc: string): Leaf<string> {
  return leaf({
    default: def,
    doc,
    parse(v) {
      if (typeof v !== 'string') throw bad('a domain name', v);
      try {
        return prepareDomainpart(v);
      } catch (err) {
        throw new BadValue(`must be a valid XMPP domain (${(err as Error).message}), got ${describe(v)}`);
      }
    },
  });
}

function path(def: string, doc: string): Leaf<string>;
function path(def: null, doc: string): Leaf<string | null>;
function path(def: string | null, doc: string): Leaf<string | null> {
  const nullable = def === null;
  return leaf({
    default: def,
    doc,
    isPath: true,
    parse(v) {
      if (v === null && nullable) return null;
      if (typeof v !== 'string' || v.length === 0 || v.includes('\0')) {
        throw bad(nullable ? 'a file path or null' : 'a non-empty path', v);
      }
      return v;
    },
  });
}

// ---- units ---------------------------------------------------------------------------------

const DURATION_UNITS: Record<string, number> = { ms: 1, s: 1000, m: 60_000, h: 3_600_000, d: 86_400_000 };
const SIZE_UNITS: Record<string, number> = { b: 1, kib: 1024, mib: 1024 ** 2, gib: 1024 ** 3 };

/** `30s`, `5m`, `1.5h`, `250ms`, or a bare number of seconds → milliseconds. */
export function parseDuration(v: unknown): number | undefined {
  if (typeof v === 'number') return Number.isFinite(v) && v >= 0 ? Math.round(v * 1000) : undefined;
  if (typeof v !== 'string') return undefined;
  const m = /^\s*(\d+(?:\.\d+)?)\s*(ms|s|m|h|d)\s*$/.exec(v);
  return m ? Math.round(Number(m[1]) * DURATION_UNITS[m[2]!]!) : undefined;
}

/** Milliseconds → the largest unit that divides them exactly. */
export function formatDuration(ms: number): string {
  for (const unit of ['d', 'h', 'm', 's']) {
    const size = DURATION_UNITS[unit]!;
    if (ms !== 0 && ms % size === 0) return `${ms / size}${unit}`;
  }
  return ms === 0 ? '0s' : `${ms}ms`;
}

/** `64KiB`, `1 MiB`, `512B`, or a bare number of bytes → bytes. Binary units only. */
export function parseSize(v: unknown): number | undefined {
  if (typeof v === 'number') return Number.isInteger(v) && v >= 0 ? v : undefined;
  if (typeof v !== 'string') return undefined;
  const m = /^\s*(\d+(?:\.\d+)?)\s*(b|kib|mib|gib)\s*$/i.exec(v);
  if (!m) return undefined;
  const bytes = Number(m[1]) * SIZE_UNITS[m[2]!.toLowerCase()]!;
  return Number.isInteger(bytes) ? bytes : undefined;
}

export function formatSize(bytes: number): string | number {
  for (const [unit, size] of [['GiB', 1024 ** 3], ['MiB', 1024 ** 2], ['KiB', 1024]] as const) {
    if (bytes !== 0 && bytes % size === 0) return `${bytes / size}${unit}`;
  }
  return bytes;
}

/** A number written with units: `convert` reads the file syntax, `format` writes it back. */
function withUnits(
  what: string,
  convert: (v: unknown) => number | undefined,
  format: (n: number) => unknown,
): (def: number, min: number, max: number, doc: string) => Leaf<number> {
  return (def, min, max, doc) => {
    const expect = `${what.replace('{range}', `${format(min)}-${format(max)}`)}`;
    return leaf({
      default: def,
      doc,
      parse(v) {
        const n = convert(v);
        if (n === undefined || n < min || n > max) throw bad(expect, v);
        return n;
      },
      show: format,
    });
  };
}

/** Milliseconds in the object; a bare number in the file is seconds. */
const duration = withUnits('a duration {range} (a number of seconds, or a string like "30s", "5m", "1h")', parseDuration, formatDuration);
/** Bytes. */
const size = withUnits('a size {range} (a number of bytes, or a string like "64KiB", "1MiB")', parseSize, formatSize);

function secretMap(doc: string): Leaf<Record<string, string>> {
  return leaf({
    default: {},
    doc,
    secret: true,
    parse(v) {
      if (v === null) return {};
      if (typeof v !== 'object' || Array.isArray(v)) throw bad('a map of component domain to secret', v);
      const out: Record<string, string> = {};
      for (const [name, secret] of Object.entries(v as Record<string, unknown>)) {
        let prepared: string;
        try {
          prepared = prepareDomainpart(name);
        } catch (err) {
          throw new BadValue(`must be a valid component domain (${(err as Error).message})`, name);
        }
        if (typeof secret !== 'string' || secret.length === 0) {
          // Never echo what was written there: it may be a secret with the wrong type.
          throw new BadValue('must be a non-empty string (the shared secret)', name);
        }
        out[prepared] = secret;
      }
      return out;
    },
  });
}

/**
 * A list of URIs (XEP-0157: mailto:, xmpp:, https:, tel:, …). A bare address without a scheme
 * is refused with the fix spelled out: clients show these as links and need the scheme.
 */
function uriList(doc: string): Leaf<string[]> {
  return leaf({
    default: [],
    doc,
    parse(v) {
      if (v === null) return [];
      const list = Array.isArray(v) ? (v as unknown[]) : [v];
      return list.map((item) => {
        if (typeof item !== 'string' || !/^[a-z][a-z0-9+.-]*:\S+$/i.test(item)) {
          const hint = typeof item === 'string' && item.includes('@') && !item.includes(':') ? ` (write "xmpp:${item}" or "mailto:${item}")` : '';
          throw new BadValue(`must be a list of URIs such as "mailto:admin@example.org" or "xmpp:admin@example.org", got ${describe(item)}${hint}`);
        }
        return item;
      });
    },
  });
}

// ---- the options ---------------------------------------------------------------------------

const KiB = 1024;
const MiB = 1024 * 1024;
const SECOND = 1000;
const MINUTE = 60 * SECOND;
const HOUR = 60 * MINUTE;

function rate(rateDefault: number, burstDefault: number, unit: 'bytes' | 'stanzas'): Schema<RateLimit> {
  const max = unit === 'bytes' ? 1024 * MiB : 1_000_000;
  const mk = unit === 'bytes' ? (d: number, doc: string) => size(d, 0, max, doc) : (d: number, doc: string) => int(d, 0, max, doc);
  return {
    rate: mk(rateDefault, `${unit} per second sustained; 0 = no limit`),
    burst: mk(burstDefault, `${unit} accepted at once before the shaper slows reading`),
  };
}

export const SCHEMA: Schema<HermodConfig> = {
  domain: domain('localhost', 'XMPP domain served (the part after @ in user JIDs)'),
  dataDir: path('data', 'directory for the SQLite database and the generated certificate'),
  workers: int(0, 0, 256, 'shard worker threads; 0 = everything on the main thread'),
  registration: oneOf<'open' | 'closed'>('closed', ['open', 'closed'], 'in-band registration (XEP-0077)'),
  listen: {
    c2s: {
      host: host('127.0.0.1', 'address of the client listener (STARTTLS, RFC 6120)'),
      port: port(5222, 'client port'),
      backlog: int(4096, 1, 65535, 'listen(2) backlog of pending connections'),
    },
    directTls: {
      enabled: bool(true, 'Direct TLS listener (XEP-0368)'),
      host: host('127.0.0.1', 'address of the Direct TLS listener'),
      port: port(5223, 'Direct TLS port'),
    },
    websocket: {
      enabled: bool(false, 'XMPP over WebSocket listener (RFC 7395)'),
      host: host('127.0.0.1', 'address of the WebSocket listener'),
      port: port(5280, 'WebSocket port'),
      path: leaf<string>({
        default: '/xmpp-websocket',
        doc: 'HTTP path that accepts the upgrade',
        parse(v) {
          if (typeof v !== 'string' || !/^\/[\x21-\x7e]*$/.test(v)) throw bad('a URL path starting with "/"', v);
          return v;
        },
      }),
    },
    component: {
      host: host('127.0.0.1', 'address of the component listener (XEP-0114)'),
      port: port(5347, 'component port'),
    },
  },
  tls: {
    policy: oneOf<'required' | 'optional'>('required', ['required', 'optional'], 'required = no authentication before TLS'),
    cert: path(null, 'PEM certificate chain; null = self-signed one generated in data_dir'),
    key: path(null, 'PEM private key for cert'),
    plainLoginCache: int(10_000, 0, 10_000_000, 'accounts whose last PLAIN login is remembered so the next one skips PBKDF2 (docs/security.md); 0 = off'),
  },
  limits: {
    maxStanzaBytes: size(DEFAULT_LIMITS.maxStanzaBytes, 1 * KiB, 64 * MiB, 'largest stanza after authentication'),
    preauthMaxStanzaBytes: size(16 * KiB, 1 * KiB, 64 * MiB, 'largest stanza before authentication'),
    maxDepth: int(DEFAULT_LIMITS.maxDepth, 2, 1024, 'deepest element nesting inside a stanza'),
    maxAttributes: int(DEFAULT_LIMITS.maxAttributes, 1, 1024, 'most attributes on one element'),
    byteRate: rate(1 * MiB, 4 * MiB, 'bytes'),
    preauthByteRate: rate(16 * KiB, 64 * KiB, 'bytes'),
    stanzaRate: rate(1000, 2000, 'stanzas'),
    connectionsPerIp: int(0, 0, 10_000_000, 'simultaneous connections from one IP; 0 = no limit'),
    maxConnections: int(0, 0, 10_000_000, 'simultaneous connections in total; 0 = no limit'),
    authAttempts: int(3, 1, 10, 'SASL attempts per stream before it is closed (RFC 6120 §6.4.5)'),
    authFailureDelay: duration(1 * SECOND, 0, 1 * MINUTE, 'delay after a failed authentication, doubled per failure from one IP'),
    authFailureDelayMax: duration(30 * SECOND, 0, 1 * HOUR, 'ceiling of that delay'),
    authBanFailures: int(20, 0, 1_000_000, 'failed authentications from one IP within auth_ban_time before it is refused; 0 = never'),
    authBanTime: duration(10 * MINUTE, 1 * SECOND, 7 * 24 * HOUR, 'window of those failures: how long an address stays refused'),
    idleTimeout: duration(10 * MINUTE, 0, 7 * 24 * HOUR, 'close an authenticated stream silent this long; 0 = never'),
    preauthTimeout: duration(60 * SECOND, 1 * SECOND, 1 * HOUR, 'time allowed for TLS, SASL and bind'),
    outputQueueBytes: size(1 * MiB, 16 * KiB, 1024 * MiB, 'bytes queued for one slow reader before its stream is closed'),
  },
  streamManagement: {
    enabled: bool(true, 'XEP-0198 Stream Management'),
    resumeTimeout: duration(5 * MINUTE, 0, 24 * HOUR, 'how long a dropped session may be resumed; 0 = no resumption'),
    maxUnacked: int(5000, 1, 1_000_000, 'unacknowledged stanzas kept per session'),
    maxUnackedBytes: size(16 * MiB, 64 * KiB, 4096 * MiB, 'bytes of unacknowledged stanzas kept per session'),
  },
  offline: {
    maxPerUser: int(1000, 0, 10_000_000, 'offline messages stored per user; 0 = store none'),
  },
  mam: {
    default: oneOf<'always' | 'never' | 'roster'>(
      'roster',
      ['always', 'never', 'roster'],
      'XEP-0313 archiving of accounts that set no preferences: always, never, or roster (contacts in the roster)',
    ),
    maxAge: duration(0, 0, 3650 * 24 * HOUR, 'archived messages older than this are deleted; 0 = kept'),
    maxPerUser: int(100_000, 0, 100_000_000, 'newest archived messages kept per account; 0 = no cap'),
    purgeInterval: duration(1 * HOUR, 1 * MINUTE, 7 * 24 * HOUR, 'how often archive retention runs'),
  },
  muc: {
    enabled: bool(true, 'XEP-0045 multi-user chat service on its own subdomain'),
    domain: leaf<string | null>({
      default: null,
      doc: 'domain of the chat service; null = conference.<domain>',
      parse(v) {
        if (v === null) return null;
        return domain('', '').parse(v);
      },
    }),
    maxRooms: int(1000, 1, 10_000_000, 'rooms the service holds at once (creating more: resource-constraint)'),
    maxRoomsPerSession: int(100, 1, 100_000, 'rooms one session may be in at once (joining more: resource-constraint)'),
    maxOccupants: int(200, 1, 100_000, 'occupants per room, and the ceiling of a room\'s maxusers'),
    historySize: int(20, 0, 1000, 'groupchat messages kept per room for history on join (at most 64K characters; not stored on disk)'),
    maxMessageBytes: size(16 * KiB, 1 * KiB, 1 * MiB, 'largest groupchat or private message content, and occupant presence content'),
    archive: bool(true, 'XEP-0313 room archives: rooms may archive their messages (muc#roomconfig_enablearchiving); retention as mam.max_age / mam.max_per_user'),
    archiveDefault: bool(true, 'whether a new room archives until its owners turn it off'),
  },
  components: secretMap('component domain → shared secret (XEP-0114)'),
  contact: {
    abuse: uriList('where to report abuse from accounts of this server (XEP-0157 abuse-addresses)'),
    admin: uriList('the server administrators (XEP-0157 admin-addresses)'),
    feedback: uriList('feedback on the service (XEP-0157 feedback-addresses)'),
    sales: uriList('sales enquiries (XEP-0157 sales-addresses)'),
    security: uriList('security reports (XEP-0157 security-addresses)'),
    status: uriList('service status page or feed (XEP-0157 status-addresses)'),
    support: uriList('user support (XEP-0157 support-addresses)'),
  },
  upload: {
    enabled: bool(false, 'XEP-0363 HTTP File Upload (off by default: most clients insist on an https public_url)'),
    domain: leaf<string>({
      default: '',
      doc: 'JID of the upload service; "" = upload.<domain>',
      parse(v) {
        if (v === '' || v === null) return '';
        return domain('', '').parse(v);
      },
    }),
    http: {
      host: host('127.0.0.1', 'address of the upload HTTP service'),
      port: port(5280, 'upload HTTP port (not the WebSocket listener\'s when both are on)'),
    },
    publicUrl: leaf<string>({
      default: '',
      doc: 'base URL clients are told, e.g. https://files.example.org (a TLS proxy); "" = http://<host>:<port>',
      parse(v) {
        if (v === '' || v === null) return '';
        let url: URL | null = null;
        try {
          url = typeof v === 'string' ? new URL(v) : null;
        } catch {
          url = null;
        }
        if (!url || (url.protocol !== 'http:' && url.protocol !== 'https:') || url.search || url.hash || url.username) {
          throw bad('an http:// or https:// URL without query or credentials', v);
        }
        return url.href.replace(/\/+$/, '');
      },
    }),
    maxFileSize: size(10 * MiB, 1, 64 * 1024 * MiB, 'largest file a client may upload'),
    quota: size(1024 * MiB, 0, 1024 * 1024 * MiB, 'bytes of files one account may keep; 0 = no quota'),
    expireAfter: duration(30 * 24 * HOUR, 0, 3650 * 24 * HOUR, 'uploaded files older than this are deleted; 0 = kept'),
    dir: path(null, 'directory of uploaded files; null = <data_dir>/uploads'),
    rateLimit: {
      window: duration(1 * MINUTE, 1 * SECOND, 24 * HOUR, 'window of the upload rate limits below'),
      slotsPerAccount: int(30, 0, 1_000_000, 'slot requests one account may make per window; 0 = no limit'),
      slotsPerIp: int(120, 0, 1_000_000, 'slot requests from one IP address per window; 0 = no limit'),
      putsPerAccount: int(30, 0, 1_000_000, 'uploads (HTTP PUTs) into one account\'s slots per window; 0 = no limit'),
      putsPerIp: int(120, 0, 1_000_000, 'uploads (HTTP PUTs) from one IP address per window; 0 = no limit'),
    },
  },
  metrics: {
    enabled: bool(false, 'Prometheus endpoint GET /metrics'),
    host: host('127.0.0.1', 'address of the metrics endpoint (keep it private)'),
    port: port(9464, 'metrics port'),
  },
  log: {
    level: oneOf<LogLevel>('info', LOG_LEVELS, 'least severe level written'),
    format: oneOf<'json' | 'text'>('json', ['json', 'text'], 'json = one JSON object per line; text = one human-readable line'),
  },
};

// ---- walking the schema -------------------------------------------------------------------

export const toYamlKey = (prop: string): string => prop.replace(/[A-Z]/g, (c) => `_${c.toLowerCase()}`);

type AnySchema = { [key: string]: Leaf<unknown> | AnySchema };

/** Every leaf with its YAML path (`listen.c2s.port`) and the property path to reach it. */
export interface LeafEntry {
  yamlPath: string;
  props: string[];
  leaf: Leaf<unknown>;
}

export function leaves(schema: AnySchema = SCHEMA as unknown as AnySchema, props: string[] = []): LeafEntry[] {
  const out: LeafEntry[] = [];
  for (const [prop, node] of Object.entries(schema)) {
    const here = [...props, prop];
    if (isLeaf(node)) out.push({ yamlPath: here.map(toYamlKey).join('.'), props: here, leaf: node });
    else out.push(...leaves(node, here));
  }
  return out;
}

const LEAVES = leaves();
const BY_YAML_PATH = new Map(LEAVES.map((e) => [e.yamlPath, e]));

export function leafAt(yamlPath: string): LeafEntry | undefined {
  return BY_YAML_PATH.get(yamlPath);
}

export function allYamlPaths(): string[] {
  return LEAVES.map((e) => e.yamlPath);
}

/** A fresh copy of the defaults (callers may mutate it). */
export function defaultConfig(): HermodConfig {
  const out: Record<string, unknown> = {};
  for (const { props, leaf: l } of LEAVES) setIn(out, props, structuredClone(l.default));
  return out as unknown as HermodConfig;
}

export function getIn(obj: unknown, props: readonly string[]): unknown {
  let cur = obj;
  for (const p of props) {
    if (typeof cur !== 'object' || cur === null) return undefined;
    cur = (cur as Record<string, unknown>)[p];
  }
  return cur;
}

export function setIn(obj: Record<string, unknown>, props: readonly string[], value: unknown): void {
  let cur = obj;
  for (const p of props.slice(0, -1)) {
    if (typeof cur[p] !== 'object' || cur[p] === null) cur[p] = {};
    cur = cur[p] as Record<string, unknown>;
  }
  cur[props[props.length - 1]!] = value;
}

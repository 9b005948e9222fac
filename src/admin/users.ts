/**
 * Account administration from the shell: `hermod adduser | deluser | passwd | users`.
 *
 * They open the same `<data>/hermod.sqlite` as the server (WAL mode lets them write while it
 * runs; nothing is cached in the server that would go stale). The data directory and the default
 * domain come from, in rising precedence: built-in defaults (./data, localhost), the
 * configuration file (--config or $HERMOD_CONFIG), then --data and --domain.
 *
 * Exit status (sysexits.h where it has a name): 0 done, 1 refused (user exists, no such user,
 * passwords differ), 64 bad usage (unknown option, malformed JID, unacceptable password),
 * 78 configuration (unusable data directory or configuration file).
 */
import { ConfigError } from '../errors.js';
import { Jid } from '../jid.js';
import { loadConfig, resolveConfigPath } from '../config/file.js';
import { openStorage } from '../storage/index.js';
import { removeAccountUploads } from '../upload/index.js';
import type { HermodConfig } from '../config/schema.js';
import { AccountError, type Storage } from '../storage/types.js';
import { adminRequest, adminSocketPath, serverNotRunning, type AdminReply, type AdminRequest, type SessionInfo } from './channel.js';

export const EX_OK = 0;
export const EX_FAILURE = 1;
export const EX_USAGE = 64;
export const EX_CONFIG = 78;

export interface AdminIo {
  out(text: string): void;
  err(text: string): void;
  /** Ask for a password (no echo on a terminal; first line of stdin otherwise); null = none given. */
  readPassword(prompt: string): Promise<string | null>;
  /** A person is typing: ask twice and compare. */
  interactive: boolean;
  env?: NodeJS.ProcessEnv;
}

class UsageError extends Error {}
/** A refusal that is not the user's syntax: exit 1. */
class Refusal extends Error {}

interface Parsed {
  positional: string[];
  dataDir?: string;
  domain?: string;
  config?: string;
  /** kick: the text of the stream error. */
  reason?: string;
  /** sessions: one JSON object per line instead of the table. */
  json?: boolean;
  help: boolean;
}

const COMMON_OPTIONS = `Options:
  --data DIR      data directory holding hermod.sqlite (default: from the configuration, else ./data)
  --domain D      domain for names given without @DOMAIN (default: from the configuration, else localhost)
  --config FILE   configuration file (default: $HERMOD_CONFIG, else none)
  -h, --help      this text

Exit status: 0 done, 1 refused (exists / not found), 64 usage, 78 configuration.`;

const HELP: Record<string, string> = {
  adduser: `Usage: hermod adduser USER[@DOMAIN] [PASSWORD]

Creates an account. Without PASSWORD, asks for it twice on a terminal, or reads the first
line of standard input (echo secret | hermod adduser alice@example.org). Refuses an existing user.`,
  deluser: `Usage: hermod deluser USER[@DOMAIN]

Deletes an account with its roster, pending subscription requests, offline messages and
blocklist. When a server runs on the data directory, the account's live sessions are closed
(<not-authorized/>).`,
  passwd: `Usage: hermod passwd USER[@DOMAIN] [PASSWORD]

Sets a new password; asks for it like adduser when not given. When a server runs on the data
directory, the account's live sessions are closed (<not-authorized/>) so they log in again.`,
  users: `Usage: hermod users [--domain D]

Lists accounts (bare JIDs, one per line, in order), all domains unless --domain is given.`,
  sessions: `Usage: hermod sessions [--json]

Lists the live sessions of the server running on the data directory (through <data>/hermod.sock):
JID, remote address, connected since, transport, TLS, stream management, shard.`,
  kick: `Usage: hermod kick USER[@DOMAIN][/RESOURCE] [--reason TEXT]

Closes the live sessions of an account (or the one resource) with the stream error
<policy-violation/> and TEXT. Exit 1 when no such session is live or no server runs.`,
};

function parseArgs(argv: string[], maxPositional: number): Parsed {
  const parsed: Parsed = { positional: [], help: false };
  for (let i = 0; i < argv.length; i++) {
    const arg = argv[i]!;
    const eq = arg.startsWith('--') ? arg.indexOf('=') : -1;
    const flag = eq === -1 ? arg : arg.slice(0, eq);
    const value = (): string => {
      const v = eq === -1 ? argv[++i] : arg.slice(eq + 1);
      if (v === undefined || v === '') throw new UsageError(`${flag} needs a value`);
      return v;
    };
    if (flag === '-h' || flag === '--help') parsed.help = true;
    else if (flag === '--data' || flag === '--data-dir') parsed.dataDir = value();
    else if (flag === '--domain') parsed.domain = value();
    else if (flag === '--config' || flag === '-c') parsed.config = value();
    else if (flag === '--reason') parsed.reason = value();
    else if (flag === '--json') parsed.json = true;
    else if (flag === '--') {
      parsed.positional.push(...argv.slice(i + 1));
      break;
    }
    else if (flag.startsWith('-') && flag.length > 1) throw new UsageError(`unknown option ${flag}`);
    else parsed.positional.push(arg);
  }
  if (parsed.positional.length > maxPositional) {
    throw new UsageError(`unexpected argument '${parsed.positional[maxPositional]}'`);
  }
  return parsed;
}

/** Data directory and default domain: defaults < configuration file < flags. */
function settings(parsed: Parsed, env: NodeJS.ProcessEnv): { dataDir: string; domain: string; config: HermodConfig } {
  const file = resolveConfigPath(parsed.config, env);
  const overrides: { dataDir?: string; domain?: string } = {};
  if (parsed.dataDir !== undefined) overrides.dataDir = parsed.dataDir;
  if (parsed.domain !== undefined) overrides.domain = parsed.domain;
  const { config } = loadConfig({ file, overrides, checkFiles: false });
  return { dataDir: config.dataDir, domain: config.domain, config };
}

/** USER or USER@DOMAIN → prepared bare JID; a domain given both ways must agree. */
function accountArg(text: string | undefined, parsed: Parsed, defaultDomain: string): string {
  if (text === undefined) throw new UsageError('which user? (USER@DOMAIN)');
  const jid = Jid.tryParse(text.includes('@') ? text : `${text}@${defaultDomain}`);
  if (!jid || jid.local === null || jid.resource !== null) {
    throw new UsageError(`'${text}' is not a valid user name (USER@DOMAIN, RFC 7622)`);
  }
  if (parsed.domain !== undefined && text.includes('@') && Jid.tryParse(parsed.domain)?.domain !== jid.domain) {
    throw new UsageError(`${jid.bare} is not in --domain ${parsed.domain}`);
  }
  return jid.bare;
}

async function passwordArg(given: string | undefined, io: AdminIo, account: string): Promise<string> {
  if (given !== undefined) return given;
  const password = await io.readPassword(`Password for ${account}: `);
  if (password === null) throw new Refusal('no password given');
  if (io.interactive && (await io.readPassword('Repeat: ')) !== password) throw new Refusal('the passwords differ');
  return password;
}

/** Usage (64) and configuration (78) failures, reported alike by every command; null for others. */
function usageOrConfig(command: string, err: unknown, io: AdminIo): number | null {
  if (err instanceof UsageError) {
    io.err(`hermod ${command}: ${err.message}\n\n${HELP[command]}\n`);
    return EX_USAGE;
  }
  if (err instanceof ConfigError) {
    io.err(`hermod ${command}: ${err.message}\n`);
    return EX_CONFIG;
  }
  return null;
}

/** Run one command body with the shared option handling, storage lifecycle and exit codes. */
async function withStorage(
  command: string,
  argv: string[],
  maxPositional: number,
  io: AdminIo,
  body: (storage: Storage, parsed: Parsed, domain: string, dataDir: string, config: HermodConfig) => Promise<void> | void,
): Promise<number> {
  let storage: Storage | null = null;
  try {
    const parsed = parseArgs(argv, maxPositional);
    if (parsed.help) {
      io.out(`${HELP[command]}\n\n${COMMON_OPTIONS}\n`);
      return EX_OK;
    }
    const { dataDir, domain, config } = settings(parsed, io.env ?? process.env);
    storage = openStorage({ dataDir });
    await body(storage, parsed, domain, dataDir, config);
    return EX_OK;
  } catch (err) {
    const code = usageOrConfig(command, err, io);
    if (code !== null) return code;
    if (err instanceof AccountError) {
      io.err(`hermod ${command}: ${err.message}\n`);
      return err.reason === 'exists' || err.reason === 'not-found' ? EX_FAILURE : EX_USAGE;
    }
    if (err instanceof Refusal) {
      io.err(`hermod ${command}: ${err.message}\n`);
      return EX_FAILURE;
    }
    throw err;
  } finally {
    storage?.close();
  }
}

export function runAddUser(argv: string[], io: AdminIo = stdio): Promise<number> {
  return withStorage('adduser', argv, 2, io, async (storage, parsed, domain) => {
    const account = accountArg(parsed.positional[0], parsed, domain);
    // Refuse before asking for a password nobody will use.
    if (storage.users.exists(account)) throw new AccountError('exists', `user ${account} already exists`);
    const password = await passwordArg(parsed.positional[1], io, account);
    storage.users.create(account, password);
    if (!account.endsWith(`@${domain}`)) {
      io.err(`note: ${account} is outside the configured domain ${domain}; that server will not serve it\n`);
    }
    io.out(`created ${account}\n`);
  });
}

export function runDelUser(argv: string[], io: AdminIo = stdio): Promise<number> {
  return withStorage('deluser', argv, 1, io, async (storage, parsed, domain, dataDir, config) => {
    const account = accountArg(parsed.positional[0], parsed, domain);
    if (!storage.users.delete(account)) throw new AccountError('not-found', `no such user ${account}`);
    io.out(`deleted ${account}\n`);
    // XEP-0363: the files it uploaded go too (their URLs stop working).
    if (removeAccountUploads(config, account)) io.out(`deleted the files ${account} uploaded\n`);
    // RFC 6120 §4.9.3.12 (as XEP-0077 removal does in-band): its streams are no longer authorized.
    await endSessions(dataDir, account, 'account deleted by the server administrator', io, true);
  });
}

export function runPasswd(argv: string[], io: AdminIo = stdio): Promise<number> {
  return withStorage('passwd', argv, 2, io, async (storage, parsed, domain, dataDir) => {
    const account = accountArg(parsed.positional[0], parsed, domain);
    if (!storage.users.exists(account)) throw new AccountError('not-found', `no such user ${account}`);
    const password = await passwordArg(parsed.positional[1], io, account);
    if (!storage.users.setPassword(account, password)) throw new AccountError('not-found', `no such user ${account}`);
    io.out(`password changed for ${account}\n`);
    // Sessions authenticated with the old password must log in again.
    await endSessions(dataDir, account, 'password changed by the server administrator', io);
  });
}

export function runUsers(argv: string[], io: AdminIo = stdio): Promise<number> {
  return withStorage('users', argv, 0, io, (storage, parsed) => {
    // Only an explicit --domain filters: the configured domain is not the only one stored.
    const domain = parsed.domain === undefined ? undefined : Jid.tryParse(parsed.domain)?.domain;
    if (parsed.domain !== undefined && domain === undefined) throw new UsageError(`'${parsed.domain}' is not a domain`);
    let after: string | undefined;
    for (;;) {
      const page = storage.users.list({ domain, after, limit: 1000 });
      if (page.length === 0) break;
      io.out(page.map((u) => `${u}\n`).join(''));
      after = page[page.length - 1];
    }
  });
}

// ---- live sessions (the running server's admin socket) -----------------------------------------

/** Close an account's live sessions if a server runs on this data directory; silent when none runs. */
async function endSessions(dataDir: string, account: string, text: string, io: AdminIo, deleted = false): Promise<void> {
  let reply: AdminReply;
  try {
    reply = await adminRequest(dataDir, { cmd: 'kick', jid: account, condition: 'not-authorized', text, deleted });
  } catch (err) {
    if (serverNotRunning(err)) return;
    throw new Refusal(`the change is stored, but the running server could not be told: ${(err as Error).message}`);
  }
  if (!reply.ok) throw new Refusal(`the change is stored, but the server refused to close sessions: ${reply.message}`);
  if ('kicked' in reply && reply.kicked > 0) io.out(`closed ${reply.kicked} live session(s) of ${account}\n`);
}

/** Options, data directory, one request to the running server, exit codes. */
async function withServer(
  command: 'sessions' | 'kick',
  argv: string[],
  maxPositional: number,
  io: AdminIo,
  build: (parsed: Parsed, domain: string) => AdminRequest,
  show: (reply: AdminReply & { ok: true }, parsed: Parsed) => number,
): Promise<number> {
  let dataDir = '.';
  try {
    const parsed = parseArgs(argv, maxPositional);
    if (parsed.help) {
      io.out(`${HELP[command]}\n\n${COMMON_OPTIONS}\n`);
      return EX_OK;
    }
    const found = settings(parsed, io.env ?? process.env);
    dataDir = found.dataDir;
    const reply = await adminRequest(dataDir, build(parsed, found.domain));
    if (!reply.ok) {
      io.err(`hermod ${command}: ${reply.message}\n`);
      return reply.error === 'bad-request' ? EX_USAGE : EX_FAILURE;
    }
    return show(reply, parsed);
  } catch (err) {
    const code = usageOrConfig(command, err, io);
    if (code !== null) return code;
    if (serverNotRunning(err)) {
      io.err(`hermod ${command}: no server is running with data directory ${dataDir} (nothing answers on ${adminSocketPath(dataDir)})\n`);
      return EX_FAILURE;
    }
    throw err;
  }
}

function sessionTable(rows: SessionInfo[]): string {
  const head = ['JID', 'IP', 'SINCE', 'TRANSPORT', 'TLS', 'SM', 'SHARD'];
  const cells = rows.map((r) => [r.jid, r.ip, r.since, r.transport, r.tls ? 'yes' : 'no', r.sm ? 'yes' : 'no', r.shard]);
  const widths = head.map((h, i) => Math.max(h.length, ...cells.map((c) => c[i]!.length)));
  return [head, ...cells].map((c) => c.map((v, i) => v.padEnd(widths[i]!)).join('  ').trimEnd()).join('\n') + '\n';
}

export function runSessions(argv: string[], io: AdminIo = stdio): Promise<number> {
  return withServer(
    'sessions',
    argv,
    0,
    io,
    () => ({ cmd: 'sessions' }),
    (reply, parsed) => {
      const rows = 'sessions' in reply ? reply.sessions : [];
      if (parsed.json) io.out(rows.map((r) => `${JSON.stringify(r)}\n`).join(''));
      else io.out(rows.length === 0 ? 'no live sessions\n' : sessionTable(rows));
      return EX_OK;
    },
  );
}

export function runKick(argv: string[], io: AdminIo = stdio): Promise<number> {
  let target = '';
  return withServer(
    'kick',
    argv,
    1,
    io,
    (parsed, domain) => {
      const text = parsed.positional[0];
      if (text === undefined) throw new UsageError('whom? (USER@DOMAIN[/RESOURCE])');
      const slash = text.indexOf('/');
      const user = slash < 0 ? text : text.slice(0, slash);
      const jid = Jid.tryParse(user.includes('@') ? text : `${user}@${domain}${slash < 0 ? '' : text.slice(slash)}`);
      if (!jid || jid.local === null) throw new UsageError(`'${text}' is not USER@DOMAIN[/RESOURCE] (RFC 7622)`);
      target = jid.full;
      return { cmd: 'kick', jid: jid.full, condition: 'policy-violation', text: parsed.reason };
    },
    (reply) => {
      const n = 'kicked' in reply ? reply.kicked : 0;
      if (n === 0) {
        io.err(`hermod kick: no live session of ${target}\n`);
        return EX_FAILURE;
      }
      io.out(`closed ${n} session(s) of ${target}\n`);
      return EX_OK;
    },
  );
}

// ---- terminal I/O ------------------------------------------------------------------------------

/** Read one line from a terminal without echoing it. Null on Ctrl-C / Ctrl-D. */
function readHidden(prompt: string): Promise<string | null> {
  const input = process.stdin;
  process.stderr.write(prompt);
  return new Promise((resolve) => {
    let line = '';
    input.setRawMode(true);
    input.resume();
    input.setEncoding('utf8');
    const done = (value: string | null) => {
      input.setRawMode(false);
      input.pause();
      input.off('data', onData);
      process.stderr.write('\n');
      resolve(value);
    };
    const onData = (chunk: string) => {
      for (const ch of chunk) {
        if (ch === '\r' || ch === '\n') return done(line);
        if (ch === '\u0003' || (ch === '\u0004' && line === '')) return done(null);
        if (ch === '\u007f' || ch === '\b') line = line.slice(0, -1);
        else if (ch >= ' ') line += ch;
      }
    };
    input.on('data', onData);
  });
}

/** The first line of standard input (for scripts: `echo pw | hermod adduser …`). */
async function readFirstLine(): Promise<string | null> {
  let text = '';
  for await (const chunk of process.stdin) {
    text += String(chunk);
    if (text.includes('\n')) break;
  }
  if (text === '') return null;
  return text.split(/\r?\n/, 1)[0]!;
}

const stdio: AdminIo = {
  out: (t) => process.stdout.write(t),
  err: (t) => process.stderr.write(t),
  readPassword: (prompt) => (process.stdin.isTTY ? readHidden(prompt) : readFirstLine()),
  get interactive() {
    return Boolean(process.stdin.isTTY);
  },
};

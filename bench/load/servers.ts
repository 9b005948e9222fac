/**
 * Private instances of the servers under comparison, each started on loopback with the same
 * settings: plain-TCP c2s on a free port, domain 'localhost', open in-band registration, no
 * shaper or rate limit, a listen backlog of 4096 (the kernel's somaxconn here; both default to 128,
 * which drops SYNs in a login storm and turn them into 1-3 s retries),
 * its own temporary config and spool, and torn down with its directory.
 * Nothing is installed here: a server whose binary is absent is reported as unavailable.
 */
import { spawn, spawnSync, type ChildProcess } from 'node:child_process';
import { existsSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import net from 'node:net';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';

export interface RunningServer {
  name: string;
  port: number;
  /** The process whose RSS and CPU are measured. */
  pid: number;
  stop(): Promise<void>;
  /** Last lines of the server's own log, for failure messages. */
  logTail(): string;
}

export interface ServerKind {
  name: string;
  /** Why it cannot run here, or null when it can. */
  unavailable(): string | null;
  start(port: number): Promise<RunningServer>;
}

export function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const s = net.createServer();
    s.once('error', reject);
    s.listen(0, '127.0.0.1', () => {
      const { port } = s.address() as net.AddressInfo;
      s.close(() => resolve(port));
    });
  });
}

function which(cmd: string): string | null {
  const r = spawnSync('sh', ['-c', `command -v ${cmd}`], { encoding: 'utf8' });
  return r.status === 0 ? r.stdout.trim() : null;
}

/** Resolves once something accepts TCP connections on the port, or rejects after timeoutMs. */
export function waitForPort(port: number, timeoutMs: number, child?: ChildProcess): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  return new Promise((resolve, reject) => {
    const attempt = (): void => {
      if (child && child.exitCode !== null) return reject(new Error(`exited with code ${child.exitCode} before listening`));
      const s = net.connect({ host: '127.0.0.1', port });
      s.once('connect', () => {
        s.destroy();
        resolve();
      });
      s.once('error', () => {
        s.destroy();
        if (Date.now() > deadline) reject(new Error(`nothing listening on ${port} after ${timeoutMs} ms`));
        else setTimeout(attempt, 200);
      });
    };
    attempt();
  });
}

function launch(name: string, cmd: string, args: string[], env: NodeJS.ProcessEnv, dir: string, port: number, startMs: number): Promise<RunningServer> {
  const log: string[] = [];
  const child = spawn(cmd, args, { env, cwd: dir, stdio: ['ignore', 'pipe', 'pipe'], detached: true });
  const keep = (b: Buffer): void => {
    log.push(...b.toString().split('\n'));
    if (log.length > 200) log.splice(0, log.length - 200);
  };
  child.stdout!.on('data', keep);
  child.stderr!.on('data', keep);
  const server: RunningServer = {
    name,
    port,
    pid: child.pid!,
    logTail: () => log.slice(-20).join('\n'),
    stop: () =>
      new Promise((resolve) => {
        let hard: NodeJS.Timeout | undefined;
        const done = (): void => {
          clearTimeout(hard);
          rmSync(dir, { recursive: true, force: true });
          resolve();
        };
        if (child.exitCode !== null || child.signalCode !== null) return done();
        child.once('exit', done);
        // The whole process group: Erlang and Prosody may have helpers of their own.
        hard = setTimeout(() => {
          try {
            process.kill(-child.pid!, 'SIGKILL');
          } catch {
            /* already gone */
          }
        }, 5000);
        try {
          process.kill(-child.pid!, 'SIGTERM');
        } catch {
          done();
        }
      }),
  };
  return waitForPort(port, startMs, child).then(
    () => server,
    async (e: Error) => {
      await server.stop();
      throw new Error(`${name}: ${e.message}\n${log.slice(-20).join('\n')}`);
    },
  );
}

export const prosody: ServerKind = {
  name: 'prosody',
  unavailable: () => (which('prosody') ? null : 'prosody is not installed (apt-get install prosody)'),
  start(port) {
    const dir = mkdtempSync(join(tmpdir(), 'hb-prosody-'));
    const cfg = join(dir, 'prosody.cfg.lua');
    writeFileSync(
      cfg,
      `-- written by hermod bench: a private, loopback-only instance
run_as_root = true
pidfile = "${dir}/prosody.pid"
data_path = "${dir}"
plugin_paths = {}
network_backend = "epoll"
modules_enabled = { "roster"; "saslauth"; "disco"; "ping"; "register"; }
modules_disabled = { "s2s"; }
c2s_ports = { ${port} }
c2s_interfaces = { "127.0.0.1" }
network_settings = { tcp_backlog = 4096 }
s2s_ports = {}
component_ports = {}
c2s_require_encryption = false
allow_unencrypted_plain_auth = true
allow_registration = true
min_seconds_between_registrations = 0
registration_throttle_max = 1000000000
authentication = "internal_plain"
storage = "internal"
log = { { levels = { min = "error" }, to = "file", filename = "${dir}/prosody.log" } }
VirtualHost "localhost"
`,
    );
    return launch('prosody', 'prosody', ['-F', '--config', cfg], { ...process.env }, dir, port, 20_000);
  },
};

/**
 * ejabberd's password storage: its default 'plain' (then every SCRAM login runs PBKDF2 on the
 * server, in Erlang), or, with HERMOD_BENCH_EJABBERD_PASSWORDS=scram, SCRAM-SHA-256 keys stored
 * the way Hermod stores them (then SCRAM logins need no PBKDF2 on either server).
 */
function ejabberdPasswords(): string {
  const mode = process.env.HERMOD_BENCH_EJABBERD_PASSWORDS ?? 'plain';
  if (mode === 'scram') return 'auth_password_format: scram\nauth_scram_hash: sha256';
  if (mode !== 'plain') throw new Error(`HERMOD_BENCH_EJABBERD_PASSWORDS is plain or scram, not '${mode}'`);
  return 'auth_password_format: plain';
}

export const ejabberd: ServerKind = {
  name: 'ejabberd',
  unavailable: () => (existsSync('/usr/sbin/ejabberdctl') && which('erl') ? null : 'ejabberd is not installed (apt-get install ejabberd)'),
  start(port) {
    const dir = mkdtempSync(join(tmpdir(), 'hb-ejabberd-'));
    const cfg = join(dir, 'ejabberd.yml');
    writeFileSync(
      cfg,
      `# written by hermod bench: a private, loopback-only instance
hosts: [localhost]
loglevel: error
listen:
  -
    port: ${port}
    ip: "127.0.0.1"
    module: ejabberd_c2s
    shaper: none
    access: all
    starttls: false
    max_stanza_size: 262144
    backlog: 4096
shaper: {}
shaper_rules: {}
acl:
  local:
    user_regexp: ""
access_rules:
  register:
    allow: all
  local:
    allow: local
auth_method: internal
${ejabberdPasswords()}
registration_timeout: infinity
max_fsm_queue: 100000
modules:
  mod_disco: {}
  mod_ping: {}
  mod_roster: {}
  mod_register:
    access: register
    ip_access: all
`,
    );
    writeFileSync(join(dir, 'inetrc'), '{lookup,["file","native"]}.\n{host,{127,0,0,1}, ["localhost"]}.\n');
    // erl directly (ejabberdctl would su to the ejabberd user); the same VM flags it passes.
    const env = {
      ...process.env,
      HOME: dir,
      ERL_LIBS: '/usr/lib/x86_64-linux-gnu',
      EJABBERD_CONFIG_PATH: cfg,
      EJABBERD_LOG_PATH: join(dir, 'ejabberd.log'),
      ERL_INETRC: join(dir, 'inetrc'),
      ERL_MAX_PORTS: '32000',
      ERL_MAX_ETS_TABLES: '1400',
      ERL_CRASH_DUMP: '/dev/null',
    };
    const args = ['-noinput', '+K', 'true', '+P', '250000', '-mnesia', 'dir', `"${dir}/spool"`, '-s', 'ejabberd'];
    return launch('ejabberd', 'erl', args, env, dir, port, 60_000);
  },
};

/** The repository root: the nearest folder above this file with a package.json (source or dist). */
function findRoot(): string {
  let dir = dirname(fileURLToPath(import.meta.url));
  while (!existsSync(join(dir, 'package.json')) && dirname(dir) !== dir) dir = dirname(dir);
  return dir;
}
const repoRoot = findRoot();

export const hermod: ServerKind = {
  name: 'hermod',
  unavailable: () => {
    const cli = join(repoRoot, 'dist/src/cli.js');
    if (!existsSync(cli)) return 'dist/src/cli.js missing (npm run build)';
    if (!existsSync(join(repoRoot, 'dist/src/server.js'))) return "Hermod's server is not built yet (dist/src/server.js missing)";
    return null;
  },
  start(port) {
    const dir = mkdtempSync(join(tmpdir(), 'hb-hermod-'));
    // Direct TLS (XEP-0368) off: the comparison is over plain c2s, and a fixed 5223 may be taken.
    const args = [
      join(repoRoot, 'dist/src/cli.js'),
      'serve',
      '--port',
      String(port),
      '--tls-port',
      'off',
      '--data',
      dir,
      '--tls',
      'optional',
      '--registration',
      'open',
      '--backlog',
      '4096',
      // Equal settings: the ejabberd and Prosody instances above run without a message archive
      // (no mod_mam), so Hermod's XEP-0313 archive (default `always`) is off here too.
      '--set',
      'mam.default=never',
      ...(process.env.HERMOD_BENCH_WORKERS ? ['--workers', process.env.HERMOD_BENCH_WORKERS] : []),
    ];
    return launch('hermod', process.execPath, args, { ...process.env }, dir, port, 20_000);
  },
};

export const SERVERS: ServerKind[] = [ejabberd, prosody, hermod];

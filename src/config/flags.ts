/**
 * The command-line flags of `hermod serve`: each dedicated flag is a shorthand for one or more
 * options of the configuration schema (src/config/schema.ts), applied over the YAML file with
 * the file's own parsing rules, so a flag and a file key can never disagree about what a value
 * means. Precedence: defaults < --config FILE (or $HERMOD_CONFIG) < flags and --set.
 */
import { ConfigError } from '../errors.js';
import { applyOverride, loadConfig, resolveConfigPath, type LoadedConfig, type Overrides } from './file.js';

interface Flag {
  /** YAML paths the value is written to. */
  paths: string[];
  help: string;
  /** Value rewriting before the schema sees it (e.g. `off`). */
  map?: (value: string) => [string, string][];
}

export const SERVE_FLAGS: Record<string, Flag> = {
  '--host': { paths: ['listen.c2s.host', 'listen.direct_tls.host'], help: 'address the client listeners bind to (default 127.0.0.1)' },
  '--port': { paths: ['listen.c2s.port'], help: 'client port, STARTTLS (default 5222; 0 = any free port)' },
  '--tls-port': {
    paths: ['listen.direct_tls.port'],
    help: 'Direct TLS port, XEP-0368 (default 5223; "off" disables it)',
    map: (v) => (v === 'off' ? [['listen.direct_tls.enabled', 'false']] : [['listen.direct_tls.port', v]]),
  },
  '--domain': { paths: ['domain'], help: 'XMPP domain served (default localhost)' },
  '--data': { paths: ['data_dir'], help: 'data directory: SQLite database, generated certificate (default ./data)' },
  '--registration': { paths: ['registration'], help: 'in-band registration, XEP-0077: open|closed (default closed)' },
  '--workers': { paths: ['workers'], help: 'shard worker threads; 0 = all on the main thread (default 0)' },
  '--tls': { paths: ['tls.policy'], help: 'required|optional: whether SASL may run before TLS (default required)' },
  '--cert': { paths: ['tls.cert'], help: 'PEM certificate chain (default: self-signed, generated in the data directory)' },
  '--key': { paths: ['tls.key'], help: 'PEM private key of --cert' },
  '--backlog': { paths: ['listen.c2s.backlog'], help: 'listen(2) backlog of pending connections' },
  '--component-port': { paths: ['listen.component.port'], help: 'XEP-0114 component port (default 5347; used when `components` names one)' },
};

export function serveUsage(): string {
  const rows = Object.entries(SERVE_FLAGS).map(([flag, f]) => `  ${(flag + ' VALUE').padEnd(24)}${f.help}`);
  return [
    'Usage: hermod serve [options]',
    '',
    ...rows,
    `  ${'--config FILE'.padEnd(24)}YAML configuration file (default $HERMOD_CONFIG; flags override it)`,
    `  ${'--set KEY=VALUE'.padEnd(24)}any configuration option by its YAML path, e.g. --set limits.idle_timeout=5m`,
    '',
    'Exit status: 0 after a clean shutdown, 64 bad usage, 78 bad configuration, 1 cannot start.',
  ].join('\n');
}

/** Thrown for flags that are not options at all (usage errors, exit 64). */
export class UsageError extends ConfigError {}

export interface ServeArgs {
  help: boolean;
  loaded: LoadedConfig | null;
}

/**
 * Parse `hermod serve` arguments and load the effective configuration. Throws UsageError for an
 * unknown flag or a missing value, ConfigError (naming the flag or key) for a bad value.
 */
export function parseServeArgs(argv: string[], env: NodeJS.ProcessEnv = process.env): ServeArgs {
  const overrides: Overrides = {};
  let file: string | undefined;
  for (let i = 0; i < argv.length; i++) {
    const arg = argv[i]!;
    if (arg === '-h' || arg === '--help') return { help: true, loaded: null };
    const eq = arg.startsWith('--') ? arg.indexOf('=') : -1;
    const flag = eq > 0 ? arg.slice(0, eq) : arg;
    const known = flag === '--config' || flag === '-c' || flag === '--set' || flag in SERVE_FLAGS;
    if (!known) throw new UsageError(flag.startsWith('-') ? 'unknown option' : 'unexpected argument', flag);
    const value = eq > 0 ? arg.slice(eq + 1) : argv[++i];
    if (value === undefined || value === '') throw new UsageError('missing value', flag);
    if (flag === '--config' || flag === '-c') {
      file = value;
    } else if (flag === '--set') {
      const at = value.indexOf('=');
      if (at <= 0) throw new UsageError(`expected KEY=VALUE, got '${value}'`, '--set');
      applyOverride(overrides, value.slice(0, at), value.slice(at + 1));
    } else {
      const spec = SERVE_FLAGS[flag]!;
      const pairs = spec.map ? spec.map(value) : spec.paths.map((p): [string, string] => [p, value]);
      for (const [path, text] of pairs) {
        try {
          applyOverride(overrides, path, text);
        } catch (err) {
          // Name the flag the operator typed, not the schema path behind it.
          if (err instanceof ConfigError) throw new ConfigError(err.message.replace(`${path}: `, ''), flag);
          throw err;
        }
      }
    }
  }
  return { help: false, loaded: loadConfig({ file: resolveConfigPath(file, env), overrides }) };
}

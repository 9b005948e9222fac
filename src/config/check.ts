/**
 * `hermod check-config [--config FILE] [--set key.path=value ...]`: validate the configuration
 * the way `hermod serve` would, print the effective result (secrets redacted) and exit 0, or
 * print every problem and exit 78 (EX_CONFIG, sysexits.h) so scripts and systemd's
 * ExecStartPre can tell a bad file from other failures.
 */
import { ConfigError } from '../errors.js';
import { applyOverride, formatIssue, loadConfig, renderConfig, resolveConfigPath, type Overrides } from './file.js';

export const EX_OK = 0;
export const EX_USAGE = 64;
export const EX_CONFIG = 78;

const HELP = `Usage: hermod check-config [--config FILE] [--set key.path=value ...] [--quiet]

Validates the configuration (defaults < FILE < --set) and prints the effective
configuration with secrets redacted. Exit status 0 when valid, 78 when not.

  --config FILE   YAML configuration file (default: $HERMOD_CONFIG, else none)
  --set K=V       override one option, e.g. --set listen.c2s.port=5223
  --quiet         print nothing when the configuration is valid
`;

export interface Io {
  out: (text: string) => void;
  err: (text: string) => void;
  env?: NodeJS.ProcessEnv;
}

const stdio: Io = { out: (t) => process.stdout.write(t), err: (t) => process.stderr.write(t) };

export async function runCheckConfig(argv: string[], io: Io = stdio): Promise<number> {
  let file: string | undefined;
  let quiet = false;
  const overrides: Overrides = {};
  try {
    for (let i = 0; i < argv.length; i++) {
      const arg = argv[i]!;
      const [flag, inline] = arg.startsWith('--') && arg.includes('=') ? [arg.slice(0, arg.indexOf('=')), arg.slice(arg.indexOf('=') + 1)] : [arg, undefined];
      const value = () => {
        const v = inline ?? argv[++i];
        if (v === undefined) throw new UsageError(`${flag} needs a value`);
        return v;
      };
      if (flag === '-h' || flag === '--help') {
        io.out(HELP);
        return EX_OK;
      } else if (flag === '--config' || flag === '-c') {
        file = value();
      } else if (flag === '--quiet' || flag === '-q') {
        quiet = true;
      } else if (flag === '--set') {
        const pair = value();
        const eq = pair.indexOf('=');
        if (eq <= 0) throw new UsageError(`--set wants key.path=value, got "${pair}"`);
        applyOverride(overrides, pair.slice(0, eq), pair.slice(eq + 1));
      } else {
        throw new UsageError(`unknown option ${flag}`);
      }
    }
  } catch (err) {
    if (err instanceof UsageError) {
      io.err(`hermod check-config: ${err.message}\n\n${HELP}`);
      return EX_USAGE;
    }
    if (err instanceof ConfigError) {
      io.err(`hermod check-config: ${err.message}\n`);
      return EX_CONFIG;
    }
    throw err;
  }

  const path = resolveConfigPath(file, io.env ?? process.env);
  try {
    const loaded = loadConfig({ file: path, overrides });
    for (const w of loaded.warnings) io.err(`warning: ${w}\n`);
    if (!quiet) {
      io.out(`# effective configuration (${loaded.file ?? 'no file: built-in defaults'})\n`);
      io.out(renderConfig(loaded.config, loaded.sources));
    }
    return EX_OK;
  } catch (err) {
    if (err instanceof ConfigError) {
      const lines = 'issues' in err ? (err as { issues: Parameters<typeof formatIssue>[1][] }).issues.map((i) => formatIssue(path, i)) : [err.message];
      io.err(`${lines.join('\n')}\n${lines.length} problem${lines.length === 1 ? '' : 's'} in the configuration\n`);
      return EX_CONFIG;
    }
    throw err;
  }
}

class UsageError extends Error {}

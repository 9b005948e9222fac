/**
 * `hermod check-config [--config FILE] [serve flags] [--set key.path=value ...]`: validate the
 * configuration with the very argument parser of `hermod serve` (src/config/flags.ts), print the effective result (secrets redacted) and exit 0, or
 * print every problem and exit 78 (EX_CONFIG, sysexits.h) so scripts and systemd's
 * ExecStartPre can tell a bad file from other failures.
 */
import { ConfigError } from '../errors.js';
import { ConfigFileError, formatIssue, renderConfig, type LoadedConfig } from './file.js';
import { parseServeArgs, SERVE_FLAGS, UsageError } from './flags.js';

export const EX_OK = 0;
export const EX_USAGE = 64;
export const EX_CONFIG = 78;

const HELP = `Usage: hermod check-config [--config FILE] [serve flags] [--set key.path=value ...] [--quiet]

Validates the configuration exactly as \`hermod serve\` would read it (defaults < FILE < flags)
and prints the effective configuration with secrets redacted. Exit status 0 when valid, 78 when
not, 64 for bad usage.

  --config FILE   YAML configuration file (default: $HERMOD_CONFIG, else none)
  --set K=V       override one option, e.g. --set listen.c2s.port=5223
  --quiet         print nothing when the configuration is valid
  ${Object.keys(SERVE_FLAGS).join(', ')}: as for hermod serve
`;

export interface Io {
  out: (text: string) => void;
  err: (text: string) => void;
  env?: NodeJS.ProcessEnv;
}

const stdio: Io = { out: (t) => process.stdout.write(t), err: (t) => process.stderr.write(t) };

export async function runCheckConfig(argv: string[], io: Io = stdio): Promise<number> {
  const quiet = argv.includes('--quiet') || argv.includes('-q');
  const rest = argv.filter((a) => a !== '--quiet' && a !== '-q');
  let loaded: LoadedConfig;
  try {
    const args = parseServeArgs(rest, io.env ?? process.env);
    if (args.help || !args.loaded) {
      io.out(HELP);
      return EX_OK;
    }
    loaded = args.loaded;
  } catch (err) {
    if (err instanceof UsageError) {
      io.err(`hermod check-config: ${err.message}\n\n${HELP}`);
      return EX_USAGE;
    }
    if (err instanceof ConfigFileError) {
      const lines = err.issues.map((i) => formatIssue(err.file, i));
      io.err(`${lines.join('\n')}\n${lines.length} problem${lines.length === 1 ? '' : 's'} in the configuration\n`);
      return EX_CONFIG;
    }
    if (err instanceof ConfigError) {
      io.err(`hermod check-config: ${err.message}\n`);
      return EX_CONFIG;
    }
    throw err;
  }
  for (const w of loaded.warnings) io.err(`warning: ${w}\n`);
  if (!quiet) {
    io.out(`# effective configuration (${loaded.file ?? 'no file: built-in defaults'})\n`);
    io.out(renderConfig(loaded.config, loaded.sources));
  }
  return EX_OK;
}

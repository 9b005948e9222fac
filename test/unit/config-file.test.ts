import { chmodSync, mkdtempSync, mkdirSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { parse as parseYaml } from 'yaml';
import { ConfigError } from '../../src/errors.js';
import {
  ConfigFileError,
  REDACTED,
  applyOverride,
  closest,
  loadConfig,
  parseConfigText,
  renderConfig,
  resolveConfigPath,
  type Overrides,
} from '../../src/config/file.js';
import { allYamlPaths, defaultConfig, formatDuration, formatSize, parseDuration, parseSize } from '../../src/config/schema.js';

const dir = mkdtempSync(join(tmpdir(), 'hermod-config-'));
afterAll(() => rmSync(dir, { recursive: true, force: true }));
let n = 0;

function file(text: string): string {
  const path = join(dir, `c${n++}.yml`);
  writeFileSync(path, text);
  return path;
}

/** Load, expecting failure; returns the formatted lines. */
function problems(text: string, overrides?: Overrides): string[] {
  const path = file(text);
  try {
    loadConfig({ file: path, overrides });
  } catch (err) {
    expect(err).toBeInstanceOf(ConfigFileError);
    expect(err).toBeInstanceOf(ConfigError);
    return (err as Error).message.split('\n').map((l) => (l.startsWith(path) ? l.slice(path.length + 1).trimStart() : l));
  }
  throw new Error('expected the configuration to be refused');
}

const load = (text: string, overrides?: Overrides) => loadConfig({ file: file(text), overrides });

describe('reading the file', () => {
  it('reports a missing file by name', () => {
    const missing = join(dir, 'nope.yml');
    expect(() => loadConfig({ file: missing })).toThrow(`${missing}: cannot read configuration: file not found`);
  });

  it('reports a directory given as the file', () => {
    expect(() => loadConfig({ file: dir })).toThrow('is a directory, not a file');
  });

  it('reports a YAML syntax error with line and column', () => {
    expect(problems('domain: a.org\nlisten: [1\nlog: {}\n')).toEqual([
      expect.stringMatching(/^3:1: YAML syntax error: Flow sequence/),
    ]);
  });

  it('refuses a key written twice (a YAML error, with its line)', () => {
    expect(problems('domain: a.org\ndomain: b.org\n')[0]).toMatch(/^2:1: YAML syntax error: Map keys must be unique/);
  });

  it('refuses a file whose top level is not a map', () => {
    expect(problems('- domain\n- a.org\n')).toEqual(['1:1: the top level must be a map of options, got a list']);
  });

  it('treats an empty file, or a section with everything commented out, as the defaults', () => {
    const defaults = { ...defaultConfig(), dataDir: resolve('data') };
    expect(load('').config).toEqual(defaults);
    expect(load('# nothing\nlisten:\n  # c2s:\nlimits: ~\n').config).toEqual(defaults);
  });

  it('refuses a section written as a scalar', () => {
    expect(problems('listen: 5222\n')).toEqual([
      '1:9: listen: must be a map of options (c2s, direct_tls, websocket, component), got 5222',
    ]);
  });

  it('collects every problem of a file in one run, in file order', () => {
    const lines = problems('workers: -1\nlisten:\n  c2s:\n    port: "abc"\nlog:\n  level: loud\n');
    expect(lines).toHaveLength(3);
    expect(lines[0]).toMatch(/^1:10: workers:/);
    expect(lines[1]).toMatch(/^4:11: listen\.c2s\.port:/);
    expect(lines[2]).toMatch(/^6:10: log\.level:/);
  });
});

describe('unknown keys', () => {
  it('suggests the closest key for a typo', () => {
    expect(problems('listen:\n  c2s:\n    hots: 0.0.0.0\n')).toEqual([
      '3:5: listen.c2s.hots: unknown option; did you mean "listen.c2s.host"?',
    ]);
  });

  it('suggests the snake_case spelling for a camelCase or kebab-case key', () => {
    expect(problems('limits:\n  maxStanzaBytes: 1024\n  idle-timeout: 5m\n')).toEqual([
      '2:3: limits.maxStanzaBytes: unknown option; did you mean "limits.max_stanza_bytes"?',
      '3:3: limits.idle-timeout: unknown option; did you mean "limits.idle_timeout"?',
    ]);
  });

  it('points to the section where a misplaced key lives', () => {
    expect(problems('backlog: 10\n')).toEqual(['1:1: backlog: unknown option here; did you mean "listen.c2s.backlog"?']);
  });

  it('lists the known keys when nothing is close', () => {
    expect(problems('metrics:\n  zzzzzzzz: 1\n')).toEqual([
      '2:3: metrics.zzzzzzzz: unknown option; known options here: enabled, host, port',
    ]);
  });

  it('closest() refuses far-fetched matches', () => {
    expect(closest('domian', ['domain', 'workers'])).toBe('domain');
    expect(closest('xyz', ['domain', 'workers'])).toBeUndefined();
  });
});

describe('types and ranges', () => {
  it('names the key, the rule and the value for a non-numeric port', () => {
    expect(problems('listen:\n  c2s:\n    port: "abc"\n')).toEqual([
      '3:11: listen.c2s.port: must be an integer 0-65535 (0 = any free port), got "abc"',
    ]);
  });

  it.each([
    ['70000', '70000'],
    ['52.5', '52.5'],
    ['-1', '-1'],
    ['"5222"', '"5222"'],
  ])('refuses port %s', (written, shown) => {
    expect(problems(`listen:\n  direct_tls:\n    port: ${written}\n`)[0]).toContain(
      `listen.direct_tls.port: must be an integer 0-65535 (0 = any free port), got ${shown}`,
    );
  });

  it('accepts port 0 (any free port, for tests)', () => {
    expect(load('listen:\n  c2s:\n    port: 0\n').config.listen.c2s.port).toBe(0);
  });

  it('refuses yes/no as booleans and says why', () => {
    expect(problems('metrics:\n  enabled: yes\n')).toEqual([
      '2:12: metrics.enabled: must be true or false, got "yes" (YAML 1.2 reads yes/no/on/off as text)',
    ]);
  });

  it('refuses a value outside an enumeration and lists the legal ones', () => {
    expect(problems('registration: maybe\n')).toEqual(['1:15: registration: must be one of "open" or "closed", got "maybe"']);
    expect(problems('tls:\n  policy: 1\n')[0]).toContain('tls.policy: must be one of "required" or "optional", got 1');
    expect(problems('log:\n  format: pretty\n')[0]).toContain('log.format: must be one of "json" or "text", got "pretty"');
  });

  it('refuses an address that is neither an IP nor a host name', () => {
    expect(problems('listen:\n  c2s:\n    host: "not a host!"\n')[0]).toContain(
      'listen.c2s.host: must be an IP address or host name to listen on, got "not a host!"',
    );
    expect(load('listen:\n  c2s:\n    host: "::"\n').config.listen.c2s.host).toBe('::');
    expect(problems('listen:\n  c2s:\n    host: ::\n')[0]).toMatch(/^3:11: YAML syntax error: /);
  });

  it('checks the domain as an XMPP domainpart and normalises it (RFC 7622 §3.2)', () => {
    expect(problems('domain: "a@b.org"\n')[0]).toMatch(/^1:9: domain: must be a valid XMPP domain \(jid-malformed: .+\), got "a@b\.org"$/);
    expect(load('domain: Example.ORG.\n').config.domain).toBe('example.org');
  });

  it('refuses a list where a number is expected', () => {
    expect(problems('workers: [1, 2]\n')).toEqual(['1:10: workers: must be an integer 0-256, got a list']);
  });

  it('refuses a websocket path that does not start with /', () => {
    expect(problems('listen:\n  websocket:\n    path: xmpp\n')[0]).toContain('listen.websocket.path: must be a URL path starting with "/", got "xmpp"');
  });

  it('reads durations with units, and bare numbers as seconds', () => {
    const c = load('limits:\n  idle_timeout: 90\n  preauth_timeout: 1.5m\n  auth_failure_delay: 250ms\nstream_management:\n  resume_timeout: 1h\n').config;
    expect(c.limits.idleTimeout).toBe(90_000);
    expect(c.limits.preauthTimeout).toBe(90_000);
    expect(c.limits.authFailureDelay).toBe(250);
    expect(c.streamManagement.resumeTimeout).toBe(3_600_000);
  });

  it('refuses a duration without a known unit or out of range', () => {
    expect(problems('limits:\n  idle_timeout: 5 minutes\n')[0]).toContain(
      'limits.idle_timeout: must be a duration 0s-7d (a number of seconds, or a string like "30s", "5m", "1h"), got "5 minutes"',
    );
    expect(problems('limits:\n  preauth_timeout: 0\n')[0]).toContain('limits.preauth_timeout: must be a duration 1s-1h');
  });

  it('reads sizes with binary units, and bare numbers as bytes', () => {
    const c = load('limits:\n  max_stanza_bytes: 64KiB\n  preauth_max_stanza_bytes: 4096\n  output_queue_bytes: 1.5 MiB\n').config;
    expect(c.limits.maxStanzaBytes).toBe(65536);
    expect(c.limits.preauthMaxStanzaBytes).toBe(4096);
    expect(c.limits.outputQueueBytes).toBe(1.5 * 1024 * 1024);
  });

  it('refuses ambiguous decimal size units and sizes out of range', () => {
    expect(problems('limits:\n  max_stanza_bytes: 64K\n')[0]).toContain(
      'limits.max_stanza_bytes: must be a size 1KiB-64MiB (a number of bytes, or a string like "64KiB", "1MiB"), got "64K"',
    );
    expect(problems('limits:\n  max_stanza_bytes: 100\n')[0]).toContain('must be a size 1KiB-64MiB');
  });

  it('unit parsers and printers are inverse on the values they print', () => {
    for (const ms of [0, 250, 1000, 90_000, 3_600_000, 86_400_000, 1500]) expect(parseDuration(formatDuration(ms))).toBe(ms);
    for (const b of [0, 100, 1024, 65536, 1536, 3 * 1024 ** 3]) expect(parseSize(formatSize(b))).toBe(b);
  });
});

describe('paths', () => {
  it('takes relative paths in the file relative to the file, not the working directory', () => {
    const sub = join(dir, 'etc');
    mkdirSync(sub, { recursive: true });
    writeFileSync(join(sub, 'cert.pem'), 'x');
    writeFileSync(join(sub, 'key.pem'), 'x');
    const path = join(sub, 'hermod.yml');
    writeFileSync(path, 'data_dir: ../var\ntls:\n  cert: cert.pem\n  key: ./key.pem\n');
    const { config } = loadConfig({ file: path });
    expect(config.dataDir).toBe(join(dir, 'var'));
    expect(config.tls.cert).toBe(join(sub, 'cert.pem'));
    expect(config.tls.key).toBe(join(sub, 'key.pem'));
  });

  it('requires certificate and key together (RFC 6120 §13.7.2)', () => {
    writeFileSync(join(dir, 'only.pem'), 'x');
    expect(problems('tls:\n  cert: only.pem\n')).toEqual(['tls.key: must be set when tls.cert is set (they are a pair)']);
  });

  it('reports an unreadable certificate file where it is configured', () => {
    writeFileSync(join(dir, 'k.pem'), 'x');
    expect(problems('tls:\n  cert: missing.pem\n  key: k.pem\n')).toEqual([
      `2:9: tls.cert: cannot read ${JSON.stringify(join(dir, 'missing.pem'))}: file not found`,
    ]);
    if (process.getuid?.() !== 0) {
      chmodSync(join(dir, 'k.pem'), 0);
      expect(problems('tls:\n  cert: k.pem\n  key: k.pem\n')[0]).toContain('permission denied');
    }
  });

  it('checks that the data directory is a directory the server can use or create, creating nothing', () => {
    writeFileSync(join(dir, 'plainfile'), 'x');
    expect(problems('data_dir: plainfile\n')).toEqual([`1:11: data_dir: ${JSON.stringify(join(dir, 'plainfile'))} exists but is not a directory`]);
    expect(problems('data_dir: plainfile/sub\n')[0]).toContain(`data_dir: cannot be created: ${JSON.stringify(join(dir, 'plainfile'))} is not a directory`);
    const { config } = load('data_dir: not/yet/there\n');
    expect(config.dataDir).toBe(join(dir, 'not/yet/there'));
    expect(() => statSync(join(dir, 'not'))).toThrow();
    if (process.getuid?.() !== 0) {
      mkdirSync(join(dir, 'ro'), { mode: 0o500 });
      expect(problems('data_dir: ro/data\n')[0]).toContain('is not writable');
    }
  });

  it('can skip the file checks (for validating a config meant for another machine)', () => {
    expect(loadConfig({ file: file('tls:\n  cert: /nope/c.pem\n  key: /nope/k.pem\n'), checkFiles: false }).config.tls.cert).toBe('/nope/c.pem');
  });
});

describe('rules across options', () => {
  it('keeps the pre-auth stanza limit at or below the authenticated one', () => {
    expect(problems('limits:\n  max_stanza_bytes: 8KiB\n  preauth_max_stanza_bytes: 16KiB\n')).toEqual([
      '3:29: limits.preauth_max_stanza_bytes: must not exceed limits.max_stanza_bytes (8192)',
    ]);
  });

  it('needs a burst at least as large as the rate, unless the shaper is off', () => {
    expect(problems('limits:\n  byte_rate: {rate: 10KiB, burst: 1KiB}\n')[0]).toContain('limits.byte_rate.burst: must be at least the rate (10240)');
    expect(problems('limits:\n  stanza_rate:\n    rate: 10\n    burst: 5\n')[0]).toContain('limits.stanza_rate.burst: must be at least the rate (10)');
    expect(load('limits:\n  stanza_rate: {rate: 0, burst: 0}\n').config.limits.stanzaRate).toEqual({ rate: 0, burst: 0 });
  });

  it('keeps the auth back-off ceiling above its start', () => {
    expect(problems('limits:\n  auth_failure_delay: 10s\n  auth_failure_delay_max: 5s\n')[0]).toContain(
      'limits.auth_failure_delay_max: must be at least limits.auth_failure_delay',
    );
  });

  it('refuses two enabled listeners on one port, naming both', () => {
    expect(problems('metrics:\n  enabled: true\n  port: 5222\n')).toEqual(['3:9: metrics.port: 5222 is already used by listen.c2s.port']);
    expect(problems('listen:\n  c2s:\n    host: 0.0.0.0\n  direct_tls:\n    host: 10.0.0.1\n    port: 5222\n')[0]).toContain(
      'listen.direct_tls.port: 5222 is already used by listen.c2s.port',
    );
  });

  it('allows the same port on distinct addresses, on disabled listeners, and port 0 everywhere', () => {
    expect(() => load('listen:\n  direct_tls:\n    host: 10.0.0.1\n    port: 5222\n')).not.toThrow();
    expect(() => load('listen:\n  websocket:\n    port: 5222\n')).not.toThrow();
    expect(() => load('listen:\n  c2s: {port: 0}\n  direct_tls: {port: 0}\n')).not.toThrow();
  });

  it('checks component names as domains, secrets as non-empty strings, without echoing secrets', () => {
    expect(problems('components:\n  "bad domain": s3cret\n')[0]).toContain('components.bad domain: must be a valid component domain');
    const lines = problems('components:\n  bot.example.org: 12345678\n');
    expect(lines).toEqual(['2:20: components.bot.example.org: must be a non-empty string (the shared secret)']);
    expect(lines.join()).not.toContain('12345678');
    expect(problems('domain: a.org\ncomponents:\n  a.org: x\n')[0]).toContain('components.a.org: a component cannot take the server domain itself');
    expect(load('components:\n  Bot.Example.org: s\n').config.components).toEqual({ 'bot.example.org': 's' });
  });
});

describe('layers: defaults < file < command line', () => {
  it('lets the file override defaults and the command line override the file', () => {
    const text = 'domain: file.org\nworkers: 2\nlisten:\n  c2s:\n    port: 6222\n';
    const overrides: Overrides = { workers: 1, listen: { c2s: { host: '0.0.0.0' } } };
    const { config, sources } = load(text, overrides);
    expect(config.domain).toBe('file.org');
    expect(config.workers).toBe(1);
    expect(config.listen.c2s).toEqual({ host: '0.0.0.0', port: 6222, backlog: 4096 });
    expect(sources.get('domain')).toBe('file');
    expect(sources.get('workers')).toBe('command line');
    expect(sources.get('listen.c2s.backlog')).toBe('default');
  });

  it('works without any file', () => {
    const { config, file: f } = loadConfig({ overrides: { registration: 'open' } });
    expect(f).toBeNull();
    expect(config).toEqual({ ...defaultConfig(), registration: 'open', dataDir: resolve('data') });
  });

  it('checks command-line values with the same rules as the file', () => {
    expect(() => loadConfig({ overrides: { listen: { c2s: { port: 70000 } } } })).toThrow(
      'listen.c2s.port: must be an integer 0-65535 (0 = any free port), got 70000 (from the command line)',
    );
    expect(() => loadConfig({ overrides: { metrics: { enabled: true, port: 5222 } } })).toThrow('metrics.port: 5222 is already used by listen.c2s.port');
  });

  it('applyOverride parses a command-line string with the file syntax', () => {
    const o: Overrides = {};
    applyOverride(o, 'limits.max_stanza_bytes', '64KiB');
    applyOverride(o, 'metrics.enabled', 'true');
    applyOverride(o, 'listen.c2s.port', '5333');
    applyOverride(o, 'domain', 'chat.example.org');
    expect(o).toEqual({ limits: { maxStanzaBytes: 65536 }, metrics: { enabled: true }, listen: { c2s: { port: 5333 } }, domain: 'chat.example.org' });
    expect(loadConfig({ overrides: o }).config.limits.maxStanzaBytes).toBe(65536);
  });

  it('applyOverride reads shell text that YAML would misread (`::`, `#…`, digits) as a string', () => {
    const o: Overrides = {};
    applyOverride(o, 'listen.c2s.host', '::');
    applyOverride(o, 'domain', '123');
    expect(o).toEqual({ listen: { c2s: { host: '::' } }, domain: '123' });
    expect(() => applyOverride({}, 'domain', '#x')).toThrow(/^domain: must be a valid XMPP domain \(.+\), got "#x"$/);
    expect(() => applyOverride({}, 'listen.c2s.port', '5222x')).toThrow('got "5222x"');
  });

  it('applyOverride names the option and suggests one for a typo', () => {
    expect(() => applyOverride({}, 'listen.c2s.prot', '1')).toThrow('listen.c2s.prot: unknown option; did you mean "listen.c2s.port"?');
    expect(() => applyOverride({}, 'listen.c2s.port', 'x')).toThrow(ConfigError);
    expect(() => applyOverride({}, 'listen.c2s.port', 'x')).toThrow('listen.c2s.port: must be an integer 0-65535 (0 = any free port), got "x"');
  });

  it('takes --config first, then $HERMOD_CONFIG, else no file', () => {
    expect(resolveConfigPath('a.yml', { HERMOD_CONFIG: 'b.yml' })).toBe('a.yml');
    expect(resolveConfigPath(undefined, { HERMOD_CONFIG: 'b.yml' })).toBe('b.yml');
    expect(resolveConfigPath(undefined, {})).toBeNull();
  });
});

describe('printing the effective configuration', () => {
  it('redacts component secrets', () => {
    const text = renderConfig(load('components:\n  bot.example.org: hunter2-secret\n').config);
    expect(text).not.toContain('hunter2');
    expect(parseYaml(text).components).toEqual({ 'bot.example.org': REDACTED });
  });

  it('prints something the file layer reads back to the same configuration', () => {
    const { config } = load('domain: x.org\nlimits:\n  idle_timeout: 90\n  max_stanza_bytes: 100000\nlog: {level: debug, format: text}\n');
    expect(parseConfigText(renderConfig(config)).issues).toEqual([]);
    expect(loadConfig({ file: file(renderConfig(config)) }).config).toEqual(config);
    const defaults = loadConfig().config;
    expect(loadConfig({ file: file(renderConfig(defaults)) }).config).toEqual(defaults);
  });

  it('marks options that do not come from the defaults', () => {
    const { config, sources } = load('workers: 2\n', { domain: 'y.org' });
    const text = renderConfig(config, sources);
    expect(text).toContain('workers: 2 # from file');
    expect(text).toContain('domain: y.org # from command line');
    expect(text).toMatch(/backlog: 4096\n/);
  });

  it('names every option exactly once', () => {
    const paths = allYamlPaths();
    expect(new Set(paths).size).toBe(paths.length);
    const printed = parseYaml(renderConfig(defaultConfig()));
    for (const p of paths) expect(p.split('.').reduce((o, k) => o?.[k], printed), p).not.toBeUndefined();
  });
});

describe('warnings', () => {
  it('warns about optional TLS on a public address and metrics beyond loopback', () => {
    const { warnings } = load('tls:\n  policy: optional\nlisten:\n  c2s:\n    host: 0.0.0.0\nmetrics:\n  enabled: true\n  host: 0.0.0.0\n');
    expect(warnings).toEqual([
      expect.stringContaining('SASL PLAIN passwords may cross the network unencrypted'),
      expect.stringContaining('the metrics endpoint has no authentication'),
    ]);
    expect(load('').warnings).toEqual([]);
  });
});

describe('the annotated example (docs/hermod.example.yml)', () => {
  const example = resolve('docs/hermod.example.yml');

  it('is a valid configuration equal to the built-in defaults', () => {
    const { config } = loadConfig({ file: example });
    expect(config).toEqual({ ...defaultConfig(), dataDir: resolve('docs/data') });
  });

  it('writes out every option', async () => {
    const { readFileSync } = await import('node:fs');
    const written = parseYaml(readFileSync(example, 'utf8'));
    for (const p of allYamlPaths()) expect(p.split('.').reduce((o, k) => o?.[k], written), p).not.toBeUndefined();
  });
});

describe('docs/configuration.md', () => {
  it('documents every option and every serve flag', async () => {
    const { readFileSync } = await import('node:fs');
    const { SERVE_FLAGS } = await import('../../src/config/flags.js');
    const doc = readFileSync(resolve('docs/configuration.md'), 'utf8');
    for (const p of allYamlPaths()) expect(doc, p).toContain(`| \`${p}\` |`);
    for (const flag of Object.keys(SERVE_FLAGS)) expect(doc, flag).toContain(`\`${flag}`);
  });
});

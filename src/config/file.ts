/**
 * The configuration file layer: read a YAML file, validate every key against the schema, merge
 * defaults < file < command-line overrides into one HermodConfig, and print it back.
 *
 * YAML because ejabberd operators already write ejabberd.yml, because comments are allowed, and
 * because the annotated example (docs/hermod.example.yml) is then both documentation and a file
 * that works. Every problem is collected (not just the first) and reported as
 * `file:line:col: key.path: problem`, so one run of `hermod check-config` shows them all.
 */
import { accessSync, constants, readFileSync, statSync } from 'node:fs';
import { availableParallelism } from 'node:os';
import { dirname, resolve } from 'node:path';
import { Document, isMap, isScalar, LineCounter, parseDocument, type Node, type Pair, type YAMLMap } from 'yaml';
import { ConfigError } from '../errors.js';
import {
  BadValue,
  SCHEMA,
  allYamlPaths,
  defaultConfig,
  describe,
  getIn,
  isLeaf,
  leafAt,
  leaves,
  setIn,
  toYamlKey,
  type HermodConfig,
  type Leaf,
} from './schema.js';

export type DeepPartial<T> = { [K in keyof T]?: T[K] extends object ? DeepPartial<T[K]> | T[K] : T[K] };
/** Values set on the command line, in the object's shape and units (ms, bytes). */
export type Overrides = DeepPartial<HermodConfig>;

export interface ConfigIssue {
  /** YAML path of the option, e.g. `listen.c2s.port`; empty for file-level problems. */
  path: string;
  message: string;
  line?: number;
  col?: number;
}

/** All problems found in one load; `message` lists them one per line. */
export class ConfigFileError extends ConfigError {
  constructor(
    readonly file: string | null,
    readonly issues: ConfigIssue[],
  ) {
    super(issues.map((i) => formatIssue(file, i)).join('\n'), issues[0]?.path || undefined);
    // ConfigError prefixes `key: `; the per-line format above already names every key.
    this.message = issues.map((i) => formatIssue(file, i)).join('\n');
    this.name = 'ConfigFileError';
  }
}

export function formatIssue(file: string | null, issue: ConfigIssue): string {
  const where = file ? `${file}${issue.line ? `:${issue.line}:${issue.col}` : ''}: ` : '';
  return `${where}${issue.path ? `${issue.path}: ` : ''}${issue.message}`;
}

export type Source = 'default' | 'file' | 'command line';

export interface LoadedConfig {
  config: HermodConfig;
  /** Absolute path of the file read, or null when running on defaults and flags only. */
  file: string | null;
  /** Legal but risky settings, worth printing at start. */
  warnings: string[];
  /** Where each option's effective value came from, by YAML path. */
  sources: Map<string, Source>;
}

export interface LoadOptions {
  /** Path of the YAML file; null/undefined = no file. See resolveConfigPath(). */
  file?: string | null;
  overrides?: Overrides;
  /** Check that tls.cert/tls.key are readable files (default true). */
  checkFiles?: boolean;
}

/** `--config FILE` wins, then $HERMOD_CONFIG; no file at all means defaults (and flags) only. */
export function resolveConfigPath(explicit: string | undefined | null, env: NodeJS.ProcessEnv = process.env): string | null {
  return explicit || env.HERMOD_CONFIG || null;
}

// ---- reading the file ----------------------------------------------------------------------

interface FileLayer {
  values: Record<string, unknown>;
  positions: Map<string, { line: number; col: number }>;
  issues: ConfigIssue[];
}

type AnySchema = { [key: string]: Leaf<unknown> | AnySchema };

function readFileLayer(file: string): FileLayer {
  let text: string;
  try {
    if (statSync(file).isDirectory()) throw Object.assign(new Error(), { code: 'EISDIR' });
    text = readFileSync(file, 'utf8');
  } catch (err) {
    const code = (err as NodeJS.ErrnoException).code;
    const why =
      code === 'ENOENT' ? 'file not found' : code === 'EACCES' ? 'permission denied' : code === 'EISDIR' ? 'is a directory, not a file' : (err as Error).message;
    throw new ConfigFileError(file, [{ path: '', message: `cannot read configuration: ${why}` }]);
  }
  return parseConfigText(text, file);
}

/** Parse and validate YAML text (exported for tests and for configs not stored in files). */
export function parseConfigText(text: string, file: string | null = null): FileLayer {
  const lineCounter = new LineCounter();
  const doc = parseDocument(text, { lineCounter, prettyErrors: false, uniqueKeys: true });
  const at = (node: { range?: [number, number, number] | null } | null | undefined) => {
    const offset = node?.range?.[0];
    return offset === undefined ? {} : { line: lineCounter.linePos(offset).line, col: lineCounter.linePos(offset).col };
  };
  const layer: FileLayer = { values: {}, positions: new Map(), issues: [] };
  if (doc.errors.length > 0) {
    for (const e of doc.errors) {
      const pos = lineCounter.linePos(e.pos[0]);
      const message = `YAML syntax error: ${e.message.replace(/ at line \d+, column \d+:?[\s\S]*$/, '')}`;
      layer.issues.push({ path: '', message, line: pos.line, col: pos.col });
    }
    throw new ConfigFileError(file, layer.issues);
  }
  const root = doc.contents;
  if (root === null || (isScalar(root) && root.value === null)) return layer; // empty file: defaults
  if (!isMap(root)) {
    layer.issues.push({ path: '', message: `the top level must be a map of options, got ${describe(root.toJS(doc))}`, ...at(root) });
    throw new ConfigFileError(file, layer.issues);
  }

  const baseDir = file ? dirname(resolve(file)) : process.cwd();

  const walk = (schema: AnySchema, map: YAMLMap, props: string[]) => {
    const byYamlKey = new Map(Object.keys(schema).map((p) => [toYamlKey(p), p]));
    for (const pair of map.items as Pair<Node | null, Node | null>[]) {
      const keyNode = pair.key;
      const key = isScalar(keyNode) ? String(keyNode.value) : undefined;
      const prefix = props.map(toYamlKey).join('.');
      const here = (k: string) => (prefix ? `${prefix}.${k}` : k);
      if (key === undefined) {
        layer.issues.push({ path: prefix, message: 'keys must be plain names', ...at(keyNode) });
        continue;
      }
      const prop = byYamlKey.get(key);
      if (prop === undefined) {
        layer.issues.push({ path: here(key), message: unknownKeyMessage(key, [...byYamlKey.keys()], prefix), ...at(keyNode) });
        continue;
      }
      const node = schema[prop]!;
      const propsHere = [...props, prop];
      const yamlPath = here(key);
      layer.positions.set(yamlPath, at(pair.value ?? keyNode) as { line: number; col: number });
      if (isLeaf(node)) {
        const raw = pair.value === null ? null : pair.value.toJS(doc);
        try {
          let value = node.parse(raw);
          if (node.isPath && typeof value === 'string') value = resolve(baseDir, value);
          setIn(layer.values, propsHere, value);
        } catch (err) {
          if (!(err instanceof BadValue)) throw err;
          const sub = err.subKey !== undefined && isMap(pair.value) ? (pair.value.items as Pair<Node, Node>[]).find((p) => isScalar(p.key) && String(p.key.value) === err.subKey) : undefined;
          layer.issues.push({
            path: err.subKey !== undefined ? `${yamlPath}.${err.subKey}` : yamlPath,
            message: err.message,
            ...at(sub?.value ?? sub?.key ?? pair.value ?? keyNode),
          });
        }
      } else if (pair.value === null || (isScalar(pair.value) && pair.value.value === null)) {
        // `listen:` with everything below commented out: keep the defaults.
      } else if (isMap(pair.value)) {
        walk(node, pair.value, propsHere);
      } else {
        layer.issues.push({ path: yamlPath, message: `must be a map of options (${Object.keys(node).map(toYamlKey).join(', ')}), got ${describe(pair.value.toJS(doc))}`, ...at(pair.value) });
      }
    }
  };
  walk(SCHEMA as unknown as AnySchema, root, []);
  return layer;
}

// ---- suggestions for unknown keys ----------------------------------------------------------

const normalize = (s: string) => s.toLowerCase().replace(/[_\-\s]/g, '');

function editDistance(a: string, b: string): number {
  let prev = Array.from({ length: b.length + 1 }, (_, j) => j);
  for (let i = 1; i <= a.length; i++) {
    const cur = [i];
    for (let j = 1; j <= b.length; j++) {
      cur[j] = Math.min(prev[j]! + 1, cur[j - 1]! + 1, prev[j - 1]! + (a[i - 1] === b[j - 1] ? 0 : 1));
    }
    prev = cur;
  }
  return prev[b.length]!;
}

/** The closest known key, if close enough to be a plausible typo (or a camelCase/kebab spelling). */
export function closest(word: string, candidates: readonly string[]): string | undefined {
  let best: string | undefined;
  let bestScore = Infinity;
  for (const c of candidates) {
    const d = editDistance(normalize(word), normalize(c));
    if (d < bestScore) {
      bestScore = d;
      best = c;
    }
  }
  return best !== undefined && bestScore <= Math.max(2, Math.floor(normalize(word).length / 3)) ? best : undefined;
}

function unknownKeyMessage(key: string, siblings: string[], prefix: string): string {
  const near = closest(key, siblings);
  if (near) return `unknown option; did you mean "${prefix ? `${prefix}.` : ''}${near}"?`;
  // The key may exist in another section (`port` at the top level → listen.c2s.port).
  const elsewhere = allYamlPaths().filter((p) => normalize(p.split('.').pop()!) === normalize(key));
  if (elsewhere.length > 0) return `unknown option here; did you mean ${elsewhere.map((p) => `"${p}"`).join(' or ')}?`;
  return `unknown option; known options here: ${siblings.join(', ')}`;
}

// ---- command-line overrides ----------------------------------------------------------------

/**
 * Set one option from a command-line string, with the file's parsing rules (`30s`, `64KiB`,
 * `true`): the helper behind `--set key.path=value` and behind every dedicated flag. Throws
 * ConfigError naming the option.
 */
export function applyOverride(overrides: Overrides, yamlPath: string, text: string): void {
  const entry = leafAt(yamlPath);
  if (!entry) {
    const near = closest(yamlPath, allYamlPaths());
    throw new ConfigError(`unknown option${near ? `; did you mean "${near}"?` : ''}`, yamlPath);
  }
  // The text is read as a YAML scalar (so `true`, `5222`, `null` get their types), but a shell
  // argument is not a YAML document: `::` would read as a map and `#x` as a comment. When the
  // typed reading is refused, the plain string gets a chance, and its error is the one shown
  // unless the typed reading was a genuine scalar.
  const doc = parseDocument(text);
  const typed: unknown = doc.errors.length > 0 ? text : doc.toJS();
  const genuine = typed !== null ? typeof typed !== 'object' : /^(null|Null|NULL|~)?$/.test(text.trim());
  const attempt = (value: unknown): { value: unknown } | { error: BadValue } => {
    try {
      return { value: entry.leaf.parse(value) };
    } catch (err) {
      if (err instanceof BadValue) return { error: err };
      throw err;
    }
  };
  let outcome = attempt(typed);
  if ('error' in outcome && typed !== text) {
    const asString = attempt(text);
    if ('value' in asString || !genuine) outcome = asString;
  }
  if ('error' in outcome) throw new ConfigError(outcome.error.message, yamlPath);
  setIn(overrides as Record<string, unknown>, entry.props, outcome.value);
}

// ---- merging and cross-checks --------------------------------------------------------------

/**
 * defaults < file < overrides. Throws ConfigFileError listing every problem.
 */
export function loadConfig(options: LoadOptions = {}): LoadedConfig {
  const file = options.file ? resolve(options.file) : null;
  const layer: FileLayer = file ? readFileLayer(file) : { values: {}, positions: new Map(), issues: [] };
  const issues = [...layer.issues];
  const config = defaultConfig() as unknown as Record<string, unknown>;
  const sources = new Map<string, Source>();

  for (const { yamlPath, props, leaf } of leaves()) {
    sources.set(yamlPath, 'default');
    const fromFile = getIn(layer.values, props);
    if (fromFile !== undefined) {
      setIn(config, props, fromFile);
      sources.set(yamlPath, 'file');
    }
    const fromFlag = getIn(options.overrides, props);
    if (fromFlag !== undefined) {
      // Values built by flag parsers are re-checked by a round trip through the file syntax,
      // so a flag cannot smuggle in what the file would refuse.
      try {
        setIn(config, props, leaf.parse(leaf.show(fromFlag)));
        sources.set(yamlPath, 'command line');
      } catch (err) {
        if (!(err instanceof BadValue)) throw err;
        issues.push({ path: yamlPath, message: `${err.message} (from the command line)` });
      }
    }
  }
  if (issues.length > 0) throw new ConfigFileError(file, issues);
  // Paths from the defaults and the command line are relative to the working directory; made
  // absolute here so the effective configuration means the same wherever it is printed or read.
  for (const { props, leaf } of leaves()) {
    const value = getIn(config, props);
    if (leaf.isPath && typeof value === 'string') setIn(config, props, resolve(value));
  }

  const result = config as unknown as HermodConfig;
  const pos = (path: string) => (sources.get(path) === 'file' ? layer.positions.get(path) ?? {} : {});
  const problem = (path: string, message: string) => issues.push({ path, message, ...pos(path) });
  crossCheck(result, problem, options.checkFiles ?? true);
  if (issues.length > 0) throw new ConfigFileError(file, issues);
  return { config: result, file, warnings: warningsFor(result), sources };
}

const ANY_ADDRESS = new Set(['0.0.0.0', '::', '']);

function crossCheck(c: HermodConfig, problem: (path: string, message: string) => void, checkFiles: boolean): void {
  // RFC 6120 §13.7.2: certificate and key come as a pair.
  if ((c.tls.cert === null) !== (c.tls.key === null)) {
    if (c.tls.cert === null) problem('tls.cert', 'must be set when tls.key is set (they are a pair)');
    else problem('tls.key', 'must be set when tls.cert is set (they are a pair)');
  }
  if (checkFiles) {
    for (const [path, value] of [['tls.cert', c.tls.cert], ['tls.key', c.tls.key]] as const) {
      if (value === null) continue;
      try {
        if (!statSync(value).isFile()) throw new Error('not a regular file');
        accessSync(value, constants.R_OK);
      } catch (err) {
        const code = (err as NodeJS.ErrnoException).code;
        problem(path, `cannot read ${JSON.stringify(value)}: ${code === 'ENOENT' ? 'file not found' : code === 'EACCES' ? 'permission denied' : (err as Error).message}`);
      }
    }
  }
  if (checkFiles) {
    const why = dataDirProblem(c.dataDir);
    if (why) problem('data_dir', why);
  }
  if (c.limits.preauthMaxStanzaBytes > c.limits.maxStanzaBytes) {
    problem('limits.preauth_max_stanza_bytes', `must not exceed limits.max_stanza_bytes (${c.limits.maxStanzaBytes})`);
  }
  for (const name of ['byteRate', 'preauthByteRate', 'stanzaRate'] as const) {
    const { rate, burst } = c.limits[name];
    if (rate > 0 && burst < rate) problem(`limits.${toYamlKey(name)}.burst`, `must be at least the rate (${rate}) when a rate is set`);
  }
  if (c.limits.authFailureDelayMax < c.limits.authFailureDelay) {
    problem('limits.auth_failure_delay_max', 'must be at least limits.auth_failure_delay');
  }
  for (const name of Object.keys(c.components)) {
    if (name === c.domain) problem(`components.${name}`, 'a component cannot take the server domain itself');
  }
  if (c.upload.enabled) {
    const uploadDomain = c.upload.domain || `upload.${c.domain}`;
    if (uploadDomain === c.domain) problem('upload.domain', 'the upload service needs a JID of its own, not the server domain');
    if (uploadDomain in c.components) problem('upload.domain', `${uploadDomain} is also configured as a component`);
  }
  if (c.muc.enabled) {
    const mucDomain = c.muc.domain ?? `conference.${c.domain}`;
    if (mucDomain === c.domain) problem('muc.domain', 'the chat service needs a domain of its own, not the server domain');
    if (mucDomain in c.components) problem('muc.domain', `${mucDomain} is also configured as a component`);
    if (c.upload.enabled && mucDomain === (c.upload.domain || `upload.${c.domain}`)) problem('muc.domain', `${mucDomain} is also the upload service`);
  }

  // Two listeners on one port fail at start with EADDRINUSE; say which ones now.
  const listeners: [string, string, number][] = [['listen.c2s', c.listen.c2s.host, c.listen.c2s.port]];
  if (c.listen.directTls.enabled) listeners.push(['listen.direct_tls', c.listen.directTls.host, c.listen.directTls.port]);
  if (c.listen.websocket.enabled) listeners.push(['listen.websocket', c.listen.websocket.host, c.listen.websocket.port]);
  if (Object.keys(c.components).length > 0) listeners.push(['listen.component', c.listen.component.host, c.listen.component.port]);
  if (c.metrics.enabled) listeners.push(['metrics', c.metrics.host, c.metrics.port]);
  if (c.upload.enabled) listeners.push(['upload.http', c.upload.http.host, c.upload.http.port]);
  for (let i = 0; i < listeners.length; i++) {
    for (let j = 0; j < i; j++) {
      const [a, hostA, portA] = listeners[j]!;
      const [b, hostB, portB] = listeners[i]!;
      const overlap = hostA === hostB || ANY_ADDRESS.has(hostA) || ANY_ADDRESS.has(hostB);
      if (portA !== 0 && portA === portB && overlap) problem(`${b}.port`, `${portB} is already used by ${a}.port`);
    }
  }
}

/**
 * Whether the server could use (or create) the data directory, checked without creating
 * anything: check-config must not leave folders behind.
 */
function dataDirProblem(dir: string): string | null {
  let probe = dir;
  for (;;) {
    try {
      const st = statSync(probe);
      if (!st.isDirectory()) return probe === dir ? `${JSON.stringify(dir)} exists but is not a directory` : `cannot be created: ${JSON.stringify(probe)} is not a directory`;
      accessSync(probe, constants.W_OK | constants.X_OK);
      return null;
    } catch (err) {
      const code = (err as NodeJS.ErrnoException).code;
      if ((code === 'ENOENT' || code === 'ENOTDIR') && dirname(probe) !== probe) {
        probe = dirname(probe); // not there yet: the server creates it if the parent allows
        continue;
      }
      if (code === 'EACCES') return probe === dir ? `${JSON.stringify(dir)} is not writable` : `cannot be created: ${JSON.stringify(probe)} is not writable`;
      return `${JSON.stringify(probe)}: ${(err as Error).message}`;
    }
  }
}

const LOOPBACK = /^(127\.\d+\.\d+\.\d+|::1|localhost)$/;

function warningsFor(c: HermodConfig): string[] {
  const out: string[] = [];
  if (c.tls.policy === 'optional' && !LOOPBACK.test(c.listen.c2s.host)) {
    out.push(`tls.policy is "optional" on a non-loopback listener (${c.listen.c2s.host}): SASL PLAIN passwords may cross the network unencrypted`);
  }
  if (c.metrics.enabled && !LOOPBACK.test(c.metrics.host)) {
    out.push(`metrics.host is ${c.metrics.host}: the metrics endpoint has no authentication; keep it on a private address`);
  }
  if (c.workers > availableParallelism()) {
    out.push(`workers is ${c.workers} but this machine has ${availableParallelism()} cores`);
  }
  if (c.registration === 'open' && c.tls.policy === 'optional') {
    out.push('registration is "open" with tls.policy "optional": accounts can be created over plain TCP');
  }
  return out;
}

// ---- printing ------------------------------------------------------------------------------

export const REDACTED = '<redacted>';

/**
 * The effective configuration as YAML (the file syntax, units restored), with secrets replaced
 * by <redacted>. With `sources`, each option not at its default is annotated with where it came
 * from.
 */
export function renderConfig(config: HermodConfig, sources?: Map<string, Source>): string {
  const plain: Record<string, unknown> = {};
  for (const { yamlPath, props, leaf } of leaves()) {
    let shown = leaf.show(getIn(config, props));
    if (leaf.secret && shown && typeof shown === 'object') {
      shown = Object.fromEntries(Object.keys(shown).map((k) => [k, REDACTED]));
    }
    setIn(plain, yamlPath.split('.'), shown);
  }
  const doc = new Document(plain);
  if (sources) {
    for (const [yamlPath, source] of sources) {
      if (source === 'default') continue;
      const node = doc.getIn(yamlPath.split('.'), true) as Node | undefined;
      // A scalar takes the note at the end of its line; a map gets it above its first entry.
      if (node && isScalar(node)) node.comment = ` from ${source}`;
      else if (node) node.commentBefore = ` from ${source}`;
    }
  }
  return doc.toString({ lineWidth: 0 });
}

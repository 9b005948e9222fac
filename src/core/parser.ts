/**
 * The JS side of the WASM boundary: loads the core once per thread, owns one parser state per
 * connection, copies each chunk once into WASM memory and turns the core's events into
 * ParserHandler calls. Layout of the state block: assembly/layout.ts (the one shared definition).
 */
import { existsSync, readFileSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { A, Atom, Ev, F, Fl, R } from '../../assembly/layout.js';
import {
  DEFAULT_LIMITS,
  type CoreError,
  type ParserHandler,
  type ParserLimits,
  type StanzaKind,
  type StanzaStatus,
  type StanzaType,
  type StanzaView,
  type StreamHeader,
  type StreamParser,
} from './api.js';
import { describeCode } from './codes.js';

/** Hard caps of the core's scratch tables (assembly/tokenizer.ts DEPTH_CAP, ATTR_CAP). */
export const LIMIT_CAPS = { maxDepth: 256, maxAttributes: 256, maxStanzaBytes: 0x3fffffff } as const;

// The WebAssembly global is not typed by lib ES2022 without DOM; declare what is used here.
interface WasmMemory {
  readonly buffer: ArrayBuffer;
}
declare const WebAssembly: {
  Module: new (bytes: Uint8Array) => object;
  Instance: new (module: object, imports: object) => { exports: object };
};

interface CoreExports {
  memory: WasmMemory;
  newState(): number;
  freeState(s: number): void;
  resetState(s: number): void;
  prepare(s: number, n: number): number;
  run(s: number): number;
  rewind(s: number, at: number): void;
  attrTable(): number;
  ringAddr(): number;
  heapTop(): number;
  coreVersion(): number;
}

export interface LoadOptions {
  /** Use the debug build (assertions, names); default from env HERMOD_CORE_DEBUG=1. */
  debug?: boolean;
  /** Load this .wasm file instead (benchmarks comparing builds, e.g. with and without SIMD). */
  wasmFile?: string;
}

export interface CoreStats {
  /** Size of the WASM linear memory. */
  memoryBytes: number;
  /** Bytes of linear memory handed out by the core's allocator so far. */
  heapBytes: number;
  /** Parsers alive on this instance. */
  parsers: number;
}

/** One WASM instance (per thread) hosting many connections' parser states. */
export interface Core {
  createParser(handler: ParserHandler, limits?: Partial<ParserLimits>): StreamParser;
  stats(): CoreStats;
  readonly debug: boolean;
}

function packageRoot(): string {
  let dir = dirname(fileURLToPath(import.meta.url));
  for (;;) {
    const pkg = join(dir, 'package.json');
    if (existsSync(pkg) && /"name"\s*:\s*"hermod"/.test(readFileSync(pkg, 'utf8'))) return dir;
    const up = dirname(dir);
    if (up === dir) throw new Error('hermod: cannot find the package root (package.json)');
    dir = up;
  }
}

/** Path of the compiled core (built by `npm run build:wasm`). */
export function wasmPath(debug = false): string {
  return join(packageRoot(), 'dist', 'wasm', debug ? 'core.debug.wasm' : 'core.wasm');
}

const cache = new Map<string, Core>();

/** Load (once per thread and variant) the WASM core. Synchronous. */
export function loadCore(options: LoadOptions = {}): Core {
  const debug = options.debug ?? process.env.HERMOD_CORE_DEBUG === '1';
  const path = options.wasmFile ?? wasmPath(debug);
  let core = cache.get(path);
  if (!core) {
    if (!existsSync(path)) throw new Error(`hermod: ${path} is missing; run "npm run build:wasm"`);
    const module = new WebAssembly.Module(readFileSync(path));
    const instance = new WebAssembly.Instance(module, {
      env: {
        abort(msg: number, file: number, line: number, col: number) {
          throw new Error(`hermod core: assertion failed at ${line}:${col} (${msg}, ${file})`);
        },
      },
    });
    core = new CoreImpl(instance.exports as unknown as CoreExports, debug);
    cache.set(path, core);
  }
  return core;
}

class CoreImpl implements Core {
  /** Views over linear memory, replaced whenever memory.buffer changes (growth). */
  buf: Buffer;
  i32: Int32Array;
  readonly attrTable: number;
  /** i32 index of the descriptor ring's first entry (assembly/layout.ts R). */
  readonly ring: number;
  /** The parser whose batch of stanzas (in the ring) is being handed to its handler. */
  batch: Parser | null = null;
  parsers = 0;
  /** JS side of the atom table (assembly/rules.ts intern): decoded string and generation per slot. */
  readonly atomGen = new Int32Array(Atom.Slots + 1).fill(-1);
  readonly atomStr: string[] = new Array<string>(Atom.Slots + 1).fill('');

  constructor(
    readonly ex: CoreExports,
    readonly debug: boolean,
  ) {
    this.buf = Buffer.from(ex.memory.buffer);
    this.i32 = new Int32Array(ex.memory.buffer);
    this.attrTable = ex.attrTable();
    this.ring = ex.ringAddr() >>> 2;
  }

  /**
   * Call after anything that may have grown memory. Growth detaches the old ArrayBuffer, which
   * empties every view on it: checking a view's length avoids the memory.buffer getter (a call
   * into the engine) on the hot path.
   */
  refresh(): void {
    if (this.i32.length === 0) {
      this.buf = Buffer.from(this.ex.memory.buffer);
      this.i32 = new Int32Array(this.ex.memory.buffer);
    }
  }

  createParser(handler: ParserHandler, limits?: Partial<ParserLimits>): StreamParser {
    return new Parser(this, handler, limits);
  }

  stats(): CoreStats {
    return {
      memoryBytes: this.ex.memory.buffer.byteLength,
      heapBytes: this.ex.heapTop(),
      parsers: this.parsers,
    };
  }
}

/** Node's Buffer has these undocumented-but-stable slicers; toString() adds argument checks. */
interface FastBuffer extends Buffer {
  latin1Slice(start: number, end: number): string;
  utf8Slice(start: number, end: number): string;
}

const ENTITY = /&(?:(lt)|(gt)|(amp)|(apos)|(quot)|#x([0-9a-fA-F]+)|#([0-9]+));/g;

/** Decode the five predefined entities and character references (all the core lets through). */
export function decodeEntities(s: string): string {
  return s.replace(ENTITY, (_m, lt, gt, amp, apos, _q, hex, dec) =>
    lt ? '<' : gt ? '>' : amp ? '&' : apos ? "'" : hex ? String.fromCodePoint(parseInt(hex, 16)) : dec ? String.fromCodePoint(parseInt(dec, 10)) : '"',
  );
}

/** The one StanzaView of a parser, re-pointed at each stanza; reads the descriptor in place. */
class View implements StanzaView {
  /** i32 index of the current stanza's descriptor (a ring entry). */
  d = 0;

  constructor(private readonly core: CoreImpl) {}

  private f(field: number): number {
    return this.core.i32[this.d + field];
  }

  /** Decode a value span; ASCII-only values (no `hiFlag`) take the cheaper latin1 path. */
  private str(offField: number, lenField: number, ampFlag: number, hiFlag = -1): string | null {
    const off = this.f(offField);
    if (off < 0) return null;
    const flags = this.f(F.Flags);
    const buf = this.core.buf as FastBuffer;
    const end = off + this.f(lenField);
    const s = (flags & hiFlag) === 0 ? buf.latin1Slice(off, end) : buf.utf8Slice(off, end);
    return (flags & ampFlag) !== 0 ? decodeEntities(s) : s;
  }

  get kind(): StanzaKind {
    return this.f(F.Kind);
  }
  get type(): StanzaType {
    return this.f(F.Type);
  }
  get status(): StanzaStatus {
    return this.f(F.Status);
  }
  get buffer(): Uint8Array {
    return this.core.buf;
  }
  get start(): number {
    return this.f(F.Start);
  }
  get end(): number {
    return this.f(F.End);
  }
  get nameEnd(): number {
    return this.f(F.NameEnd);
  }
  get fromAttrStart(): number {
    return this.f(F.FromAttrStart);
  }
  get fromAttrEnd(): number {
    return this.f(F.FromAttrEnd);
  }
  get childCount(): number {
    return this.f(F.ChildCount);
  }
  get nsInherited(): boolean {
    return (this.f(F.Flags) & Fl.NsAbs) !== 0;
  }
  name(): string {
    return this.core.buf.toString('utf8', this.f(F.Start) + 1, this.f(F.NameEnd));
  }
  namespace(): string {
    return this.str(F.NsOff, F.NsLen, Fl.NsAmp) ?? '';
  }
  to(): string | null {
    const atom = this.f(F.ToAtom);
    if (atom === 0) return this.str(F.ToOff, F.ToLen, Fl.ToAmp, Fl.ToHi);
    // the same `to` as an earlier stanza (same slot, same generation): reuse its string
    const gen = this.f(F.ToAtomGen);
    const { atomGen, atomStr } = this.core;
    if (atomGen[atom] === gen) return atomStr[atom];
    const s = this.str(F.ToOff, F.ToLen, 0, 0)!;
    atomGen[atom] = gen;
    atomStr[atom] = s;
    return s;
  }
  from(): string | null {
    return this.str(F.FromOff, F.FromLen, Fl.FromAmp, Fl.FromHi);
  }
  id(): string | null {
    return this.str(F.IdOff, F.IdLen, Fl.IdAmp, Fl.IdHi);
  }
  typeString(): string | null {
    return this.str(F.TypeOff, F.TypeLen, Fl.TypeAmp);
  }
  childName(): string | null {
    return this.f(F.ChildCount) > 0 ? this.str(F.ChildNameOff, F.ChildNameLen, 0) : null;
  }
  childNamespace(): string | null {
    return this.f(F.ChildCount) > 0 ? (this.str(F.ChildNsOff, F.ChildNsLen, Fl.ChildNsAmp) ?? '') : null;
  }
  raw(): Buffer {
    return Buffer.from(this.core.buf.subarray(this.f(F.Start), this.f(F.End)));
  }
  toString(): string {
    return this.core.buf.toString('utf8', this.f(F.Start), this.f(F.End));
  }
}

const TOKEN_END = new Set([0x20, 0x09, 0x0a, 0x0d, 0x3d, 0x3e, 0x2f, 0x22, 0x27, 0x3c]);

class Parser implements StreamParser {
  private state: number;
  private readonly slot: number;
  private readonly view: View;
  private readonly limits: ParserLimits = { ...DEFAULT_LIMITS };
  /** Bytes of the stream fed so far (for CoreError.offset). */
  private fed = 0;
  private running = false;
  /** Set when the rest of the current batch was given back to the core (see suspend). */
  private rewound = false;
  private failed = false;
  private epoch = 0;
  private queue: Uint8Array[] = [];

  constructor(
    private readonly core: CoreImpl,
    private readonly handler: ParserHandler,
    limits?: Partial<ParserLimits>,
  ) {
    this.state = core.ex.newState();
    core.refresh();
    core.parsers++;
    this.slot = this.state >>> 2;
    this.view = new View(core);
    this.setLimits(limits ?? {});
  }

  setLimits(limits: Partial<ParserLimits>): void {
    Object.assign(this.limits, limits);
    if (!this.state) return;
    // Limits apply from the next element: stanzas of the current batch after this one are read
    // again under the new limits.
    if (this.core.batch === this) this.suspend();
    const i32 = this.core.i32;
    const clamp = (v: number, cap: number) => Math.max(1, Math.min(cap, Math.floor(v)));
    i32[this.slot + F.MaxBytes] = clamp(this.limits.maxStanzaBytes, LIMIT_CAPS.maxStanzaBytes);
    i32[this.slot + F.MaxDepth] = clamp(this.limits.maxDepth, LIMIT_CAPS.maxDepth);
    i32[this.slot + F.MaxAttrs] = clamp(this.limits.maxAttributes, LIMIT_CAPS.maxAttributes);
  }

  feed(chunk: Uint8Array): void {
    if (!this.state || this.failed || chunk.length === 0) return;
    if (this.running) {
      // fed from inside one of our own handler calls: parse after the current chunk
      this.queue.push(Uint8Array.from(chunk));
      return;
    }
    this.running = true;
    try {
      this.parse(chunk);
      while (this.queue.length > 0 && this.state && !this.failed) this.parse(this.queue.shift()!);
    } finally {
      // a handler threw in the middle of a batch: the stanzas after it stay unread
      if (this.core.batch === this) this.suspend();
      this.running = false;
      this.queue.length = 0;
    }
  }

  /**
   * Give the stanzas of the current batch after the one being handled back to the core, which
   * reads them again at the next `run`: before another parser runs on this instance (it reuses
   * the ring and may take the scratch window), or when the limits change.
   */
  suspend(): void {
    const core = this.core;
    core.batch = null;
    this.core.ex.rewind(this.state, core.i32[this.view.d + F.End]);
    this.rewound = true;
  }

  /** Hand n stanzas of the ring to the handler; false when it reset or freed the parser. */
  private dispatch(n: number, epoch: number): boolean {
    const core = this.core;
    const handler = this.handler;
    const view = this.view;
    core.batch = this;
    this.rewound = false;
    for (let i = 0; i < n; i++) {
      view.d = core.ring + i * R.Slots;
      handler.onStanza(view);
      if (this.epoch !== epoch || !this.state) {
        if (core.batch === this) core.batch = null;
        return false;
      }
      if (this.rewound) {
        this.rewound = false;
        return true;
      }
    }
    core.batch = null;
    return true;
  }

  private parse(chunk: Uint8Array): void {
    const core = this.core;
    const ex = core.ex;
    // a handler of another parser fed this one: that parser's unhandled stanzas go back first
    if (core.batch !== null) core.batch.suspend();
    const ptr = ex.prepare(this.state, chunk.length);
    core.refresh();
    core.buf.set(chunk, ptr);
    this.fed += chunk.length;
    const epoch = this.epoch;
    const state = this.state;
    for (;;) {
      const ev = ex.run(state);
      core.refresh();
      if (ev >= 16) {
        if (!this.dispatch(ev >>> 4, epoch)) return;
        continue;
      }
      switch (ev) {
        case Ev.NeedMore:
          return;
        case Ev.StreamOpen:
          this.handler.onStreamOpen(this.header());
          break;
        case Ev.StreamClose:
          this.handler.onStreamClose();
          break;
        case Ev.Error:
          this.failed = true;
          this.handler.onError(this.error());
          return;
      }
      // the handler reset or freed this parser: the rest of the chunk belongs to no stream
      if (this.epoch !== epoch || !this.state) return;
    }
  }

  private header(): StreamHeader {
    const { buf, i32, attrTable } = this.core;
    const s = this.slot;
    const start = i32[s + F.Start];
    const h: StreamHeader = {
      name: buf.toString('utf8', start + 1, i32[s + F.NameEnd]),
      namespace: buf.toString('utf8', i32[s + F.NsOff], i32[s + F.NsOff] + i32[s + F.NsLen]),
      defaultNamespace: null,
      to: null,
      from: null,
      id: null,
      version: null,
      lang: null,
      hadXmlDeclaration: (i32[s + F.Flags] & Fl.HadXmlDecl) !== 0,
      declaredPrefixes: [],
    };
    const n = i32[s + F.AttrCount];
    for (let i = 0; i < n; i++) {
      const e = (attrTable >>> 2) + i * A.Size;
      const no = start + i32[e + A.NameOff];
      const name = buf.toString('latin1', no, no + i32[e + A.NameLen]);
      const vo = start + i32[e + A.ValOff];
      let value = buf.toString('utf8', vo, vo + i32[e + A.ValLen]);
      if (i32[e + A.Amp]) value = decodeEntities(value);
      switch (name) {
        case 'xmlns':
          h.defaultNamespace = value;
          break;
        case 'to':
          h.to = value;
          break;
        case 'from':
          h.from = value;
          break;
        case 'id':
          h.id = value;
          break;
        case 'version':
          h.version = value;
          break;
        case 'xml:lang':
          h.lang = value;
          break;
        default:
          if (name.startsWith('xmlns:')) h.declaredPrefixes!.push(name.slice(6));
      }
    }
    return h;
  }

  private error(): CoreError {
    const { buf, i32 } = this.core;
    const s = this.slot;
    const code = i32[s + F.ErrCode];
    const at = i32[s + F.ErrAddr];
    let e = at;
    // the offending token, as far as the core has received it
    const limit = Math.min(i32[s + F.WinEnd], at + 48);
    while (e < limit && (e === at || !TOKEN_END.has(buf[e]))) e++;
    const token = buf.toString('utf8', at, e);
    const { condition, message } = describeCode(code, token);
    return { code, condition, message, offset: this.fed - (i32[s + F.WinEnd] - at) };
  }

  rest(): Uint8Array {
    const i32 = this.core.i32;
    const end = i32[this.view.d + F.End];
    const winEnd = i32[this.slot + F.WinEnd];
    // Queued chunks (fed from inside a handler) follow the window: they belong to the rest too.
    const tail = this.core.buf.subarray(end, Math.max(end, winEnd));
    if (this.queue.length === 0) return Uint8Array.from(tail);
    return Buffer.concat([tail, ...this.queue]);
  }

  reset(): void {
    if (!this.state) return;
    this.core.ex.resetState(this.state);
    this.fed = 0;
    this.failed = false;
    this.epoch++;
    this.queue.length = 0;
  }

  free(): void {
    if (!this.state) return;
    this.core.ex.freeState(this.state);
    this.state = 0;
    this.core.parsers--;
    this.epoch++;
  }
}

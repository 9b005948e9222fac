/**
 * Scenario scripts: plain-text conversations driven through the real stanza parser and the real
 * router, with in-memory storage and fake client sessions (no sockets).
 *
 *   # Title of the scenario (the first comment line names the test)
 *   @registration open            options: @domain, @registration, @max-resources, @offline-limit,
 *                                  @mam always|never|roster (XEP-0313 server default; unset = the
 *                                  router's own: only accounts with preferences are archived),
 *                                  @max-roster-items, @muc (XEP-0045 service on conference.<domain>,
 *                                  small bounds: 3 rooms, 4 occupants, history 3, 1 KiB messages),
 *                                  @muc-archive (the same, rooms archiving by default: XEP-0313 §5),
 *                                  @upload (XEP-0363 service on upload.<domain>: files at
 *                                  https://files.example, at most 1000 bytes, quota 1500 bytes),
 *                                  @contact KIND URI… (XEP-0157 addresses, e.g. @contact abuse mailto:a@b)
 *   account alice                  create alice@localhost (password 'secret')
 *   alice has contact bob subscription=both ask=subscribe name=Bob groups=Friends,Work approved
 *   alice connects                 session 'alice' bound as alice@localhost/res
 *   alice/phone connects           session 'alice/phone' bound as alice@localhost/phone
 *   alice/x connects without resource     the server generates the resource
 *   alice/new connects as phone    session 'alice/new' binds resource 'phone'
 *   alice/y connects and is refused: resource-constraint
 *   alice is available             connects (if needed), sends <presence/>, takes its own echo
 *   alice requests roster          sends a roster get and takes the result
 *   alice sends: <message to='bob@localhost'><body>hi</body></message>
 *   bob receives: <message from='alice@localhost/res' to='bob@localhost'><body>hi</body></message>
 *   bob receives nothing
 *   alice disconnects
 *   alice is closed: conflict
 *   guest sends unauthenticated: <iq type='get' id='r1'><query xmlns='jabber:iq:register'/></iq>
 *   guest is refused               routeUnauthenticated (or, for a bound session, nonza) returned false
 *   expect roster of alice: bob subscription=both ask=none
 *   expect roster of alice: no bob
 *   expect pending of bob: alice   /   expect no pending of bob: alice
 *   expect offline of bob: 2
 *   expect archive of bob: 2       messages in bob's XEP-0313 archive
 *   expect account alice           /   expect no account alice
 *   expect blocklist of alice: eve@localhost spam.example   (stored order; empty after ':' = none)
 *
 * Lines starting with whitespace continue the previous line. Expected XML is compared
 * canonically (canonical.ts): any attribute order or quote style, `*` wildcards. At the end every
 * session must have consumed everything it received: nothing may arrive unannounced.
 */
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { DEFAULT_LIMITS, StanzaKind, type StanzaView } from '../../src/core/api.js';
import { StanzaError, type StreamError } from '../../src/errors.js';
import { Jid } from '../../src/jid.js';
import { createRouter, type HermodRouter } from '../../src/router/index.js';
import type { ClientSession } from '../../src/router/types.js';
import { muc } from '../../src/muc/service.js';
import { UploadFiles } from '../../src/upload/files.js';
import { upload } from '../../src/upload/module.js';
import { SlotSigner } from '../../src/upload/slot.js';
import { createMemoryStorage } from '../../src/storage/memory.js';
import type { RosterItem, Storage } from '../../src/storage/types.js';
import { xmlDiff } from './canonical.js';
import { jsView } from './js-view.js';

/** Turns the text of one stanza into StanzaViews, one call per stanza. */
export interface Feeder {
  feed(xml: string): void;
}
export type FeederFactory = (onStanza: (view: StanzaView) => void) => Feeder;

const STREAM_HEADER =
  "<stream:stream xmlns='jabber:client' xmlns:stream='http://etherx.jabber.org/streams' to='localhost' version='1.0'>";

/**
 * The real WASM core when it is built and loadable, else null. With `split`, every stanza is fed
 * in pieces of 1, 2, 3, … bytes (cycling), so that stanzas straddle chunks and multi-byte
 * characters are cut: the offsets the router splices with must survive reassembly.
 */
export async function coreFeederFactory(split = false): Promise<FeederFactory | null> {
  let mod: { loadCore?: () => unknown };
  try {
    mod = (await import('../../src/core/parser.js' as string)) as { loadCore?: () => unknown };
  } catch {
    return null;
  }
  if (typeof mod.loadCore !== 'function') return null;
  const core = (await mod.loadCore()) as {
    createParser(handler: object, limits: typeof DEFAULT_LIMITS): { feed(chunk: Uint8Array): void };
  };
  return (onStanza) => {
    const parser = core.createParser(
      {
        onStreamOpen() {},
        onStanza,
        onStreamClose() {},
        onError(e: { condition: string; message: string }) {
          throw new Error(`core refused the stream: ${e.condition}: ${e.message}`);
        },
      },
      DEFAULT_LIMITS,
    );
    parser.feed(Buffer.from(STREAM_HEADER));
    if (!split) return { feed: (xml) => parser.feed(Buffer.from(xml, 'utf8')) };
    let size = 1;
    return {
      feed: (xml) => {
        const bytes = Buffer.from(xml, 'utf8');
        for (let at = 0; at < bytes.length; at += size, size = (size % 5) + 1) {
          parser.feed(bytes.subarray(at, Math.min(bytes.length, at + size)));
        }
      },
    };
  };
}

export const jsFeederFactory: FeederFactory = (onStanza) => ({ feed: (xml) => onStanza(jsView(xml)) });

class FakeSession implements ClientSession {
  private static nextId = 1;
  readonly id = FakeSession.nextId++;
  jid: Jid | null = null;
  readonly inbox: string[] = [];
  closed: StreamError | null | undefined = undefined;
  constructor(readonly account: Jid) {}
  send(data: Uint8Array | string): void {
    if (this.closed !== undefined) throw new Error(`${this.jid} was sent data after close: ${String(data)}`);
    this.inbox.push(typeof data === 'string' ? data : Buffer.from(data).toString('utf8'));
  }
  close(error?: StreamError): void {
    this.closed = error ?? null;
  }
}

interface Client {
  session: FakeSession;
  feeder: Feeder | null;
}

interface Step {
  line: number;
  text: string;
}

export interface ScenarioOptions {
  feeder: FeederFactory;
  now?: Date;
}

export function parseSteps(script: string): Step[] {
  const steps: Step[] = [];
  script.split('\n').forEach((raw, i) => {
    if (/^\s*#/.test(raw) || raw.trim() === '') return;
    if (/^\s/.test(raw) && steps.length > 0) steps[steps.length - 1]!.text += raw.trim();
    else steps.push({ line: i + 1, text: raw.trim() });
  });
  return steps;
}

export function scenarioTitle(script: string, fallback: string): string {
  const m = /^\s*#\s*(.+)$/m.exec(script);
  return m ? m[1]!.trim() : fallback;
}

export class Scenario {
  domain = 'localhost';
  registration: 'open' | 'closed' = 'closed';
  maxResources = 10;
  offlineLimit = 100;
  maxRosterItems = 1000;
  mamDefault: 'always' | 'never' | 'roster' | null = null;
  muc = false;
  /** XEP-0313 room archives on (rooms archive by default). */
  mucArchive = false;
  upload = false;
  /** XEP-0157 addresses by kind (`@contact abuse mailto:…`). */
  contact: Record<string, string[]> = {};
  private store: Storage | null = null;
  private router: HermodRouter | null = null;
  private readonly clients = new Map<string, Client>();
  private readonly guests = new Map<string, string[]>();
  private refused = new Set<string>();

  constructor(private readonly options: ScenarioOptions) {}

  get storage(): Storage {
    this.store ??= createMemoryStorage({ iterations: 1, offlineLimit: this.offlineLimit });
    return this.store;
  }

  private get r(): HermodRouter {
    this.router ??= createRouter({
      domain: this.domain,
      storage: this.storage,
      registration: this.registration,
      maxResources: this.maxResources,
      now: () => this.options.now ?? new Date('2026-01-01T00:00:00.000Z'),
      version: '1.2.3',
      passwordIterations: 1,
      maxRosterItems: this.maxRosterItems,
      contact: this.contact,
      ...(this.mamDefault ? { mam: { default: this.mamDefault, maxAge: 0, maxPerUser: 0, purgeInterval: 0 } } : {}),
    });
    if (this.muc) {
      const archive = this.mucArchive ? { archive: true, archiveDefault: true } : {};
      muc({ domain: `conference.${this.domain}`, maxRooms: 3, maxOccupants: 4, historySize: 3, maxMessageBytes: 1024, ...archive }).install(this.router);
    }
    if (this.upload) {
      // Slot signing and quotas need no HTTP service: files live in a folder nothing writes to.
      upload({
        domain: `upload.${this.domain}`,
        publicUrl: 'https://files.example',
        maxFileSize: 1000,
        quota: 1500,
        slotLifetime: 300_000,
        signer: new SlotSigner(Buffer.alloc(32, 7)),
        files: new UploadFiles(join(tmpdir(), 'hermod-scenario-uploads-never-written')),
      }).install(this.router);
    }
    return this.router;
  }

  private bareOf(name: string): string {
    return name.includes('@') ? Jid.parse(name).bare : `${name}@${this.domain}`;
  }

  private client(alias: string): Client {
    const c = this.clients.get(alias);
    if (!c) throw new Error(`no session '${alias}' (connect it first)`);
    return c;
  }

  private connect(alias: string, generated: boolean, resource?: string): void {
    if (this.clients.has(alias)) throw new Error(`'${alias}' is already connected`);
    const [name, res] = alias.split('/') as [string, string | undefined];
    const session = new FakeSession(Jid.parse(this.bareOf(name)));
    session.jid = this.r.bind(session, generated ? null : (resource ?? res ?? 'res'));
    const client: Client = { session, feeder: null };
    client.feeder = this.options.feeder((view) => {
      // Non-stanza elements (XEP-0352 <active/>, …) go where the stream layer sends them.
      if (view.kind === StanzaKind.Other) {
        if (!this.r.nonza(session, view)) this.refused.add(alias);
      } else this.r.route(session, view);
    });
    this.clients.set(alias, client);
  }

  private take(alias: string): string | undefined {
    const box = this.clients.get(alias)?.session.inbox ?? this.guests.get(alias);
    if (!box) throw new Error(`no session '${alias}'`);
    return box.shift();
  }

  private pending(alias: string): string[] {
    return this.clients.get(alias)?.session.inbox ?? this.guests.get(alias) ?? [];
  }

  async run(script: string): Promise<void> {
    for (const step of parseSteps(script)) {
      try {
        // Some answers come after the event loop turns (XEP-0077 derives credentials off-loop):
        // an expectation waits for its stanza to arrive before comparing.
        const m = /^(\S+) receives: /.exec(step.text);
        if (m) await this.arrival(m[1]!);
        this.step(step.text);
      } catch (err) {
        const e = err as Error;
        e.message = `line ${step.line}: ${step.text}\n  ${e.message}`;
        throw e;
      }
    }
    const left = [...this.clients.keys(), ...this.guests.keys()].filter((a) => this.pending(a).length > 0);
    if (left.length > 0) {
      throw new Error(
        'unconsumed stanzas at the end:\n' + left.map((a) => `  ${a}: ${this.pending(a).join('\n      ')}`).join('\n'),
      );
    }
  }

  private async arrival(alias: string): Promise<void> {
    for (let i = 0; i < 400 && this.pending(alias).length === 0; i++) await new Promise((r) => setTimeout(r, 5));
  }

  private step(text: string): void {
    let m: RegExpExecArray | null;
    if ((m = /^@domain\s+(\S+)$/.exec(text))) return void (this.domain = m[1]!);
    if ((m = /^@registration\s+(open|closed)$/.exec(text))) return void (this.registration = m[1] as 'open' | 'closed');
    if ((m = /^@max-resources\s+(\d+)$/.exec(text))) return void (this.maxResources = Number(m[1]));
    if ((m = /^@offline-limit\s+(\d+)$/.exec(text))) return void (this.offlineLimit = Number(m[1]));
    if ((m = /^@max-roster-items\s+(\d+)$/.exec(text))) return void (this.maxRosterItems = Number(m[1]));
    if (text === '@muc') return void (this.muc = true);
    if (text === '@muc-archive') return void (this.muc = this.mucArchive = true);
    if (text === '@upload') return void (this.upload = true);
    if ((m = /^@contact\s+(\S+)\s+(.+)$/.exec(text))) return void (this.contact[m[1]!] = m[2]!.trim().split(/\s+/));
    if ((m = /^@mam\s+(always|never|roster)$/.exec(text))) return void (this.mamDefault = m[1] as 'always' | 'never' | 'roster');
    if ((m = /^account\s+(\S+)$/.exec(text))) return this.storage.users.create(this.bareOf(m[1]!), 'secret');
    if ((m = /^(\S+) has contact (\S+)(.*)$/.exec(text))) return this.seedContact(m[1]!, m[2]!, m[3]!);
    if ((m = /^(\S+) connects( without resource)?$/.exec(text))) return this.connect(m[1]!, !!m[2]);
    if ((m = /^(\S+) connects as (\S+)$/.exec(text))) return this.connect(m[1]!, false, m[2]!);
    if ((m = /^(\S+) connects and is refused: (\S+)$/.exec(text))) {
      try {
        this.connect(m[1]!, false);
      } catch (err) {
        if (err instanceof StanzaError && err.condition === m[2]) return;
        throw err;
      }
      throw new Error('bind was not refused');
    }
    if ((m = /^(\S+) is available$/.exec(text))) {
      if (!this.clients.has(m[1]!)) this.connect(m[1]!, false);
      const c = this.client(m[1]!);
      c.feeder!.feed('<presence/>');
      return this.expect(m[1]!, `<presence from='${c.session.jid!.full}'/>`);
    }
    if ((m = /^(\S+) requests roster$/.exec(text))) {
      this.client(m[1]!).feeder!.feed("<iq type='get' id='roster-get'><query xmlns='jabber:iq:roster'/></iq>");
      return this.expect(m[1]!, "<iq type='result' id='roster-get' to='*'>*</iq>");
    }
    if ((m = /^(\S+) sends: (.+)$/.exec(text))) return this.client(m[1]!).feeder!.feed(m[2]!);
    if ((m = /^(\S+) sends unauthenticated: (.+)$/.exec(text))) return this.unauthenticated(m[1]!, m[2]!);
    if ((m = /^(\S+) is refused$/.exec(text))) {
      if (!this.refused.delete(m[1]!)) throw new Error(`the last stanza of '${m[1]}' was not refused`);
      return;
    }
    if ((m = /^(\S+) receives: (.+)$/.exec(text))) return this.expect(m[1]!, m[2]!);
    if ((m = /^(\S+) receives nothing$/.exec(text))) {
      const left = this.pending(m[1]!);
      if (left.length) throw new Error(`'${m[1]}' received:\n  ${left.join('\n  ')}`);
      return;
    }
    if ((m = /^(\S+) disconnects$/.exec(text))) {
      const c = this.client(m[1]!);
      c.session.close();
      this.r.unbind(c.session);
      return;
    }
    if ((m = /^(\S+) is closed: (\S+)$/.exec(text))) {
      const c = this.client(m[1]!);
      if (c.session.closed === undefined) throw new Error(`'${m[1]}' is still open`);
      if (c.session.closed?.condition !== m[2]) throw new Error(`closed with ${c.session.closed?.condition ?? 'no error'}`);
      return;
    }
    if ((m = /^expect roster of (\S+): no (\S+)$/.exec(text))) {
      const item = this.storage.rosters.get(this.bareOf(m[1]!), this.bareOf(m[2]!));
      if (item) throw new Error(`roster item present: ${JSON.stringify(item)}`);
      return;
    }
    if ((m = /^expect roster of (\S+): (\S+)(.*)$/.exec(text))) return this.expectItem(m[1]!, m[2]!, m[3]!);
    if ((m = /^expect (no )?pending of (\S+): (\S+)$/.exec(text))) {
      const p = this.storage.rosters.getPending(this.bareOf(m[2]!), this.bareOf(m[3]!));
      if (!!p === !!m[1]) throw new Error(m[1] ? 'a pending request exists' : 'no pending request');
      return;
    }
    if ((m = /^expect offline of (\S+): (\d+)$/.exec(text))) {
      const n = this.storage.offline.count(this.bareOf(m[1]!));
      if (n !== Number(m[2])) throw new Error(`${n} offline messages`);
      return;
    }
    if ((m = /^expect archive of (\S+): (\d+)$/.exec(text))) {
      const n = this.storage.mam.query(this.bareOf(m[1]!), { max: 0 }).count;
      if (n !== Number(m[2])) throw new Error(`${n} archived messages`);
      return;
    }
    if ((m = /^expect blocklist of (\S+):(.*)$/.exec(text))) {
      const got = this.storage.blocklist.list(this.bareOf(m[1]!)).join(' ');
      if (got !== m[2]!.trim()) throw new Error(`blocklist is '${got}'`);
      return;
    }
    if ((m = /^expect (no )?account (\S+)$/.exec(text))) {
      if (this.storage.users.exists(this.bareOf(m[2]!)) === !!m[1]) throw new Error(m[1] ? 'account exists' : 'no such account');
      return;
    }
    throw new Error('unknown step');
  }

  private expect(alias: string, expected: string): void {
    const got = this.take(alias);
    if (got === undefined) throw new Error(`'${alias}' received nothing; expected ${expected}`);
    const diff = xmlDiff(expected, got);
    if (diff) {
      const rest = this.pending(alias);
      throw new Error(
        `'${alias}' received\n    ${got}\n  expected\n    ${expected}\n  ${diff}` +
          (rest.length ? `\n  then queued:\n    ${rest.join('\n    ')}` : ''),
      );
    }
  }

  private unauthenticated(alias: string, xml: string): void {
    if (!this.guests.has(alias)) this.guests.set(alias, []);
    const box = this.guests.get(alias)!;
    const feeder = this.options.feeder((view) => {
      if (!this.r.routeUnauthenticated(view, (data) => box.push(data))) this.refused.add(alias);
    });
    feeder.feed(xml);
  }

  private seedContact(owner: string, contact: string, rest: string): void {
    const opts = parseOptions(rest);
    const item: RosterItem = {
      jid: this.bareOf(contact),
      name: opts.name ?? null,
      groups: opts.groups ? opts.groups.split(',') : [],
      subscription: (opts.subscription ?? 'none') as RosterItem['subscription'],
      ask: opts.ask === 'subscribe' ? 'subscribe' : null,
      approved: 'approved' in opts,
    };
    this.storage.rosters.set(this.bareOf(owner), item);
  }

  private expectItem(owner: string, contact: string, rest: string): void {
    const item = this.storage.rosters.get(this.bareOf(owner), this.bareOf(contact));
    if (!item) throw new Error('no such roster item');
    const opts = parseOptions(rest);
    const actual: Record<string, string> = {
      subscription: item.subscription,
      ask: item.ask ?? 'none',
      approved: String(item.approved),
      name: item.name ?? '',
      groups: item.groups.join(','),
    };
    for (const [k, v] of Object.entries(opts)) {
      if (actual[k] !== (v === '' && k === 'approved' ? 'true' : v)) {
        throw new Error(`roster item ${k} is '${actual[k]}', expected '${v}' (${JSON.stringify(item)})`);
      }
    }
  }
}

function parseOptions(text: string): Record<string, string> {
  const out: Record<string, string> = {};
  for (const m of text.matchAll(/(\w+)(?:=(\S+))?/g)) out[m[1]!] = m[2] ?? '';
  return out;
}

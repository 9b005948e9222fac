/**
 * A lean XMPP c2s client for load generation: one object and one socket per session, no element
 * tree, no event emitter. It negotiates a stream the way RFC 6120 orders it — optional STARTTLS
 * (§5), optional in-band registration (XEP-0077), SASL (§6: PLAIN per RFC 4616 or SCRAM per
 * RFC 5802/7677), stream restart, resource binding (§7) and, where a server still demands it,
 * the RFC 3921 session IQ — then hands every stanza to the scenario as a raw string.
 */
import net from 'node:net';
import tls from 'node:tls';
import { childText, elementName, escapeXml, rootAttr, StanzaFramer, type FrameSink } from './framing.js';
import { SCRAM_MECHANISMS, ScramClient } from './scram.js';
import { nowUs } from './stats.js';

export type SaslChoice = 'auto' | 'plain' | 'scram-sha-1' | 'scram-sha-256';

export interface ClientConfig {
  host: string;
  port: number;
  domain: string;
  password: string;
  resource: string;
  sasl: SaslChoice;
  /** Negotiate STARTTLS when offered (RFC 6120 §5); certificates are not verified (bench only). */
  starttls: boolean;
  /** Give up on a negotiation that has not finished in this time. */
  timeoutMs: number;
  /**
   * Send the stream restart and the bind request right behind the last SASL message, without
   * waiting for <success/> (saves two round trips; the server must carry them across the restart).
   */
  pipeline?: boolean;
}

export interface ClientEvents {
  /** Session bound and usable; `client.loginUs` holds how long it took. */
  ready(c: LoadClient): void;
  /** XEP-0077 outcome for a register-only client; it closes right after. */
  registered?(c: LoadClient, created: boolean): void;
  message(c: LoadClient, xml: string): void;
  presence(c: LoadClient, xml: string): void;
  /** The session failed or ended: `reason` is null for a close this side asked for. */
  closed(c: LoadClient, reason: string | null): void;
}

type State = 'connecting' | 'tls' | 'register' | 'auth' | 'bind' | 'session' | 'ready' | 'closing' | 'closed';

const NS_TLS = 'urn:ietf:params:xml:ns:xmpp-tls';
const NS_SASL = 'urn:ietf:params:xml:ns:xmpp-sasl';
const NS_BIND = 'urn:ietf:params:xml:ns:xmpp-bind';
const NS_SESSION = 'urn:ietf:params:xml:ns:xmpp-session';
const NS_REGISTER = 'jabber:iq:register';
const STREAM_END = Buffer.from('</stream:stream>');
/** `--sasl auto`: strongest first. */
export const AUTO_PREFERENCE = ['SCRAM-SHA-256', 'SCRAM-SHA-1', 'PLAIN'];

let pending: LoadClient[] = [];
let flushScheduled = false;
function flushAll(): void {
  flushScheduled = false;
  const list = pending;
  pending = [];
  for (const c of list) c.flush();
}

/**
 * What every client of one configuration writes alike (stream header, bind request), encoded
 * once: a login writes prebuilt bytes instead of building and encoding the same strings again.
 */
interface Prebuilt {
  header: Buffer;
  bind: Buffer;
  /** The restart and the bind request in one write (`pipeline`). */
  headerAndBind: string;
}
const prebuilt = new WeakMap<ClientConfig, Prebuilt>();
function prebuiltFor(cfg: ClientConfig): Prebuilt {
  let p = prebuilt.get(cfg);
  if (!p) {
    // RFC 6120 §4.7: 'to' names the service; version='1.0' asks for stream features.
    const header = `<?xml version='1.0'?><stream:stream to='${escapeXml(cfg.domain)}' xmlns='jabber:client' xmlns:stream='http://etherx.jabber.org/streams' version='1.0'>`;
    const bind = `<iq type='set' id='bind1'><bind xmlns='${NS_BIND}'><resource>${escapeXml(cfg.resource)}</resource></bind></iq>`;
    p = { header: Buffer.from(header), bind: Buffer.from(bind), headerAndBind: header + bind };
    prebuilt.set(cfg, p);
  }
  return p;
}

/**
 * The mechanism picked for a <stream:features/> (the same bytes for every login to one server),
 * remembered for the last features seen instead of parsed per login.
 */
let lastFeatures = '';
let lastOffered: Set<string> = new Set();
function offeredIn(features: string): Set<string> {
  if (features === lastFeatures) return lastOffered;
  const offered = new Set<string>();
  const mechs = childText(features, 'mechanisms') ?? '';
  for (let at = mechs.indexOf('<mechanism>'); at >= 0; at = mechs.indexOf('<mechanism>', at + 1)) {
    offered.add(mechs.slice(at + 11, mechs.indexOf('</mechanism>', at)).trim());
  }
  lastFeatures = features;
  lastOffered = offered;
  return offered;
}

/**
 * Deadlines (login timeout, the close's grace period) checked by one sweep for the whole
 * swarm instead of a timer per client: arming and clearing a Timeout per login was a visible
 * share of the tool's own CPU.
 */
const SWEEP_MS = 100;
const timed = new Set<LoadClient>();
let sweeper: NodeJS.Timeout | null = null;
function sweep(): void {
  const now = performance.now();
  for (const c of timed) if (c.deadline <= now) c.expire();
  if (timed.size === 0 && sweeper) {
    clearInterval(sweeper);
    sweeper = null;
  }
}
function watch(c: LoadClient, ms: number): void {
  c.deadline = performance.now() + ms;
  timed.add(c);
  if (!sweeper) {
    sweeper = setInterval(sweep, SWEEP_MS);
    sweeper.unref();
  }
}

/**
 * Socket listeners shared by every client (one function each, not three closures per socket):
 * the client is found on the socket.
 */
const CLIENT = Symbol('load-client');
type Tagged = net.Socket & { [CLIENT]: LoadClient };
function onConnect(this: Tagged): void {
  this[CLIENT].openStream();
}
function onData(this: Tagged, chunk: string): void {
  this[CLIENT].received(chunk);
}
function onError(this: Tagged, err: NodeJS.ErrnoException): void {
  this[CLIENT].fail(err.code ?? err.message);
}
function onClose(this: Tagged): void {
  const c = this[CLIENT];
  c.fail(c.state === 'closing' ? null : 'connection closed by server');
}

export class LoadClient implements FrameSink {
  /** Global index of this account in the swarm (user = prefix + index). */
  readonly index: number;
  readonly user: string;
  readonly bare: string;
  jid = '';
  state: State = 'connecting';
  /** Connect-to-bound time in µs, once ready. */
  loginUs = 0;
  /** The SASL mechanism this client authenticated with (set when it sends <auth/>). */
  mechanism = '';
  /** Scenario-owned data (contacts, counters). */
  data: any = null;

  /** @internal performance.now() at which the sweep expires this client (see watch()). */
  deadline = 0;

  private socket!: net.Socket;
  private readonly pre: Prebuilt;
  private readonly framer = new StanzaFramer(this);
  private authenticated = false;
  private tlsDone = false;
  private registerOnly = false;
  private registerDone = false;
  private scram: ScramClient | null = null;
  private sessionRequired = false;
  /** The restart and bind went out behind the last SASL message (`pipeline`). */
  private bindSent = false;
  private startedAt = 0;
  private closeReason: string | null = null;

  constructor(
    private readonly cfg: ClientConfig,
    private readonly events: ClientEvents,
    index: number,
    user: string,
  ) {
    this.index = index;
    this.user = user;
    this.bare = `${user}@${cfg.domain}`;
    this.pre = prebuiltFor(cfg);
  }

  /** Open the TCP connection and log in; with `registerOnly`, register (XEP-0077) and leave. */
  start(registerOnly = false): void {
    this.registerOnly = registerOnly;
    this.startedAt = nowUs();
    watch(this, this.cfg.timeoutMs);
    const s = net.connect(this.cfg.port, this.cfg.host);
    s.setNoDelay(true);
    s.on('connect', onConnect);
    this.attach(s);
  }

  private attach(s: net.Socket): void {
    this.socket = s;
    (s as Tagged)[CLIENT] = this;
    s.setEncoding('utf8');
    s.on('data', onData);
    s.on('error', onError);
    s.on('close', onClose);
  }

  /** @internal a chunk from the socket */
  received(chunk: string): void {
    try {
      this.framer.push(chunk);
    } catch (err) {
      this.fail(`client error: ${(err as Error).message}`);
    }
  }

  /** @internal the sweep found this client past its deadline */
  expire(): void {
    timed.delete(this);
    if (this.state === 'closing') this.socket.destroy();
    else this.fail(`timeout in state ${this.state}`);
  }

  /**
   * Negotiation output: one element per turn, which the server answers before the client goes
   * on, so it is written at once rather than queued for the end of the turn.
   */
  private write(data: string | Buffer): void {
    if (this.state !== 'closed') this.socket.write(data);
  }

  /**
   * Queue bytes for this turn of the event loop; all queued output is written once per turn
   * (one syscall per socket however many stanzas), so the swarm's own cost stays below the
   * servers it measures.
   */
  send(xml: string): void {
    if (this.state === 'closed') return;
    if (this.outbox === '') {
      this.outbox = xml;
      pending.push(this);
      if (!flushScheduled) {
        flushScheduled = true;
        setImmediate(flushAll);
      }
    } else {
      this.outbox += xml;
    }
  }

  /** @internal written by flushAll */
  outbox = '';

  /** @internal */
  flush(): void {
    const out = this.outbox;
    this.outbox = '';
    if (this.state !== 'closed' && out) this.socket.write(out);
  }

  /** True while the socket's send buffer is not over its high-water mark. */
  get writable(): boolean {
    return this.state === 'ready' && !this.socket.writableNeedDrain && this.outbox.length < 65536;
  }

  /** Close the stream politely (RFC 6120 §4.4) and the socket shortly after. */
  close(): void {
    if (this.state === 'closed' || this.state === 'closing') return;
    this.flush();
    this.state = 'closing';
    this.socket.end(STREAM_END);
    watch(this, 2000);
  }

  /** @internal */
  fail(reason: string | null): void {
    if (this.state === 'closed') return;
    const wasClosing = this.state === 'closing';
    this.state = 'closed';
    timed.delete(this);
    this.closeReason = wasClosing ? null : reason;
    this.socket?.destroy();
    this.events.closed(this, this.closeReason);
  }

  /** @internal */
  openStream(): void {
    this.socket.write(this.pre.header);
  }

  /** Stream restart (RFC 6120 §4.3.3) after STARTTLS or SASL success. */
  private restart(): void {
    this.framer.reset();
    this.openStream();
  }

  streamOpen(): void {}

  streamClose(): void {
    this.fail(this.state === 'closing' ? null : 'stream closed by server');
  }

  element(xml: string): void {
    if (this.state === 'ready') {
      const c = xml.charCodeAt(1);
      if (c === 0x6d /* m */ && xml.startsWith('<message')) return this.events.message(this, xml);
      if (c === 0x70 /* p */ && xml.startsWith('<presence')) return this.events.presence(this, xml);
      if (c === 0x69 /* i */ && xml.startsWith('<iq')) return this.readyIq(xml);
    }
    const name = elementName(xml);
    if (name === 'stream:error' || name === 'error') {
      return this.fail(`stream error: ${firstChildName(xml) ?? 'unknown'}`);
    }
    switch (this.state) {
      case 'connecting':
      case 'register':
      case 'auth':
        return this.negotiate(name, xml);
      case 'tls':
        if (name === 'proceed') return this.upgradeTls();
        return this.fail('STARTTLS refused');
      case 'bind':
      case 'session':
        if (name === 'stream:features' || name === 'features') return this.negotiate(name, xml);
        if (name === 'iq') return this.bindIq(xml);
        return;
      default:
        return;
    }
  }

  private negotiate(name: string, xml: string): void {
    if (name === 'stream:features' || name === 'features') return this.features(xml);
    if (name === 'iq' && this.state === 'register') return this.registerResult(xml);
    if (name === 'challenge') return this.scramChallenge(xml);
    if (name === 'success') return this.saslSuccess(xml);
    if (name === 'failure') return this.fail(`SASL failure: ${firstChildName(xml) ?? 'unknown'}`);
  }

  private features(xml: string): void {
    // RFC 6120 §5.3.1: STARTTLS first when wanted and offered.
    if (this.cfg.starttls && !this.tlsDone && xml.includes(NS_TLS)) {
      this.state = 'tls';
      this.write(`<starttls xmlns='${NS_TLS}'/>`);
      return;
    }
    if (!this.authenticated) {
      if (this.registerOnly && !this.registerDone) {
        // XEP-0077 §3.1: registration happens on the unauthenticated stream.
        this.state = 'register';
        const u = escapeXml(this.user);
        const p = escapeXml(this.cfg.password);
        this.write(`<iq type='set' id='reg1'><query xmlns='${NS_REGISTER}'><username>${u}</username><password>${p}</password></query></iq>`);
        return;
      }
      return this.authenticate(xml);
    }
    // RFC 6120 §7.2: bind a resource on the restarted stream.
    this.state = 'bind';
    // RFC 3921 §3 session establishment; RFC 6121 dropped it and servers mark it <optional/>.
    const at = xml.indexOf(NS_SESSION);
    if (at >= 0) {
      const close = xml.indexOf('</session>', at);
      this.sessionRequired = close >= 0 && !xml.slice(at, close).includes('<optional');
    }
    if (!this.bindSent) this.write(this.pre.bind);
  }

  private registerResult(xml: string): void {
    if (rootAttr(xml, 'id') !== 'reg1') return;
    const type = rootAttr(xml, 'type');
    // XEP-0077 §3.1: <conflict/> means the account exists, which is as good for a benchmark.
    const created = type === 'result';
    if (!created && !(type === 'error' && xml.includes('<conflict'))) {
      return this.fail(`registration refused: ${errorCondition(xml)}`);
    }
    this.registerDone = true;
    this.events.registered?.(this, created);
    this.close();
  }

  private authenticate(features: string): void {
    const offered = offeredIn(features);
    let mech: string | undefined;
    if (this.cfg.sasl === 'auto') {
      // What a real client picks (RFC 6120 §6.3.3 leaves the choice to it): the strongest SCRAM
      // offered, PLAIN only when nothing better is (Conversations, Gajim, Dino behave so).
      mech = AUTO_PREFERENCE.find((m) => offered.has(m));
    } else {
      mech = this.cfg.sasl.toUpperCase();
      if (!offered.has(mech)) mech = undefined;
    }
    if (!mech) return this.fail(`no usable SASL mechanism (offered: ${[...offered].join(' ') || 'none'})`);
    this.state = 'auth';
    this.mechanism = mech;
    let initial: string;
    if (mech === 'PLAIN') {
      // RFC 4616 §2: [authzid] NUL authcid NUL passwd
      initial = Buffer.from(`\0${this.user}\0${this.cfg.password}`).toString('base64');
    } else {
      this.scram = new ScramClient(SCRAM_MECHANISMS[mech], this.user, this.cfg.password);
      initial = Buffer.from(this.scram.first()).toString('base64');
    }
    const auth = `<auth xmlns='${NS_SASL}' mechanism='${mech}'>${initial}</auth>`;
    this.write(mech === 'PLAIN' ? this.pipelined(auth) : auth);
  }

  /** With `pipeline`: the last SASL message, then the new stream header and the bind request. */
  private pipelined(last: string): string {
    if (!this.cfg.pipeline) return last;
    this.bindSent = true;
    return last + this.pre.headerAndBind;
  }

  private scramChallenge(xml: string): void {
    if (!this.scram) return this.fail('unexpected SASL challenge');
    let final: string | Promise<string>;
    try {
      final = this.scram.final(Buffer.from(innerText(xml), 'base64').toString());
    } catch (err) {
      return this.fail((err as Error).message);
    }
    // Keys already derived for this account (a reconnect): answer in this turn, no promise hop.
    if (typeof final === 'string') return this.scramResponse(final);
    final.then(
      (text) => this.scramResponse(text),
      (err: Error) => this.fail(err.message),
    );
  }

  private scramResponse(final: string): void {
    this.write(this.pipelined(`<response xmlns='${NS_SASL}'>${Buffer.from(final).toString('base64')}</response>`));
  }

  private saslSuccess(xml: string): void {
    // RFC 6120 §6.3.10: SCRAM's server signature rides in <success/>; check it (mutual auth).
    if (this.scram && !this.scram.verify(Buffer.from(innerText(xml), 'base64').toString())) {
      return this.fail('SCRAM server signature mismatch');
    }
    this.authenticated = true;
    if (this.bindSent) {
      // Already restarted on our side: what follows <success/> is the server's new stream.
      this.framer.reset();
      this.state = 'bind';
      return;
    }
    this.restart();
  }

  private upgradeTls(): void {
    const raw = this.socket;
    raw.removeAllListeners('data');
    raw.removeAllListeners('close');
    raw.removeAllListeners('error');
    const s = tls.connect({ socket: raw, servername: this.cfg.domain, rejectUnauthorized: false });
    s.on('secureConnect', () => {
      this.tlsDone = true;
      this.state = 'connecting';
      this.framer.reset();
      this.openStream();
    });
    this.attach(s as unknown as net.Socket);
  }

  private bindIq(xml: string): void {
    const id = rootAttr(xml, 'id');
    if (id === 'bind1') {
      if (rootAttr(xml, 'type') !== 'result') return this.fail(`bind failed: ${errorCondition(xml)}`);
      this.jid = childText(xml, 'jid') ?? `${this.bare}/${this.cfg.resource}`;
      if (this.sessionRequired) {
        this.state = 'session';
        this.write(`<iq type='set' id='sess1'><session xmlns='${NS_SESSION}'/></iq>`);
        return;
      }
      return this.becomeReady();
    }
    if (id === 'sess1') {
      if (rootAttr(xml, 'type') !== 'result') return this.fail(`session failed: ${errorCondition(xml)}`);
      return this.becomeReady();
    }
  }

  private becomeReady(): void {
    timed.delete(this);
    this.state = 'ready';
    this.loginUs = nowUs() - this.startedAt;
    this.events.ready(this);
  }

  private readyIq(xml: string): void {
    const type = rootAttr(xml, 'type');
    if (type !== 'get' && type !== 'set') return;
    const id = rootAttr(xml, 'id') ?? '';
    const from = rootAttr(xml, 'from');
    const to = from ? ` to='${from}'` : '';
    // XEP-0199 §4: answer server pings so idle sessions are not reaped; roster pushes
    // (RFC 6121 §2.1.6) are acknowledged; anything else gets service-unavailable (RFC 6120 §8.4).
    if (xml.includes('urn:xmpp:ping') || xml.includes('jabber:iq:roster')) {
      this.send(`<iq type='result' id='${id}'${to}/>`);
    } else {
      this.send(
        `<iq type='error' id='${id}'${to}><error type='cancel'><service-unavailable xmlns='urn:ietf:params:xml:ns:xmpp-stanzas'/></error></iq>`,
      );
    }
  }
}

function innerText(xml: string): string {
  const gt = xml.indexOf('>');
  if (xml.charCodeAt(gt - 1) === 0x2f) return '';
  const end = xml.lastIndexOf('</');
  const t = xml.slice(gt + 1, end).trim();
  return t === '=' ? '' : t;
}

function firstChildName(xml: string): string | undefined {
  const gt = xml.indexOf('>');
  const lt = xml.indexOf('<', gt);
  if (lt < 0 || xml.charCodeAt(lt + 1) === 0x2f) return undefined;
  return elementName(xml.slice(lt));
}

function errorCondition(xml: string): string {
  const at = xml.indexOf('<error');
  return at < 0 ? 'no error element' : (firstChildName(xml.slice(at)) ?? 'unknown');
}

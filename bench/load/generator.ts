/**
 * One load generator: drives the accounts [lo, hi) of the swarm through the phases the
 * orchestrator asks for. It runs either inside a forked process (worker.ts), so several cores
 * generate load, or inline (procs 0) for tests and small runs.
 *
 * Cross-process bookkeeping relies on two facts: every message and presence carries its send
 * instant on CLOCK_MONOTONIC (shared by all processes of the machine), and losses are computed by
 * the orchestrator from the sums of sent and received counts over all generators.
 */
import { monitorEventLoopDelay } from 'node:perf_hooks';
import { LoadClient, type ClientConfig, type SaslChoice } from './client.js';
import { rootAttr } from './framing.js';
import { scramCounters } from './scram.js';
import { Histogram, nowUs, Timeline, type HistogramJSON } from './stats.js';

export interface GenConfig {
  host: string;
  port: number;
  domain: string;
  prefix: string;
  password: string;
  resource: string;
  sasl: SaslChoice;
  starttls: boolean;
  timeoutMs: number;
  /** Restart and bind sent behind the last SASL message (see ClientConfig.pipeline). */
  pipeline?: boolean;
  /** Accounts in the whole swarm (peers are drawn from all of them). */
  total: number;
  lo: number;
  hi: number;
}

export type GenCommand =
  | { cmd: 'register'; concurrency: number }
  | { cmd: 'connect'; rate: number; presence: boolean; roster: boolean }
  | { cmd: 'subscribe'; contacts: number; rate: number; timeoutMs: number }
  | { cmd: 'messages'; t0: number; durationMs: number; mode: 'closed' | 'open'; window: number; rate: number; size: number; to: 'full' | 'bare' }
  | { cmd: 'presence'; t0: number; durationMs: number; rate: number }
  | { cmd: 'stats' }
  | { cmd: 'report' }
  | { cmd: 'disconnect' }
  | { cmd: 'close' };

export interface GenStats {
  ready: number;
  failed: number;
  sent: number;
  received: number;
  expected: number;
  skipped: number;
  drops: number;
  cpuUs: number;
}

export interface GenReport extends GenStats {
  /** This process's event-loop delay during the last run phase: latency the tool itself adds. */
  loopDelayP99Us: number;
  loopDelayMaxUs: number;
  latency: HistogramJSON;
  timeline: [number, HistogramJSON][];
  logins: HistogramJSON;
  errors: Record<string, number>;
  /** Logins per SASL mechanism used. */
  mechanisms: Record<string, number>;
  /** SCRAM key derivations (PBKDF2) this process ran, and logins that reused cached keys. */
  scram: { derived: number; reused: number };
  subscribed: number;
}

const LOOP_RESOLUTION_MS = 5;

interface PeerState {
  /** Contacts whose subscription request this account approved (they receive our presence). */
  approved: Set<number>;
  /** Contacts that approved ours. */
  confirmed: Set<number>;
}

export class Generator {
  private clients: LoadClient[] = [];
  private readyClients: LoadClient[] = [];
  private readonly cfgClient: ClientConfig;
  private latency = new Histogram();
  private timeline = new Timeline();
  private logins = new Histogram();
  private errors: Record<string, number> = {};
  private mechanisms: Record<string, number> = {};
  private counters = { sent: 0, received: 0, expected: 0, skipped: 0, drops: 0, failed: 0 };
  private t0 = 0;
  private running = false;
  private mode: 'idle' | 'messages' | 'presence' | 'subscribe' = 'idle';
  private closedLoop = false;
  private pad = '';
  private toBare = false;
  private contacts = 0;
  private subscribedDone = 0;
  private onSubscribedAll: (() => void) | null = null;
  private connectWaiter: (() => void) | null = null;
  private pendingLogins = 0;
  private readonly cpuStart = process.cpuUsage();
  /** The process-wide SCRAM counters when this generator began (inline runs share a process). */
  private readonly scramStart = { ...scramCounters };
  private readonly loopDelay = monitorEventLoopDelay({ resolution: LOOP_RESOLUTION_MS });
  private closeLeft = 0;
  private closeWaiter: (() => void) | null = null;

  constructor(private readonly cfg: GenConfig) {
    this.cfgClient = {
      host: cfg.host,
      port: cfg.port,
      domain: cfg.domain,
      password: cfg.password,
      resource: cfg.resource,
      sasl: cfg.sasl,
      starttls: cfg.starttls,
      timeoutMs: cfg.timeoutMs,
      pipeline: cfg.pipeline ?? false,
    };
  }

  async call(c: GenCommand): Promise<unknown> {
    switch (c.cmd) {
      case 'register':
        return this.register(c.concurrency);
      case 'connect':
        return this.connect(c.rate, c.presence, c.roster);
      case 'subscribe':
        return this.subscribe(c.contacts, c.rate, c.timeoutMs);
      case 'messages':
        return this.messages(c);
      case 'presence':
        return this.presenceRun(c);
      case 'stats':
        return this.stats();
      case 'report':
        return this.report();
      case 'disconnect':
        return this.disconnect();
      case 'close':
        return this.close();
    }
  }

  private user(i: number): string {
    return `${this.cfg.prefix}${i}`;
  }

  private count(reason: string): void {
    // Keep the reason vocabulary small: strip per-connection details.
    const key = reason.length > 80 ? reason.slice(0, 80) : reason;
    this.errors[key] = (this.errors[key] ?? 0) + 1;
  }

  /** XEP-0077 registration of every account, `concurrency` streams at a time. */
  private register(concurrency: number): Promise<{ created: number; existed: number; failed: number }> {
    const out = { created: 0, existed: 0, failed: 0 };
    let next = this.cfg.lo;
    let active = 0;
    return new Promise((resolve) => {
      const pump = (): void => {
        while (active < concurrency && next < this.cfg.hi) {
          const i = next++;
          active++;
          let outcome: boolean | null = null;
          const c = new LoadClient(
            this.cfgClient,
            {
              ready: () => {},
              registered: (_c, created) => (outcome = created),
              message: () => {},
              presence: () => {},
              closed: (_c, reason) => {
                active--;
                if (outcome === true) out.created++;
                else if (outcome === false) out.existed++;
                else {
                  out.failed++;
                  this.count(`register: ${reason ?? 'closed'}`);
                }
                pump();
              },
            },
            i,
            this.user(i),
          );
          c.start(true);
        }
        if (active === 0 && next >= this.cfg.hi) resolve(out);
      };
      pump();
    });
  }

  /** Log every account in at `rate` per second (0: all at once, the reconnect storm). */
  private connect(rate: number, presence: boolean, roster: boolean): Promise<{ ok: number; failed: number; firstUs: number; lastUs: number }> {
    const n = this.cfg.hi - this.cfg.lo;
    const firstUs = nowUs();
    let lastUs = firstUs;
    this.pendingLogins = n;
    const events = {
      ready: (c: LoadClient) => {
        this.logins.record(c.loginUs);
        this.mechanisms[c.mechanism] = (this.mechanisms[c.mechanism] ?? 0) + 1;
        this.readyClients.push(c);
        lastUs = nowUs();
        // RFC 6121 §2.1.3: a roster get makes this an "interested resource", the only kind that
        // receives roster pushes and, per §3.1.5, the contact's 'subscribed' answer.
        if (roster) c.send(`<iq type='get' id='roster1'><query xmlns='jabber:iq:roster'/></iq>`);
        // RFC 6121 §4.2: initial presence makes the session available for bare-JID delivery
        // and presence broadcast.
        if (presence) c.send('<presence/>');
        if (--this.pendingLogins === 0) this.connectWaiter?.();
      },
      message: (c: LoadClient, xml: string) => this.onMessage(c, xml),
      presence: (c: LoadClient, xml: string) => this.onPresence(c, xml),
      closed: (c: LoadClient, reason: string | null) => {
        if (this.closeLeft > 0 && --this.closeLeft === 0) this.closeWaiter?.();
        if (c.loginUs === 0) {
          this.counters.failed++;
          this.count(`login: ${reason ?? 'closed'}`);
          lastUs = nowUs();
          if (--this.pendingLogins === 0) this.connectWaiter?.();
        } else if (reason !== null) {
          this.counters.drops++;
          this.count(`session: ${reason}`);
          const at = this.readyClients.indexOf(c);
          if (at >= 0) this.readyClients.splice(at, 1);
        }
      },
    };
    for (let i = this.cfg.lo; i < this.cfg.hi; i++) this.clients.push(new LoadClient(this.cfgClient, events, i, this.user(i)));
    return new Promise((resolve) => {
      this.connectWaiter = () => {
        this.connectWaiter = null;
        resolve({ ok: this.readyClients.length, failed: this.counters.failed, firstUs, lastUs });
      };
      if (n === 0) return this.connectWaiter();
      if (rate <= 0) {
        for (const c of this.clients) c.start();
        return;
      }
      let started = 0;
      const tick = setInterval(() => {
        const due = Math.min(n, Math.ceil(((nowUs() - firstUs) / 1e6) * rate));
        while (started < due) this.clients[started++].start();
        if (started >= n) clearInterval(tick);
      }, 5);
    });
  }

  /**
   * Mutual rosters through the real protocol (RFC 6121 §3.1): every account asks each of its
   * contacts for a subscription and approves every request it receives, so each pair ends with
   * subscription='both'. Contacts are the K ring neighbours (±1 … ±K/2), a symmetric relation.
   */
  private subscribe(k: number, rate: number, timeoutMs: number): Promise<{ complete: number; approved: number; confirmed: number }> {
    this.mode = 'subscribe';
    this.contacts = k;
    this.subscribedDone = 0;
    const N = this.cfg.total;
    const queue: [LoadClient, number][] = [];
    for (const c of this.readyClients) {
      c.data ??= { approved: new Set(), confirmed: new Set() } satisfies PeerState;
      for (let d = 1; d <= k / 2; d++) {
        queue.push([c, (c.index + d) % N]);
        queue.push([c, (c.index - d + N) % N]);
      }
    }
    const started = nowUs();
    let sent = 0;
    return new Promise((resolve) => {
      const finish = (): void => {
        clearInterval(tick);
        clearTimeout(limit);
        this.onSubscribedAll = null;
        this.mode = 'idle';
        let approved = 0;
        let confirmed = 0;
        for (const c of this.readyClients) {
          approved += (c.data as PeerState).approved.size;
          confirmed += (c.data as PeerState).confirmed.size;
        }
        resolve({ complete: this.subscribedDone, approved, confirmed });
      };
      this.onSubscribedAll = finish;
      const limit = setTimeout(finish, timeoutMs);
      const tick = setInterval(() => {
        const due = Math.min(queue.length, Math.ceil(((nowUs() - started) / 1e6) * rate));
        while (sent < due) {
          const [c, peer] = queue[sent++];
          c.send(`<presence to='${this.user(peer)}@${this.cfg.domain}' type='subscribe'/>`);
        }
      }, 5);
      if (this.readyClients.length === 0) finish();
    });
  }

  private peerIndex(from: string | undefined): number {
    if (!from) return -1;
    const at = from.indexOf('@');
    if (at < 0 || !from.startsWith(this.cfg.prefix)) return -1;
    const n = Number(from.slice(this.cfg.prefix.length, at));
    return Number.isInteger(n) ? n : -1;
  }

  private onPresence(c: LoadClient, xml: string): void {
    // Hot path of the presence scenario: a status carrying our marker.
    const st = xml.indexOf('<status>hp ');
    if (st >= 0) {
      if (!this.running && this.mode !== 'presence') return;
      const sp = xml.indexOf(' ', st + 11);
      const ts = Number(xml.slice(st + 11, sp));
      const from = Number(xml.slice(sp + 1, xml.indexOf('<', sp)));
      // RFC 6121 §4.4.2 lets the server echo a broadcast to the sender's own resources.
      if (from === c.index) return;
      this.recordLatency(ts);
      return;
    }
    const type = rootAttr(xml, 'type');
    if (type === 'subscribe') {
      const peer = this.peerIndex(rootAttr(xml, 'from'));
      if (peer < 0) return; // not one of the swarm's accounts: leave it pending
      // RFC 6121 §3.1.4: approve by sending 'subscribed' to the requester's bare JID.
      c.send(`<presence to='${this.user(peer)}@${this.cfg.domain}' type='subscribed'/>`);
      c.data ??= { approved: new Set(), confirmed: new Set() } satisfies PeerState;
      (c.data as PeerState).approved.add(peer);
    } else if (type === 'subscribed') {
      const peer = this.peerIndex(rootAttr(xml, 'from'));
      if (peer < 0) return;
      c.data ??= { approved: new Set(), confirmed: new Set() } satisfies PeerState;
      const st2 = c.data as PeerState;
      const before = st2.confirmed.size;
      st2.confirmed.add(peer);
      if (before < this.contacts && st2.confirmed.size >= this.contacts && this.mode === 'subscribe') {
        this.subscribedDone++;
        if (this.subscribedDone === this.readyClients.length) this.onSubscribedAll?.();
      }
    }
  }

  private recordLatency(ts: number): void {
    const now = nowUs();
    const lat = now - ts;
    this.latency.record(lat);
    this.timeline.record(Math.floor((now - this.t0) / 1e6), lat);
    this.counters.received++;
  }

  private onMessage(c: LoadClient, xml: string): void {
    const b = xml.indexOf('<body>hb ');
    // Outside a messages run, a bench body is a leftover a server kept offline from an earlier run.
    if (b < 0 || this.mode !== 'messages') return;
    const sp = xml.indexOf(' ', b + 9);
    this.recordLatency(Number(xml.slice(b + 9, sp)));
    // Closed loop: each delivery releases the receiver's next send, so N·window messages
    // circulate and the offered load follows what the server sustains.
    if (this.closedLoop && this.running) this.sendMessage(c, nowUs());
  }

  private sendMessage(c: LoadClient, ts: number): void {
    if (!c.writable) {
      this.counters.skipped++;
      return;
    }
    const N = this.cfg.total;
    let peer = Math.floor(Math.random() * N);
    if (peer === c.index) peer = (peer + 1) % N;
    const to = this.toBare ? `${this.cfg.prefix}${peer}@${this.cfg.domain}` : `${this.cfg.prefix}${peer}@${this.cfg.domain}/${this.cfg.resource}`;
    c.send(`<message to='${to}' type='chat'><body>hb ${ts} ${c.index}${this.pad}</body></message>`);
    this.counters.sent++;
  }

  private messages(c: Extract<GenCommand, { cmd: 'messages' }>): Promise<GenStats> {
    this.t0 = c.t0;
    this.mode = 'messages';
    this.toBare = c.to === 'bare';
    this.pad = c.size > 0 ? ' ' + 'x'.repeat(c.size) : '';
    this.closedLoop = c.mode === 'closed';
    this.running = true;
    if (this.closedLoop) {
      const now = nowUs();
      for (let w = 0; w < c.window; w++) for (const cl of this.readyClients) this.sendMessage(cl, now);
      return this.runFor(c.durationMs, null);
    }
    return this.runFor(c.durationMs, (cl, ts) => this.sendMessage(cl, ts), c.rate);
  }

  private presenceRun(c: Extract<GenCommand, { cmd: 'presence' }>): Promise<GenStats> {
    this.t0 = c.t0;
    this.mode = 'presence';
    this.running = true;
    return this.runFor(
      c.durationMs,
      (cl, ts) => {
        if (!cl.writable) {
          this.counters.skipped++;
          return;
        }
        cl.send(`<presence><status>hp ${ts} ${cl.index}</status></presence>`);
        this.counters.sent++;
        // RFC 6121 §4.4.2: the broadcast goes to every contact with a subscription to us.
        this.counters.expected += (cl.data as PeerState | null)?.approved.size ?? 0;
      },
      c.rate,
    );
  }

  /**
   * Open loop: send at a fixed rate per client, round-robin over the ready clients. Each
   * stanza carries its intended send instant, not the instant the timer fired, so a stalled
   * generator or server shows up as latency instead of being hidden (coordinated omission).
   */
  private runFor(durationMs: number, send: ((c: LoadClient, ts: number) => void) | null, ratePerClient = 0): Promise<GenStats> {
    this.loopDelay.reset();
    this.loopDelay.enable();
    return new Promise((resolve) => {
      const start = nowUs();
      const end = start + durationMs * 1000;
      const total = ratePerClient * this.readyClients.length;
      let k = 0;
      let cursor = 0;
      const tick = setInterval(() => {
        const now = nowUs();
        if (send && total > 0 && this.readyClients.length > 0) {
          // Stanza k is due at start + k/total (k from 0), so k < due once that instant passed.
          const due = now >= end ? Math.ceil((durationMs / 1000) * total) : Math.floor(((now - start) / 1e6) * total) + 1;
          while (k < due) {
            const intended = start + Math.floor((k * 1e6) / total);
            if (cursor >= this.readyClients.length) cursor = 0;
            send(this.readyClients[cursor++], intended);
            k++;
          }
        }
        if (now >= end) {
          clearInterval(tick);
          this.running = false;
          resolve(this.stats());
        }
      }, 1); // 1 ms: the tick's own lag is charged to latency, keep it small
    });
  }

  stats(): GenStats {
    const cpu = process.cpuUsage(this.cpuStart);
    return {
      ready: this.readyClients.length,
      failed: this.counters.failed,
      sent: this.counters.sent,
      received: this.counters.received,
      expected: this.counters.expected,
      skipped: this.counters.skipped,
      drops: this.counters.drops,
      cpuUs: cpu.user + cpu.system,
    };
  }

  private report(): GenReport {
    let subscribed = 0;
    for (const c of this.readyClients) if (((c.data as PeerState | null)?.confirmed.size ?? 0) >= this.contacts) subscribed++;
    return {
      ...this.stats(),
      // The histogram holds whole sampling intervals (5 ms + lateness); keep the lateness.
      loopDelayP99Us: this.loopDelay.count ? Math.max(0, this.loopDelay.percentile(99) / 1000 - LOOP_RESOLUTION_MS * 1000) : NaN,
      loopDelayMaxUs: this.loopDelay.count ? Math.max(0, this.loopDelay.max / 1000 - LOOP_RESOLUTION_MS * 1000) : NaN,
      latency: this.latency.toJSON(),
      timeline: this.timeline.toJSON(),
      logins: this.logins.toJSON(),
      errors: this.errors,
      mechanisms: this.mechanisms,
      scram: { derived: scramCounters.derived - this.scramStart.derived, reused: scramCounters.reused - this.scramStart.reused },
      subscribed,
    };
  }

  /**
   * End every session and forget it, so that the next 'connect' logs the same accounts in again
   * (the reconnect round of the login scenario); SCRAM keys stay cached, as a real client's do.
   */
  private async disconnect(): Promise<void> {
    await this.close();
    this.clients = [];
    this.readyClients = [];
    this.logins = new Histogram();
    this.mechanisms = {};
    this.counters.failed = 0;
    this.counters.drops = 0;
  }

  private close(): Promise<void> {
    this.loopDelay.disable();
    this.running = false;
    this.mode = 'idle';
    const open = this.clients.filter((c) => c.state !== 'closed');
    if (open.length === 0) return Promise.resolve();
    return new Promise((resolve) => {
      const done = setTimeout(resolve, 3000);
      this.closeLeft = open.length;
      this.closeWaiter = () => {
        clearTimeout(done);
        resolve();
      };
      for (const c of open) c.close();
    });
  }
}

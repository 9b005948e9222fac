/**
 * The load tool against real servers: a short `messages` and `presence` run each on Prosody
 * (when installed) and on Hermod (when built and able to start), through the same code path
 * `hermod bench` and `npm run bench:compare` use. Small sizes, a few seconds each.
 */
import { execFile } from 'node:child_process';
import { existsSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { DEFAULTS, runBench, type BenchOptions } from '../../bench/load/run.js';
import { freePort, hermod, prosody, type RunningServer, type ServerKind } from '../../bench/load/servers.js';

function small(scenario: BenchOptions['scenario'], server: RunningServer, extra: Partial<BenchOptions> = {}): BenchOptions {
  return {
    ...DEFAULTS,
    scenario,
    port: server.port,
    serverPid: server.pid,
    clients: 24,
    procs: 0, // inline: vitest runs the TypeScript sources, there is no worker.js beside them
    register: true,
    rate: 200,
    durationS: 1,
    drainS: 3,
    setupTimeoutS: 10,
    loginTimeoutS: 10,
    ...extra,
  };
}

const CLI = fileURLToPath(new URL('../../dist/src/cli.js', import.meta.url));
const BUILT = existsSync(fileURLToPath(new URL('../../dist/bench/load/worker.js', import.meta.url)));

function cli(args: string[]): Promise<{ code: number; stdout: string; stderr: string }> {
  return new Promise((resolve) => {
    execFile(process.execPath, [CLI, ...args], { timeout: 60_000 }, (err, stdout, stderr) =>
      resolve({ code: err ? ((err as { code?: number }).code ?? 1) : 0, stdout, stderr }),
    );
  });
}

for (const kind of [prosody, hermod] as ServerKind[]) {
  // Generous per-test bound: these share the box's two cores with the rest of the suite.
  describe(`hermod bench against ${kind.name}`, { timeout: 90_000 }, () => {
    let server: RunningServer | null = null;
    let skipReason = kind.unavailable();

    beforeAll(async () => {
      if (skipReason) return;
      try {
        server = await kind.start(await freePort());
      } catch (e) {
        // Until a server can start here, its column is skipped, visibly, not failed.
        skipReason = `${kind.name} did not start: ${(e as Error).message.split('\n')[0]}`;
      }
    });

    afterAll(async () => {
      await server?.stop();
    });

    it('delivers every 1:1 message of a closed-loop run and times each one', async (ctx) => {
      if (!server) return ctx.skip(skipReason ?? 'no server');
      const r = await runBench(small('messages', server, { prefix: 'e2em', window: 2 }));
      expect(r.login.ok).toBe(24);
      expect(r.registration!.failed).toBe(0);
      expect(r.run!.sent).toBeGreaterThan(48); // more than the 24 × window 2 it starts with
      expect(r.run!.lost).toBe(0);
      expect(r.run!.delivered).toBe(r.run!.sent);
      expect(r.run!.latency.n).toBe(r.run!.delivered);
      expect(r.run!.latency.p50).toBeGreaterThan(0);
      expect(r.drops).toBe(0);
      expect(r.cpu.serverUs).toBeGreaterThan(0);
    });

    it('builds mutual rosters through subscribe/subscribed and receives every presence broadcast', async (ctx) => {
      if (!server) return ctx.skip(skipReason ?? 'no server');
      const r = await runBench(small('presence', server, { prefix: 'e2ep', contacts: 4, presenceRate: 4 }));
      expect(r.setup!.complete).toBe(24);
      expect(r.setup!.confirmed).toBe(24 * 4);
      expect(r.run!.sent).toBeGreaterThan(0);
      expect(r.run!.expected).toBe(r.run!.sent * 4);
      expect(r.run!.completeness).toBe(1);
    });

    it('opens a storm of sessions at once and holds them idle, reporting memory per session', async (ctx) => {
      if (!server) return ctx.skip(skipReason ?? 'no server');
      const r = await runBench(small('idle', server, { prefix: 'e2ei', clients: 100, rate: 0, holdS: 1 }));
      expect(r.login.ok).toBe(100);
      expect(r.login.failed).toBe(0);
      expect(Number.isFinite(r.memory!.perSessionBytes)).toBe(true);
    });

    it('runs from the command line with two generator processes and prints JSON', async (ctx) => {
      if (!server) return ctx.skip(skipReason ?? 'no server');
      if (!BUILT) return ctx.skip('dist/bench/load not built (npm run build)');
      const common = ['--port', String(server.port), '--server-pid', String(server.pid), '--clients', '30', '--prefix', 'e2ec'];
      const out = await cli(['bench', 'messages', ...common, '--procs', '2', '--register', '--duration', '1', '--mode', 'open', '--msg-rate', '10', '--json', '--quiet']);
      expect(out.code, out.stderr).toBe(0);
      const r = JSON.parse(out.stdout);
      expect(r.procs).toBe(2);
      expect(r.login.ok).toBe(30);
      // Peers are drawn across both processes; every message still arrives and is timed.
      expect(r.run.sent).toBeGreaterThan(0);
      expect(r.run.delivered).toBe(r.run.sent);
      expect(r.cpu.toolUs).toBeGreaterThan(0);
    });

    it('negotiates STARTTLS and SCRAM-SHA-1 when asked and the server offers them', async (ctx) => {
      if (!server) return ctx.skip(skipReason ?? 'no server');
      // The private Prosody and ejabberd instances have no certificate, so only Hermod offers TLS.
      if (kind.name !== 'hermod') return ctx.skip(`${kind.name} runs without a certificate here`);
      const r = await runBench(small('login', server, { prefix: 'e2et', clients: 5, starttls: true, sasl: 'scram-sha-1' }));
      expect(r.login.ok).toBe(5);
    });

    it('logs in with the strongest SCRAM offered, derives each key once, and measures the reconnect round', async (ctx) => {
      if (!server) return ctx.skip(skipReason ?? 'no server');
      const r = await runBench(small('login', server, { prefix: 'e2ek', clients: 6 }));
      expect(r.firstLogin?.ok).toBe(6);
      expect(r.login.ok).toBe(6);
      expect(r.login.reconnect).toBe(true);
      // Both servers offer SCRAM-SHA-256; a real client takes it over SHA-1 and PLAIN.
      expect(r.login.mechanisms).toEqual({ 'SCRAM-SHA-256': 6 });
      if (kind.name === 'hermod') {
        // Stored salts: one PBKDF2 per account (first round), cached keys for the reconnect round.
        expect(r.login.scram).toEqual({ derived: 6, reused: 6 });
      } else {
        // A server keeping plain passwords may salt afresh per login (Prosody's internal_plain
        // does): then the client has to derive again, as a real client would.
        expect(r.login.scram.derived + r.login.scram.reused).toBe(12);
      }
    });

    it('pipelines restart and bind behind the last SASL message when asked (Hermod carries them over)', async (ctx) => {
      if (!server) return ctx.skip(skipReason ?? 'no server');
      if (kind.name !== 'hermod') return ctx.skip('pipelining across the SASL restart is measured on Hermod');
      for (const sasl of ['plain', 'scram-sha-256'] as const) {
        const r = await runBench(small('login', server, { prefix: `e2ep${sasl.length}`, clients: 6, sasl, pipeline: true }));
        expect(r.login.ok, sasl).toBe(6);
        expect(r.firstLogin?.ok, sasl).toBe(6);
      }
    });
  });
}

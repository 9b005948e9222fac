/**
 * How much does handing work to another thread cost on this box? Round-trip latency main thread →
 * worker → main thread for each signalling choice the shard design could use:
 *   - piscina.run per task (a task per chunk),
 *   - worker postMessage ping-pong,
 *   - the ring (src/shard/ring.ts) with its doorbell, the worker parked in Atomics.waitAsync or
 *     Atomics.wait, after spinning 0 / 20 / 200 µs,
 *   - a pure spin on shared memory (both threads burning a core: the lower bound).
 * And the cost per record when records travel in batches (one commit + one wake per batch).
 *
 *   node dist/bench/core/shard-wake.js [--rounds 2000] [--json]
 */
import { fileURLToPath } from 'node:url';
import { isMainThread, parentPort, Worker, workerData } from 'node:worker_threads';
import { Piscina } from 'piscina';
import { createRing, Doorbell, RingReader, RingWriter } from '../../src/shard/ring.js';
import { nowNs, numArg, report, round, type Row, summarize } from './shard-common.js';

type Role =
  | { role: 'postmessage' }
  | { role: 'spin'; sab: SharedArrayBuffer }
  | { role: 'ring'; toWorker: SharedArrayBuffer; toMain: SharedArrayBuffer; bell: SharedArrayBuffer; mainBell: SharedArrayBuffer; spinUs: number; sync: boolean };

const self = fileURLToPath(import.meta.url);

/** piscina task: the cheapest possible work, so only the hand-off is measured. */
export default function increment(x: number): number {
  return x + 1;
}

async function workerMain(cfg: Role): Promise<void> {
  if (cfg.role === 'postmessage') {
    parentPort!.on('message', (m: number) => parentPort!.postMessage(m + 1));
    return;
  }
  if (cfg.role === 'spin') {
    const w = new Int32Array(cfg.sab);
    let last = 0;
    for (;;) {
      const v = Atomics.load(w, 0);
      if (v === -1) return;
      if (v !== last) {
        last = v;
        Atomics.store(w, 1, v);
      }
    }
  }
  // Echo every record back, batch for batch, as a shard worker answering its main thread would.
  const reader = new RingReader(cfg.toWorker);
  const bell = new Doorbell(cfg.bell);
  const writer = new RingWriter(cfg.toMain, { doorbell: new Doorbell(cfg.mainBell), autoCommit: false });
  let stop = false;
  const echo = (rec: Uint8Array): void => {
    if (rec.length === 0) stop = true;
    else writer.tryWrite(rec);
  };
  while (!stop) {
    if (cfg.sync) bell.parkSync(() => reader.hasData(), cfg.spinUs);
    else await bell.park(() => reader.hasData(), cfg.spinUs);
    reader.drain(echo);
    writer.commit();
  }
}

async function timeRoundTrips(rounds: number, once: () => Promise<void>): Promise<number[]> {
  for (let i = 0; i < Math.min(200, rounds); i++) await once();
  const samples: number[] = [];
  for (let i = 0; i < rounds; i++) {
    const t0 = nowNs();
    await once();
    samples.push(Number(nowNs() - t0) / 1000);
  }
  return samples;
}

async function benchPiscina(rounds: number): Promise<Row> {
  const pool = new Piscina({ filename: self, minThreads: 1, maxThreads: 1 });
  let x = 0;
  const samples = await timeRoundTrips(rounds, async () => {
    x = await pool.run(x);
  });
  await pool.destroy();
  return { case: 'piscina.run(x => x + 1)', ...summarize(samples) };
}

async function benchPostMessage(rounds: number): Promise<Row> {
  const worker = new Worker(self, { workerData: { role: 'postmessage' } satisfies Role });
  await new Promise((r) => worker.once('online', r));
  const samples = await timeRoundTrips(rounds, () => new Promise<void>((resolve) => {
    worker.once('message', () => resolve());
    worker.postMessage(1);
  }));
  await worker.terminate();
  return { case: 'worker postMessage ping-pong', ...summarize(samples) };
}

async function benchSpin(rounds: number): Promise<Row> {
  const sab = new SharedArrayBuffer(8);
  const w = new Int32Array(sab);
  const worker = new Worker(self, { workerData: { role: 'spin', sab } satisfies Role });
  await new Promise((r) => worker.once('online', r));
  let v = 0;
  const samples = await timeRoundTrips(rounds, async () => {
    v++;
    Atomics.store(w, 0, v);
    while (Atomics.load(w, 1) !== v);
  });
  Atomics.store(w, 0, -1);
  await worker.terminate();
  return { case: 'spin ↔ spin on shared memory', ...summarize(samples) };
}

/**
 * The ring protocol end to end: main commits `batch` records and rings the worker's doorbell; the
 * worker (spinning `spinUs`, then parked) echoes them; main sleeps in waitAsync on its own
 * doorbell (the main thread must never spin: it has sockets to serve) until all came back.
 */
async function benchRing(rounds: number, spinUs: number, sync: boolean, batch: number): Promise<Row> {
  const toWorker = createRing(1 << 20);
  const toMain = createRing(1 << 20);
  const bell = new Doorbell();
  const mainBell = new Doorbell();
  const worker = new Worker(self, {
    workerData: { role: 'ring', toWorker, toMain, bell: bell.sab, mainBell: mainBell.sab, spinUs, sync } satisfies Role,
  });
  await new Promise((r) => worker.once('online', r));
  const writer = new RingWriter(toWorker, { doorbell: bell, autoCommit: false });
  const reader = new RingReader(toMain);
  const payload = new Uint8Array(200).fill(0x61);
  let got = 0;
  const count = (): void => {
    got++;
  };
  const samples = await timeRoundTrips(rounds, async () => {
    for (let i = 0; i < batch; i++) writer.tryWrite(payload);
    writer.commit();
    got = 0;
    while (got < batch) {
      await mainBell.park(() => reader.hasData(), 0);
      reader.drain(count);
    }
  });
  writer.tryWrite(new Uint8Array(0));
  writer.commit();
  await worker.terminate();
  const s = summarize(samples);
  return {
    case: `ring, worker ${sync ? 'Atomics.wait' : 'waitAsync'}, spin ${spinUs} µs, batch ${batch}`,
    ...s,
    'µs/record': round(s['mean µs'] / batch),
  };
}

async function main(): Promise<void> {
  const rounds = numArg('rounds', 2000);
  const rows: Row[] = [];
  rows.push(await benchPiscina(rounds));
  rows.push(await benchPostMessage(rounds));
  for (const sync of [false, true]) {
    for (const spinUs of [0, 20, 200]) rows.push(await benchRing(rounds, spinUs, sync, 1));
  }
  for (const batch of [16, 128]) rows.push(await benchRing(Math.max(100, rounds >> 2), 20, false, batch));
  rows.push(await benchSpin(rounds));
  report('Thread hand-off round trip (main → worker → main)', rows);
}

if (isMainThread) {
  await main();
} else if (workerData && typeof workerData === 'object' && 'role' in workerData) {
  await workerMain(workerData as Role);
}

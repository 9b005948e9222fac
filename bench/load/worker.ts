/**
 * Entry of a forked generator process: owns one Generator and answers the orchestrator's
 * commands over the IPC channel, one reply per request id.
 */
import { Generator, type GenCommand, type GenConfig } from './generator.js';

let gen: Generator | null = null;

process.on('message', (m: { id: number; init?: GenConfig; command?: GenCommand }) => {
  const reply = (result: unknown, error?: string): void => {
    process.send?.({ id: m.id, result, error });
  };
  if (m.init) {
    gen = new Generator(m.init);
    return reply(true);
  }
  if (!gen || !m.command) return reply(null, 'generator not initialised');
  const cmd = m.command;
  gen.call(cmd).then(
    (r) => {
      reply(r);
      if (cmd.cmd === 'close') setImmediate(() => process.exit(0));
    },
    (e: Error) => reply(null, e.message),
  );
});

// The orchestrator going away must not leave thousands of sessions behind.
process.on('disconnect', () => process.exit(0));

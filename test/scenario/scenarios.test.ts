import { readdirSync, readFileSync } from 'node:fs';
import { describe, it } from 'vitest';
import { Scenario, coreFeederFactory, jsFeederFactory, scenarioTitle } from './runner.js';

const dir = new URL('./scripts/', import.meta.url);
const files = readdirSync(dir).filter((f) => f.endsWith('.scenario')).sort();
// The real WASM core drives the scenarios; only when it is not built yet do they fall back to
// the JavaScript view, so that a broken core build shows up as failing scenarios, not as skips.
// HERMOD_SCENARIO_VIEW=js forces the JavaScript view (to tell a router bug from a core bug).
const core = process.env.HERMOD_SCENARIO_VIEW === 'js' ? null : await coreFeederFactory();
const feeder = core ?? jsFeederFactory;

describe(`scenarios (${core ? 'WASM core' : 'JavaScript view: core not built'})`, () => {
  for (const file of files) {
    const script = readFileSync(new URL(file, dir), 'utf8');
    it(`${scenarioTitle(script, file)} [${file}]`, async () => {
      await new Scenario({ feeder }).run(script);
    });
  }
});

// The same conversations with every stanza cut into 1..5-byte chunks (only with the real core).
const split = core ? await coreFeederFactory(true) : null;
describe.runIf(split !== null)('scenarios, stanzas fed in 1..5-byte chunks (WASM core)', () => {
  for (const file of files) {
    const script = readFileSync(new URL(file, dir), 'utf8');
    it(`${scenarioTitle(script, file)} [${file}]`, async () => {
      await new Scenario({ feeder: split! }).run(script);
    });
  }
});

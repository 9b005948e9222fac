import { readdirSync, readFileSync } from 'node:fs';
import { describe, it } from 'vitest';
import { Scenario, coreFeederFactory, jsFeederFactory, scenarioTitle } from './runner.js';

const dir = new URL('./scripts/', import.meta.url);
const files = readdirSync(dir).filter((f) => f.endsWith('.scenario')).sort();
// The real WASM core drives the scenarios; only when it is not built yet do they fall back to
// the JavaScript view, so that a broken core build shows up as failing scenarios, not as skips.
const core = await coreFeederFactory();
const feeder = core ?? jsFeederFactory;

describe(`scenarios (${core ? 'WASM core' : 'JavaScript view: core not built'})`, () => {
  for (const file of files) {
    const script = readFileSync(new URL(file, dir), 'utf8');
    it(`${scenarioTitle(script, file)} [${file}]`, () => {
      new Scenario({ feeder }).run(script);
    });
  }
});

/**
 * Folder = layer (docs/architecture.md): the top-level wiring in src/server.ts and src/cli.ts
 * may import every layer, no layer may import them back. A shard worker that reached into
 * src/server.ts would load the whole single-thread server (and its imports) into every shard.
 */
import { readdirSync, readFileSync } from 'node:fs';
import { join, relative } from 'node:path';
import { describe, expect, it } from 'vitest';

const SRC = join(import.meta.dirname, '../../src');
const TOP_LEVEL_WIRING = ['server.js', 'cli.js'];

function sources(dir: string): string[] {
  return readdirSync(dir, { withFileTypes: true }).flatMap((entry) => {
    const path = join(dir, entry.name);
    if (entry.isDirectory()) return sources(path);
    return entry.name.endsWith('.ts') ? [path] : [];
  });
}

/** Relative module specifiers of static imports and exports (dynamic import() is on demand). */
function importsOf(file: string): string[] {
  const text = readFileSync(file, 'utf8');
  return [...text.matchAll(/^\s*(?:import|export)\b[^'"]*?from\s+'(\.[^']+)'/gm)].map((m) => m[1]!);
}

describe('layer boundaries', () => {
  it('no module inside a layer folder imports src/server.ts or src/cli.ts', () => {
    const offending: string[] = [];
    for (const file of sources(SRC)) {
      const rel = relative(SRC, file);
      if (!rel.includes('/')) continue; // the top-level files themselves
      for (const spec of importsOf(file)) {
        const target = relative(SRC, join(file, '..', spec));
        if (TOP_LEVEL_WIRING.includes(target)) offending.push(`${rel} → ${spec}`);
      }
    }
    expect(offending).toEqual([]);
  });

  it('finds the imports it checks (a scan that reads nothing would always pass)', () => {
    expect(importsOf(join(SRC, 'shard/worker.ts'))).toContain('../stream/options.js');
    expect(importsOf(join(SRC, 'server.ts'))).toContain('./stream/options.js');
  });
});

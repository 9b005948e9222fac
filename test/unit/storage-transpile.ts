/**
 * For tests that must run real Hermod code in a child process (kill -9, the CLI's stdin): turn
 * the needed TypeScript sources into JavaScript (transpile only, no type check) in a folder
 * inside node_modules, so that the packages they import resolve as in the repository.
 */
import { mkdirSync, mkdtempSync, readdirSync, readFileSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import ts from 'typescript';

export const repoRoot = fileURLToPath(new URL('../..', import.meta.url));

function tsFilesUnder(dir: string): string[] {
  return readdirSync(join(repoRoot, dir)).flatMap((name) => {
    const rel = `${dir}/${name}`;
    if (statSync(join(repoRoot, rel)).isDirectory()) return tsFilesUnder(rel);
    return name.endsWith('.ts') ? [rel] : [];
  });
}

/** Transpile the given files and folders (relative to the repository); returns the output folder. */
export function transpile(paths: string[]): string {
  const out = mkdtempSync(join(repoRoot, 'node_modules', '.cache-hermod-test-'));
  const files = paths.flatMap((p) => (p.endsWith('.ts') ? [p] : tsFilesUnder(p)));
  for (const file of files) {
    const target = join(out, file.replace(/\.ts$/, '.js'));
    mkdirSync(dirname(target), { recursive: true });
    const { outputText } = ts.transpileModule(readFileSync(join(repoRoot, file), 'utf8'), {
      compilerOptions: { module: ts.ModuleKind.ESNext, target: ts.ScriptTarget.ES2022, esModuleInterop: true },
    });
    writeFileSync(target, outputText);
  }
  writeFileSync(join(out, 'package.json'), '{"type":"module"}');
  return out;
}

export function removeTranspiled(dir: string): void {
  if (dir) rmSync(dir, { recursive: true, force: true });
}

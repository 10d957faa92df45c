// Golden files: a missing or different file is a failure. Only IPVISOR_UPDATE_GOLDEN=1 (re)writes them,
// so a deleted or never-committed golden file cannot turn into a passing test.
import assert from 'node:assert/strict';
import { existsSync, mkdirSync, readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { dirname, join, relative } from 'node:path';

export const GOLDEN_ENV = 'IPVISOR_UPDATE_GOLDEN';

export function updatingGolden(): boolean {
  return process.env[GOLDEN_ENV] === '1';
}

/** Compare `actual` with the file at `path`; write it only when IPVISOR_UPDATE_GOLDEN=1. */
export function assertGoldenFile(path: string, actual: string): void {
  if (updatingGolden()) {
    mkdirSync(dirname(path), { recursive: true });
    writeFileSync(path, actual);
    return;
  }
  if (!existsSync(path)) assert.fail(`golden file ${path} is missing (${GOLDEN_ENV}=1 writes it)`);
  assert.equal(actual, readFileSync(path, 'utf8'), `golden ${path} differs (${GOLDEN_ENV}=1 to accept)`);
}

function listFiles(dir: string): string[] {
  return readdirSync(dir, { withFileTypes: true }).flatMap((e) => (e.isDirectory() ? listFiles(join(dir, e.name)) : [join(dir, e.name)]));
}

/** Compare a set of files (relative path -> content) with a golden directory; same rules. */
export function assertGoldenDir(dir: string, files: Record<string, string>): void {
  if (updatingGolden()) {
    rmSync(dir, { recursive: true, force: true });
    for (const [p, content] of Object.entries(files)) {
      mkdirSync(dirname(join(dir, p)), { recursive: true });
      writeFileSync(join(dir, p), content);
    }
    return;
  }
  // git keeps no empty directory: an empty rendering has no golden directory, and that is equal
  if (!existsSync(dir)) {
    if (Object.keys(files).length === 0) return;
    assert.fail(`golden directory ${dir} is missing (${GOLDEN_ENV}=1 writes it)`);
  }
  const golden = Object.fromEntries(listFiles(dir).map((f) => [relative(dir, f), readFileSync(f, 'utf8')]));
  assert.deepEqual(files, golden, `${dir} differs from the golden files (${GOLDEN_ENV}=1 to accept)`);
}

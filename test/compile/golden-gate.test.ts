// The golden gate itself must be able to fail: a missing golden file is a failure and nothing is
// written, unless IPVISOR_UPDATE_GOLDEN=1 asks for it (the old gate wrote the file and passed).
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { existsSync, mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { assertGoldenDir, assertGoldenFile, GOLDEN_ENV } from '../support/golden.js';

function withEnv(value: string | undefined, fn: () => void): void {
  const before = process.env[GOLDEN_ENV];
  if (value === undefined) delete process.env[GOLDEN_ENV];
  else process.env[GOLDEN_ENV] = value;
  try { fn(); } finally {
    if (before === undefined) delete process.env[GOLDEN_ENV];
    else process.env[GOLDEN_ENV] = before;
  }
}

test('golden gate: a missing golden file fails and is not written', () => {
  const dir = mkdtempSync(join(tmpdir(), 'ipv-golden-'));
  try {
    const path = join(dir, 'missing.nft');
    withEnv(undefined, () => assert.throws(() => assertGoldenFile(path, 'table bridge ipvisor {}\n'), /missing/));
    assert.equal(existsSync(path), false, 'nothing written without the env var');
    withEnv(undefined, () => assert.throws(() => assertGoldenDir(join(dir, 'netplan'), { 'a.yaml': 'x' }), /missing/));
    assert.equal(existsSync(join(dir, 'netplan')), false);
  } finally { rmSync(dir, { recursive: true, force: true }); }
});

test('golden gate: a different file fails; IPVISOR_UPDATE_GOLDEN=1 writes, then it compares', () => {
  const dir = mkdtempSync(join(tmpdir(), 'ipv-golden-'));
  try {
    const path = join(dir, 'plan.json');
    withEnv('1', () => assertGoldenFile(path, 'one\n'));
    assert.equal(readFileSync(path, 'utf8'), 'one\n');
    withEnv(undefined, () => assertGoldenFile(path, 'one\n'));
    withEnv(undefined, () => assert.throws(() => assertGoldenFile(path, 'two\n'), /differs/));
    withEnv('1', () => assertGoldenDir(join(dir, 'eni'), { 'etc/x': 'y' }));
    withEnv(undefined, () => assertGoldenDir(join(dir, 'eni'), { 'etc/x': 'y' }));
    withEnv(undefined, () => assert.throws(() => assertGoldenDir(join(dir, 'eni'), { 'etc/x': 'y', extra: 'z' })));
  } finally { rmSync(dir, { recursive: true, force: true }); }
});

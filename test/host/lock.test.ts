// The host lock serialises applies across processes and within one process, and takes over a
// lock left by a dead process.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync, writeFileSync, existsSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { withHostLock } from '../../src/agent/host/lock.js';

function assertNoOverlap(lines: string[]): void {
  for (let i = 0; i < lines.length; i += 2) {
    const [s, e] = [lines[i], lines[i + 1]];
    assert.ok(s.startsWith('start ') && e === s.replace('start', 'end'), `interleaved at ${i}: ${s} / ${e}`);
  }
}

test('host lock: four processes never overlap', async () => {
  const dir = mkdtempSync(join(tmpdir(), 'ipv-lock-'));
  try {
    const file = join(dir, 'log');
    writeFileSync(file, '');
    const env = { ...process.env, IPVISOR_RUN_DIR: dir };
    const kids = [1, 2, 3, 4].map((id) => spawn(process.execPath, ['--import', 'tsx', join(import.meta.dirname, 'lock-child.ts'), file, String(id), '5'], { env, stdio: 'inherit' }));
    await Promise.all(kids.map((k) => new Promise((r) => k.on('exit', r))));
    const lines = readFileSync(file, 'utf8').trim().split('\n');
    assert.equal(lines.length, 40);
    assertNoOverlap(lines);
    assert.ok(!existsSync(join(dir, 'host.lock')), 'lock released');
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});

test('host lock: async callers in one process wait for each other', async () => {
  const dir = mkdtempSync(join(tmpdir(), 'ipv-lock-'));
  const saved = process.env.IPVISOR_RUN_DIR;
  process.env.IPVISOR_RUN_DIR = dir;
  try {
    const lines: string[] = [];
    await Promise.all([1, 2, 3].map((id) => withHostLock(async () => {
      lines.push(`start ${id}`);
      await new Promise((r) => setTimeout(r, 5));
      lines.push(`end ${id}`);
    })));
    assertNoOverlap(lines);
  } finally {
    if (saved === undefined) delete process.env.IPVISOR_RUN_DIR;
    else process.env.IPVISOR_RUN_DIR = saved;
    rmSync(dir, { recursive: true, force: true });
  }
});

test('host lock: a lock held by a dead process is taken over', async () => {
  const dir = mkdtempSync(join(tmpdir(), 'ipv-lock-'));
  const saved = process.env.IPVISOR_RUN_DIR;
  process.env.IPVISOR_RUN_DIR = dir;
  try {
    const dead = spawn(process.execPath, ['-e', '0']);
    await new Promise((r) => dead.on('exit', r));
    writeFileSync(join(dir, 'host.lock'), `${dead.pid}\n`);
    assert.equal(await withHostLock(async () => 'ran', { timeoutMs: 2000 }), 'ran');
  } finally {
    if (saved === undefined) delete process.env.IPVISOR_RUN_DIR;
    else process.env.IPVISOR_RUN_DIR = saved;
    rmSync(dir, { recursive: true, force: true });
  }
});

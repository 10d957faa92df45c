// The host lock serialises applies across processes and within one process, and takes over a
// lock left by a dead process.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { execFileSync } from 'node:child_process';
import { mkdtempSync, readFileSync, readdirSync, rmSync, writeFileSync, existsSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { withHostLock } from '../../src/agent/host/lock.js';
import { IpvisorError } from '../../src/core/model/errors.js';
import { skipUnless } from '../support/skip.js';
import { guardRootNamespace } from '../support/root-guard.js';

guardRootNamespace();

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

for (const [what, content] of [['empty', ''], ['garbage', 'not a pid\n'], ['a negative number', '-1\n']] as const) {
  test(`host lock: a lock file that is ${what} is taken over like a stale one`, async () => {
    const dir = mkdtempSync(join(tmpdir(), 'ipv-lock-'));
    const saved = process.env.IPVISOR_RUN_DIR;
    process.env.IPVISOR_RUN_DIR = dir;
    try {
      writeFileSync(join(dir, 'host.lock'), content);
      // before: every command waited out its timeout and failed ("held by pid NaN")
      assert.equal(await withHostLock(async () => 'ran', { timeoutMs: 2000 }), 'ran');
      assert.deepEqual(readdirSync(dir), [], 'released, nothing left behind');
    } finally {
      if (saved === undefined) delete process.env.IPVISOR_RUN_DIR;
      else process.env.IPVISOR_RUN_DIR = saved;
      rmSync(dir, { recursive: true, force: true });
    }
  });
}

test('host lock: on a full disk the lock fails, naming it, and leaves no empty lock file', { skip: skipUnless(process.getuid?.() !== 0 && 'needs root (mounts a one-page tmpfs)') }, async () => {
  const dir = mkdtempSync(join(tmpdir(), 'ipv-lockfull-'));
  const saved = process.env.IPVISOR_RUN_DIR;
  execFileSync('mount', ['-t', 'tmpfs', '-o', 'size=4k', 'ipv-lockfull', dir]);
  try {
    // fill it
    let n = 0;
    try {
      for (;;) writeFileSync(join(dir, `fill${n++}`), Buffer.alloc(4096, 1));
    } catch (e) {
      assert.equal((e as NodeJS.ErrnoException).code, 'ENOSPC');
    }
    const before = readdirSync(dir).sort();
    process.env.IPVISOR_RUN_DIR = dir;
    await assert.rejects(withHostLock(async () => 'ran', { timeoutMs: 2000 }), (e: unknown) => e instanceof IpvisorError && e.code === 'HOST_COMMAND' && /host\.lock cannot be created \(ENOSPC\)/.test(e.message));
    assert.deepEqual(readdirSync(dir).sort(), before, 'no empty host.lock (nor anything else) left behind');
    // and once there is room again, the lock works: no stale empty file blocks it
    rmSync(join(dir, 'fill0'), { force: true });
    for (const f of before) rmSync(join(dir, f), { force: true });
    assert.equal(await withHostLock(async () => 'ran', { timeoutMs: 2000 }), 'ran');
  } finally {
    if (saved === undefined) delete process.env.IPVISOR_RUN_DIR;
    else process.env.IPVISOR_RUN_DIR = saved;
    // lazy: a leaked descriptor (the old code's) must not leave the mount behind
    execFileSync('umount', ['-l', dir]);
    rmSync(dir, { recursive: true, force: true });
  }
});

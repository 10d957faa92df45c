// The qemu-ga socket client against a socket where nothing answers: QEMU's chardev accepts the
// connection even when no agent runs in the guest, so the error must say what to check.
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync } from 'node:fs';
import { createServer, type Socket } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { test } from 'node:test';
import { IpvisorError } from '../../src/core/model/errors.js';
import { QgaSocket } from '../../src/agent/guest/qga.js';

test('a socket that accepts but never answers: DRIVER error naming the sync and asking whether qemu-ga runs', async () => {
  const dir = mkdtempSync(join(tmpdir(), 'ipvisor-qga-'));
  const path = join(dir, 'silent.sock');
  const peers: Socket[] = [];
  const server = createServer((c) => peers.push(c)); // reads nothing, writes nothing
  await new Promise<void>((r) => server.listen(path, r));
  const qga = new QgaSocket(path);
  try {
    await assert.rejects(
      qga.execute('guest-ping', undefined, { timeoutMs: 300 }),
      (e: unknown) => e instanceof IpvisorError && e.code === 'DRIVER' && e.message === 'guest agent: no reply to guest-sync-delimited (is qemu-ga running in the guest?) within the timeout',
    );
  } finally {
    await qga.close();
    for (const p of peers) p.destroy();
    await new Promise<void>((r) => server.close(() => r()));
    rmSync(dir, { recursive: true, force: true });
  }
});

// The everyday-use defects found on a tour as a new user (issue 9), each through the CLI.
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { after, before, describe, test } from 'node:test';
import { cli, tempDb } from '../support/cli.js';

const ENTRY = new URL('../../src/cli/entry.ts', import.meta.url).pathname;

describe('CLI tour', () => {
  const { db, cleanup } = tempDb();
  after(cleanup);

  before(async () => {
    assert.equal((await cli(db, 'vm', 'add', 'web1', '--owner', 'acme')).code, 0);
    assert.equal((await cli(db, 'vm', 'add', 'web2', '--owner', 'acme')).code, 0);
  });

  test('a reader that closes the pipe early (`vm list | head -1`) is a normal end: exit 0, no stack trace', async () => {
    const child = spawn(process.execPath, ['--import', 'tsx', ENTRY, '--db', db, 'vm', 'list'], { stdio: ['ignore', 'pipe', 'pipe'] });
    // Close our end before the CLI writes: its first write meets a pipe without a reader (EPIPE).
    child.stdout.destroy();
    let err = '';
    child.stderr.on('data', (d) => (err += d));
    const code = await new Promise<number | null>((res) => child.on('close', (c) => res(c)));
    assert.equal(err, '', 'nothing on stderr');
    assert.equal(code, 0);
  });
});

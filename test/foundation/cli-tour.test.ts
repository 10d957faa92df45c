// The everyday-use defects found on a tour as a new user (issue 9), each through the CLI.
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { after, before, describe, test } from 'node:test';
import { cli } from '../support/cli.js';
import { storeBackends } from '../support/backends.js';

const ENTRY = new URL('../../src/cli/entry.ts', import.meta.url).pathname;

for (const backend of storeBackends()) describe(`CLI tour (${backend.name})`, { skip: backend.skip }, () => {
  let db: string;
  before(async () => {
    await backend.setup();
    db = await backend.newUrl();
  });
  after(() => backend.teardown());

  before(async () => {
    assert.equal((await cli(db, 'tenant', 'create', 'acme')).code, 0);
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

  test('an unknown command or option suggests the closest one, on the one error line', async () => {
    const r = await cli(db, 'vm', 'lsit');
    assert.equal(r.code, 2);
    assert.equal(r.stderr, "ipvisor: unknown command 'lsit'; did you mean list?\n");
    assert.match((await cli(db, 'netwrk', 'list')).stderr, /did you mean network\?/);
    assert.match((await cli(db, 'plna')).stderr, /did you mean plan\?/);
    assert.match((await cli(db, 'vm', 'list', '--jsn')).stderr, /did you mean --json\?/);
    const j = await cli(db, 'vm', 'lsit', '--json');
    assert.equal(j.error?.code, 'USAGE');
    assert.match(j.error!.message, /did you mean list\?/);
  });

  test('subcommand help shows the global options (--json, --db)', async () => {
    for (const args of [['vm', 'list', '--help'], ['network', '--help'], ['ip', 'allocate', '--help']]) {
      const r = await cli(db, ...args);
      assert.equal(r.code, 0);
      assert.match(r.stdout, /Global Options:[\s\S]*--json[\s\S]*--db <path>/, args.join(' '));
    }
  });
});

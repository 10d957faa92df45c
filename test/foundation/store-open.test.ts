// Fail closed on the store: enforcement and read-only commands never create one; a missing, empty,
// foreign, damaged, newer, read-only or full store is a coded error naming the path.
import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { chmodSync, existsSync, mkdtempSync, readFileSync, renameSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { after, describe, test } from 'node:test';
import Database from 'better-sqlite3';
import { openStore } from '../../src/core/store/open.js';
import { createVm } from '../../src/core/service/vms.js';
import { IpvisorError } from '../../src/core/model/errors.js';
import { defaultHookDeps } from '../../src/agent/libvirt/hook-main.js';
import { runLibvirtHook } from '../../src/agent/libvirt/hook.js';
import { cli } from '../support/cli.js';
import { guardRootNamespace } from '../support/root-guard.js';

guardRootNamespace();

const run = promisify(execFile);
const ROOT = new URL('../../', import.meta.url).pathname;

describe('store opening fails closed', () => {
  const dir = mkdtempSync(join(tmpdir(), 'ipv-storeopen-'));
  after(() => rmSync(dir, { recursive: true, force: true }));

  const readOnlyAndEnforcing: string[][] = [
    ['vm', 'list'], ['network', 'list'], ['network', 'show', 'x'], ['pool', 'list'], ['vif', 'list'], ['ip', 'list'], ['events'],
    ['xapi', 'list'], ['plan'], ['apply'], ['status'], ['teardown'], ['serve', '--interval', '1'],
  ];

  test('a missing path: exit 1, STORE_MISSING naming the path; neither the file nor its directory is created', async () => {
    const db = join(dir, 'typo', 'x.db');
    for (const args of readOnlyAndEnforcing) {
      const r = await cli(db, '--json', ...args);
      assert.equal(r.code, 1, `${args.join(' ')}: ${r.stderr}`);
      assert.equal(r.error?.code, 'STORE_MISSING', args.join(' '));
      assert.ok(r.error?.message.includes(db), `${args.join(' ')} names the path: ${r.error?.message}`);
      assert.match(r.error!.message, /ipvisor init/);
    }
    assert.equal(existsSync(join(dir, 'typo')), false, 'no directory created');
    const text = await cli(db, 'vm', 'list');
    assert.equal(text.stdout, '', 'no "no VMs"');
    assert.match(text.stderr, new RegExp(`^ipvisor: no ipvisor store at ${db.replace(/[/.]/g, '\\$&')} \\(no such file\\)`));
  });

  test('an empty file (truncated, failed copy): STORE_MISSING, and it stays empty', async () => {
    const db = join(dir, 'empty.db');
    writeFileSync(db, '');
    for (const args of readOnlyAndEnforcing) {
      const r = await cli(db, '--json', ...args);
      assert.equal(r.error?.code, 'STORE_MISSING', `${args.join(' ')}: ${r.stderr}`);
      assert.match(r.error!.message, /empty file/);
    }
    assert.equal(statSync(db).size, 0);
  });

  test('an SQLite database without ipvisor\'s schema: STORE_MISSING to readers, STORE_SCHEMA to writers (nothing written)', async () => {
    const db = join(dir, 'foreign.db');
    const raw = new Database(db);
    raw.exec('CREATE TABLE mine (x)');
    raw.close();
    const r = await cli(db, '--json', 'plan');
    assert.equal(r.error?.code, 'STORE_MISSING', r.stderr);
    assert.match(r.error!.message, /without ipvisor's schema/);
    const w = await cli(db, '--json', 'vm', 'add', 'a');
    assert.equal(w.error?.code, 'STORE_SCHEMA', w.stderr);
    const check = new Database(db, { readonly: true });
    assert.deepEqual(check.prepare("SELECT name FROM sqlite_master WHERE type = 'table'").all(), [{ name: 'mine' }]);
    check.close();
  });

  test('a file that is not a database: STORE_DAMAGED naming the path', async () => {
    const db = join(dir, 'garbage.db');
    writeFileSync(db, 'not a database, not at all. '.repeat(200));
    for (const args of [['vm', 'list'], ['plan'], ['vm', 'add', 'a']]) {
      const r = await cli(db, '--json', ...args);
      assert.equal(r.code, 1);
      assert.equal(r.error?.code, 'STORE_DAMAGED', `${args.join(' ')}: ${r.stderr}`);
      assert.ok(r.error!.message.includes(db));
    }
    assert.match(readFileSync(db, 'utf8'), /^not a database/, 'left as it was');
  });

  test('a store from a newer ipvisor: STORE_SCHEMA naming the path', async () => {
    const db = join(dir, 'newer.db');
    assert.equal((await cli(db, 'init')).code, 0);
    const raw = new Database(db);
    raw.prepare("UPDATE meta SET value = '999' WHERE key = 'schema_version'").run();
    raw.close();
    const r = await cli(db, '--json', 'vm', 'list');
    assert.equal(r.error?.code, 'STORE_SCHEMA');
    assert.ok(r.error!.message.includes(db) && /999/.test(r.error!.message));
  });

  test('init creates a store with an identity; again, it keeps it; a write command creates one too', async () => {
    const db = join(dir, 'new', 'ipvisor.db');
    const first = await cli(db, '--json', 'init');
    assert.equal(first.code, 0, first.stderr);
    assert.equal(first.json.created, true);
    assert.match(first.json.identity, /^[0-9a-f]{8}-[0-9a-f]{4}-4[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}$/);
    const again = await cli(db, '--json', 'init');
    assert.deepEqual([again.json.created, again.json.identity], [false, first.json.identity]);
    assert.match((await cli(db, 'vm', 'list')).stdout, /no VMs|^$/);
    assert.equal((await cli(db, 'vm', 'list')).code, 0);

    const other = join(dir, 'by-write', 'ipvisor.db');
    assert.equal((await cli(other, 'vm', 'add', 'web1')).code, 0);
    const s = await openStore(other);
    const id = await s.identity();
    await s.close();
    assert.notEqual(id.id, first.json.identity, 'each store its own identity');
    assert.equal(id.location, other);
  });

  test('a full disk: STORE_FULL naming the path, nothing written', async () => {
    const db = join(dir, 'full.db');
    const s = await openStore(db, { create: true });
    // SQLite's page limit gives the same SQLITE_FULL a full file system does
    const raw = (s as unknown as { db: Database.Database }).db;
    raw.pragma(`max_page_count = ${raw.pragma('page_count', { simple: true })}`);
    await assert.rejects(
      (async () => {
        for (let i = 0; i < 200; i++) await createVm(s, { name: `vm-${i}-${'x'.repeat(100)}`, extra: { pad: 'o'.repeat(100) } }, 't');
      })(),
      (e: unknown) => e instanceof IpvisorError && e.code === 'STORE_FULL' && e.message.includes(db) && e.exitCode === 1,
    );
    await s.close();
  });

  test('a read-only store: STORE_READONLY naming the path', async () => {
    const db = join(dir, 'ro', 'ipvisor.db');
    assert.equal((await cli(db, 'init')).code, 0);
    chmodSync(join(dir, 'ro'), 0o755);
    chmodSync(db, 0o444);
    chmodSync(dir, 0o755);
    // root writes through file modes: run the CLI as nobody then
    const asUser = process.getuid?.() === 0 ? ['setpriv', '--reuid=65534', '--regid=65534', '--clear-groups', '--'] : [];
    const argv = [...asUser, process.execPath, '--import', 'tsx', join(ROOT, 'src/cli/entry.ts'), '--db', db, '--json', 'vm', 'add', 'w'];
    const res = await run(argv[0], argv.slice(1), { cwd: ROOT, env: { ...process.env, HOME: dir, TSX_TSCONFIG_PATH: join(ROOT, 'tsconfig.json') } }).then(
      () => ({ code: 0, stderr: '' }),
      (e: { code: number; stderr: string }) => ({ code: e.code, stderr: e.stderr }),
    );
    assert.equal(res.code, 1, res.stderr);
    const err = JSON.parse(res.stderr).error;
    assert.equal(err.code, 'STORE_READONLY', res.stderr);
    assert.ok(err.message.includes(db));
  });

  test('a libvirt hook with no store refuses (exit 1, the path named) and creates nothing', async () => {
    const db = join(dir, 'hookless', 'ipvisor.db');
    const deps = defaultHookDeps({ kind: 'qemu', db, logFile: join(dir, 'hook.log'), args: [] });
    const xml = readFileSync(new URL('../libvirt/fixtures/qemu-lvdom1-prepare-begin.xml', import.meta.url), 'utf8');
    const r = await runLibvirtHook('qemu', ['lvdom1', 'prepare', 'begin', '-'], xml, deps);
    assert.equal(r.code, 1);
    assert.ok(r.refusal?.includes(db), r.refusal);
    assert.match(r.refusal!, /no ipvisor store/);
    assert.equal(existsSync(join(dir, 'hookless')), false);
  });

  test('a store file replaced on disk (backup restored with mv) is noticed, and closing leaves no WAL to replay into it', async () => {
    const db = join(dir, 'restore', 'ipvisor.db');
    const s = await openStore(db, { create: true });
    await s.putDoc('t', 'before', 1);
    const raw = new Database(db, { readonly: true });
    raw.exec(`VACUUM INTO '${join(dir, 'restore', 'backup.db')}'`);
    raw.close();
    await s.putDoc('t', 'after', 2);
    assert.equal(s.replacedOnDisk?.(), false);
    renameSync(join(dir, 'restore', 'backup.db'), db);
    assert.equal(s.replacedOnDisk?.(), true);
    await s.close();
    const again = await openStore(db);
    assert.deepEqual((await again.listDocs('t')).map((d) => d.key), ['before'], 'the backup as it was, not the old file\'s WAL replayed into it');
    assert.equal(again.replacedOnDisk?.(), false);
    await again.close();
  });
});

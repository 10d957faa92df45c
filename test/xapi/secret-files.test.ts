// Secrets and files that root acts on (issue 9): secret files are private regular files (a FIFO
// must not hang `xapi connect`), http:// needs --insecure-http, the dom0 binder refuses a config or
// program others could write, `import vif-ip-binder` never overwrites or writes through a link.
import { test, after, before } from 'node:test';
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { chmodSync, chownSync, existsSync, mkdirSync, mkdtempSync, readFileSync, rmSync, symlinkSync, writeFileSync, copyFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { cli, tempDb } from '../support/cli.js';
import { startXapiSim, type XapiSim } from '../support/xapi-sim/sim.js';
import { readSecretFile } from '../../src/core/model/secret-file.js';
import { loadDom0Config } from '../../src/agent/dom0/main.js';
import { IpvisorError } from '../../src/core/model/errors.js';
import { skipTest } from '../support/skip.js';
import { HttpControlPlane } from '../../src/agent/http-control-plane.js';
import { guardRootNamespace } from '../support/root-guard.js';

guardRootNamespace();

const isRoot = process.getuid?.() === 0;
let dir: string;
let sim: XapiSim;
let db: string;
let cleanup: () => void;
before(async () => {
  dir = mkdtempSync(join(tmpdir(), 'ipv-secret-'));
  sim = await startXapiSim();
  ({ db, cleanup } = tempDb());
  assert.equal((await cli(db, 'init')).code, 0);
});
after(async () => {
  await sim.close();
  cleanup();
  rmSync(dir, { recursive: true, force: true });
});

function refusedWith(field: string, pattern: RegExp): (e: unknown) => boolean {
  return (e: unknown) => e instanceof IpvisorError && e.code === 'VALIDATION' && e.field === field && pattern.test(e.message) && !e.message.includes('\n');
}

test('readSecretFile: a private regular file is read; a FIFO, a link, a directory, open modes and foreign owners are refused', async (t) => {
  const ok = join(dir, 'ok');
  writeFileSync(ok, 'secret\n', { mode: 0o600 });
  assert.equal(readSecretFile(ok, 'password-file'), 'secret\n');

  const fifo = join(dir, 'fifo');
  execFileSync('mkfifo', ['-m', '600', fifo]);
  // would block forever on a plain open(): the refusal comes without a writer
  assert.throws(() => readSecretFile(fifo, 'password-file'), refusedWith('password-file', /is a FIFO; a secret must be a regular file/));

  const link = join(dir, 'link');
  symlinkSync(ok, link);
  assert.throws(() => readSecretFile(link, 'password-file'), refusedWith('password-file', /symbolic link; refused/));
  assert.throws(() => readSecretFile(dir, 'password-file'), refusedWith('password-file', /directory/));
  for (const mode of [0o640, 0o604, 0o610, 0o601]) {
    chmodSync(ok, mode);
    assert.throws(() => readSecretFile(ok, 'password-file'), refusedWith('password-file', /open to group or others/), mode.toString(8));
  }
  chmodSync(ok, 0o600);
  assert.throws(() => readSecretFile(join(dir, 'missing'), 'password-file'), refusedWith('password-file', /ENOENT/));
  if (!isRoot) return skipTest(t, 'needs root (chown)');
  chownSync(ok, 65534, 65534);
  assert.throws(() => readSecretFile(ok, 'password-file'), refusedWith('password-file', /owned by uid 65534/));
  chownSync(ok, 0, 0);
});

test('xapi connect: a FIFO or a link as password file, and an http:// URL without --insecure-http, are exit 2 with nothing stored', async () => {
  const pw = join(dir, 'pw-connect');
  writeFileSync(pw, 'secret\n', { mode: 0o600 });
  const fifo = join(dir, 'pw-fifo');
  execFileSync('mkfifo', ['-m', '600', fifo]);
  const link = join(dir, 'pw-link');
  symlinkSync(pw, link);
  const cases: Array<[string, string[]]> = [
    ['password-file', ['--url', sim.url, '--insecure-http', '--password-file', fifo]],
    ['password-file', ['--url', sim.url, '--insecure-http', '--password-file', link]],
    ['url', ['--url', sim.url, '--password-file', pw]],
  ];
  for (const [field, args] of cases) {
    const r = await cli(db, 'xapi', 'connect', 'lab', '--user', 'root', ...args);
    assert.equal(r.code, 2, `${args.join(' ')}: ${r.stderr}`);
    assert.equal(r.stderr.split('\n').filter(Boolean).length, 1);
    assert.ok(r.stderr.startsWith(`ipvisor: ${field}: `), r.stderr);
  }
  assert.match((await cli(db, 'xapi', 'connect', 'lab', '--user', 'root', '--url', sim.url, '--password-file', pw)).stderr, /password would cross the network in clear/);
  const list = await cli(db, 'xapi', 'list', '--json');
  assert.deepEqual(list.json, [], 'nothing stored');
  const ok = await cli(db, 'xapi', 'connect', 'lab', '--user', 'root', '--url', sim.url, '--insecure-http', '--password-file', pw, '--json');
  assert.equal(ok.code, 0, ok.stderr);
});

const binderConfig = (pw: string, extra: Record<string, unknown> = {}) => JSON.stringify({ xapi: { passwordFile: pw }, bindings: [{ vm: 'fw', network: 'sspn', addresses: ['10.0.0.1/24'] }], ...extra });

test('dom0 binder: a config others can write or do not own, and programs others can write, are refused', async (t) => {
  if (!isRoot) return skipTest(t, 'needs root (files owned by root and by others)');
  const pw = join(dir, 'dom0-pw');
  writeFileSync(pw, 'x\n', { mode: 0o600 });
  const cfg = join(dir, 'dom0.json');
  writeFileSync(cfg, binderConfig(pw), { mode: 0o644 });
  assert.equal(loadDom0Config(cfg).bindings.length, 1, 'root-owned, 644, default ip/ping from PATH');
  for (const mode of [0o664, 0o646]) {
    chmodSync(cfg, mode);
    assert.throws(() => loadDom0Config(cfg), refusedWith('config', /writable by group or others/), mode.toString(8));
  }
  chmodSync(cfg, 0o644);
  chownSync(cfg, 65534, 65534);
  assert.throws(() => loadDom0Config(cfg), refusedWith('config', /owned by uid 65534/));
  chownSync(cfg, 0, 0);

  // a program the binder would run as root
  const bin = join(dir, 'bin');
  mkdirSync(bin, { mode: 0o755 });
  const fakeIp = join(bin, 'ip');
  copyFileSync('/bin/true', fakeIp);
  chmodSync(fakeIp, 0o757);
  writeFileSync(cfg, binderConfig(pw, { ipBinary: fakeIp }), { mode: 0o644 });
  assert.throws(() => loadDom0Config(cfg), refusedWith('ipBinary', /writable by group or others/));
  chmodSync(fakeIp, 0o755);
  chownSync(fakeIp, 65534, 65534);
  assert.throws(() => loadDom0Config(cfg), refusedWith('ipBinary', /owned by uid 65534/));
  chownSync(fakeIp, 0, 0);
  assert.equal(loadDom0Config(cfg).ipBinary, fakeIp);
  const link = join(bin, 'ping');
  symlinkSync(fakeIp, link);
  chmodSync(fakeIp, 0o775);
  writeFileSync(cfg, binderConfig(pw, { ipBinary: '/bin/true', pingBinary: link }), { mode: 0o644 });
  assert.throws(() => loadDom0Config(cfg), refusedWith('pingBinary', /writable by group or others/), 'a link is followed to its target');

  // through the CLI: exit 2, one line naming the field
  chmodSync(cfg, 0o666);
  const r = await cli(db, 'xapi', 'dom0', '--config', cfg, '--json');
  assert.equal(r.code, 2);
  assert.equal(r.error?.field, 'config');
});

test('import vif-ip-binder: never overwrites the password file without --force, never writes through a link, warns about a readable source', async () => {
  const legacy = { user: 'root', password: 'topsecret', vmName: 'pfsense', sspnName: 'SSPN', brName: 'xenbr1', address: '192.168.1.10/24', gateway: '192.168.1.1' };
  const src = join(dir, 'vif-ip-binder.json');
  writeFileSync(src, JSON.stringify(legacy), { mode: 0o644 });
  const etc = join(dir, 'etc-a');
  mkdirSync(etc);
  const out = join(etc, 'dom0.json');
  const pwFile = join(etc, 'dom0.password');

  // an existing password file (another binder's), no config yet: refused, nothing written
  writeFileSync(pwFile, 'other\n', { mode: 0o600 });
  let r = await cli(db, 'import', 'vif-ip-binder', src, '--out', out);
  assert.equal(r.code, 2, r.stderr);
  assert.match(r.stderr, /^ipvisor: password-file: .*dom0\.password exists; use --force to overwrite\n$/);
  assert.equal(readFileSync(pwFile, 'utf8'), 'other\n');
  assert.equal(existsSync(out), false);

  // --force overwrites it, and warns that the source holds the password in clear for everyone
  r = await cli(db, 'import', 'vif-ip-binder', src, '--out', out, '--force');
  assert.equal(r.code, 0, r.stderr);
  assert.equal(readFileSync(pwFile, 'utf8'), 'topsecret\n');
  assert.match(r.stderr, /warning: .*vif-ip-binder\.json holds the XAPI password in clear text and is readable by everyone \(mode 644\)/);
  assert.ok(!r.stderr.includes('topsecret'));

  // a symbolic link at the password path: refused even with --force; its target untouched
  const etcB = join(dir, 'etc-b');
  mkdirSync(etcB);
  const victim = join(dir, 'victim');
  writeFileSync(victim, 'keep\n', { mode: 0o644 });
  symlinkSync(victim, join(etcB, 'dom0.password'));
  for (const force of [[], ['--force']]) {
    r = await cli(db, 'import', 'vif-ip-binder', src, '--out', join(etcB, 'dom0.json'), ...force);
    assert.equal(r.code, 2, r.stderr);
    assert.match(r.stderr, /^ipvisor: password-file: .* is a symbolic link; refused/);
  }
  assert.equal(readFileSync(victim, 'utf8'), 'keep\n');
  assert.equal(existsSync(join(etcB, 'dom0.json')), false);
  // and a link at the config path
  const etcC = join(dir, 'etc-c');
  mkdirSync(etcC);
  symlinkSync(victim, join(etcC, 'dom0.json'));
  r = await cli(db, 'import', 'vif-ip-binder', src, '--out', join(etcC, 'dom0.json'), '--force');
  assert.equal(r.code, 2);
  assert.match(r.stderr, /^ipvisor: out: .* is a symbolic link; refused/);
  assert.equal(existsSync(join(etcC, 'dom0.password')), false, 'nothing written');
  assert.equal(readFileSync(victim, 'utf8'), 'keep\n');

  // a private source: no warning
  chmodSync(src, 0o600);
  r = await cli(db, 'import', 'vif-ip-binder', src, '--out', join(dir, 'etc-d', 'dom0.json'));
  assert.equal(r.code, 0, r.stderr);
  assert.equal(r.stderr, '');
});

test("an agent's token file goes through the same secret-file check", () => {
  const tok = join(dir, 'agent.token');
  writeFileSync(tok, 'tok-123456\n', { mode: 0o644 });
  const make = (tokenFile: string) => new HttpControlPlane({ servers: ['https://127.0.0.1:1'], tokenFile });
  assert.throws(() => make(tok), refusedWith('token-file', /open to group or others/));
  const fifo = join(dir, 'agent.fifo');
  execFileSync('mkfifo', ['-m', '600', fifo]);
  assert.throws(() => make(fifo), refusedWith('token-file', /FIFO/));
  chmodSync(tok, 0o600);
  assert.doesNotThrow(() => make(tok));
});

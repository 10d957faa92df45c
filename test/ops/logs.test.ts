// Structured logs: one pino logger with level, time, component, host and the request or hook id; JSON
// lines off a terminal, text on one; --log-level; and no password or token in any line: the test
// runs the commands that handle secrets (XAPI connect, sync, a failing login, serve with the XAPI event
// watcher at trace level) and greps everything they printed.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { createLogger, formatLine, registerSecret } from '../../src/core/log.js';
import { cli, tempDb } from '../support/cli.js';
import { startXapiSim } from '../support/xapi-sim/sim.js';
import { netnsSkipReason, Topology } from '../support/netns.js';
import { guardRootNamespace } from '../support/root-guard.js';

guardRootNamespace();

const PASSWORD = 'Ops-Pa55word-7f3e!';
const UNIT_PASSWORD = 'Unit-S3cret-"quoted"-pw';
const UNIT_TOKEN = 'ipv-token-9c1d7b0e4a';

function capture(isTTY = false) {
  const lines: string[] = [];
  return { lines, sink: { write: (s: string) => void lines.push(s), isTTY } };
}

test('a line has level, time, pid, host, component and the ids it was given; levels filter', () => {
  const c = capture();
  const log = createLogger({ sink: c.sink, level: 'info' }).child({ component: 'serve', requestId: 'r-1' });
  log.debug('not shown');
  log.warn({ pool: 'lan4' }, 'pool almost full');
  assert.equal(c.lines.length, 1);
  const o = JSON.parse(c.lines[0]);
  assert.equal(o.level, 40);
  assert.equal(o.component, 'serve');
  assert.equal(o.requestId, 'r-1');
  assert.equal(o.pool, 'lan4');
  assert.equal(o.msg, 'pool almost full');
  assert.ok(typeof o.time === 'number' && typeof o.host === 'string' && o.pid === process.pid);
});

test('a terminal gets one text line per entry', () => {
  const c = capture(true);
  createLogger({ sink: c.sink }).child({ component: 'libvirt-hook', hookId: 'h1' }).error({ vm: 'web 1' }, 'refused');
  assert.match(c.lines[0], /^\d\d:\d\d:\d\d\.\d{3} ERROR libvirt-hook: refused hookId=h1 vm="web 1"\n$/);
  assert.equal(formatLine('not json\n'), 'not json\n');
});

test('secrets: keys that name one are censored; registered values are scrubbed from messages and errors', () => {
  const c = capture();
  const log = createLogger({ sink: c.sink });
  log.info({ password: UNIT_PASSWORD, conn: { token: UNIT_TOKEN }, req: { headers: { authorization: `Bearer ${UNIT_TOKEN}` } } }, 'connect');
  registerSecret(UNIT_PASSWORD);
  registerSecret(UNIT_TOKEN);
  log.error({ err: new Error(`login failed for root/${UNIT_PASSWORD}`) }, `retrying with ${UNIT_TOKEN}`);
  log.info(`quoted "${UNIT_PASSWORD}"`);
  const all = c.lines.join('');
  assert.ok(!all.includes(UNIT_PASSWORD) && !all.includes(UNIT_TOKEN), all);
  assert.ok(!all.includes('Unit-S3cret'), all);
  assert.match(all, /\[redacted\]/);
  assert.equal(c.lines.length, 3);
});

test('--log-level: a bad level is a usage error naming the option', async () => {
  const { db, cleanup } = tempDb();
  try {
    const r = await cli(db, '--log-level', 'loud', 'network', 'list');
    assert.equal(r.code, 2);
    assert.match(r.stderr, /^ipvisor: log-level: 'loud' is not one of fatal, error, warn, info, debug, trace, silent/);
  } finally {
    cleanup();
  }
});

const skip = await netnsSkipReason();

test('no password appears in anything XAPI connect, sync, a failed login and serve (trace level) print', { skip: skip ?? false }, async () => {
  const dir = mkdtempSync(join(tmpdir(), 'ipv-logs-'));
  const db = join(dir, 'ipvisor.db');
  const pw = join(dir, 'pw');
  const wrong = join(dir, 'wrong');
  writeFileSync(pw, PASSWORD + '\n', { mode: 0o600 });
  writeFileSync(wrong, `not-${PASSWORD}\n`, { mode: 0o600 });
  const sim = await startXapiSim({ socketPath: join(dir, 'xapi.sock'), password: PASSWORD });
  const topo = new Topology();
  let output = '';
  try {
    await topo.create();
    const run = async (...args: string[]) => {
      const r = await cli(db, '--log-level', 'trace', ...args);
      output += r.stdout + r.stderr;
      return r;
    };
    assert.equal((await run('init')).code, 0);
    assert.equal((await run('xapi', 'connect', 'lab', '--url', sim.url, '--insecure-http', '--user', 'root', '--password-file', pw)).code, 0, output);
    assert.equal((await run('xapi', 'sync')).code, 0, output);
    await run('xapi', 'show', 'lab', '--json');
    const bad = await run('xapi', 'connect', 'lab2', '--url', sim.url, '--insecure-http', '--user', 'root', '--password-file', wrong);
    assert.notEqual(bad.code, 0, 'a wrong password is refused');
    // serve as a process: its log lines go to a pipe, so JSON lines
    const child = spawn(process.execPath, ['--import', 'tsx', resolve('src/cli/entry.ts'), '--db', db, '--log-level', 'trace', 'serve', '--interval', '1'], {
      env: { ...process.env, IPVISOR_NETNS: topo.host, IPVISOR_RUN_DIR: dir },
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    let served = '';
    child.stdout.on('data', (b: Buffer) => (served += b.toString()));
    child.stderr.on('data', (b: Buffer) => (served += b.toString()));
    const exited = new Promise<number | null>((r) => child.once('exit', (code) => r(code)));
    const end = Date.now() + 60_000;
    while (!/"msg":"serving: /.test(served) && child.exitCode === null && Date.now() < end) await new Promise((r) => setTimeout(r, 100));
    await new Promise((r) => setTimeout(r, 2500)); // a few periodic runs and the XAPI event watcher's login
    child.kill('SIGTERM');
    await exited;
    output += served;
    const lines = served.split('\n').filter((l) => l.startsWith('{'));
    assert.ok(lines.length >= 1, served);
    const serving = lines.map((l) => JSON.parse(l)).find((o) => /^serving: /.test(o.msg));
    assert.ok(serving, served);
    assert.equal(serving.component, 'serve');
    assert.equal(typeof serving.host, 'string');
    assert.equal(serving.level, 30);
  } finally {
    await sim.close();
    await topo.destroy();
    rmSync(dir, { recursive: true, force: true });
  }
  assert.ok(output.length > 200, 'the commands printed something');
  assert.ok(!output.includes(PASSWORD), `the password appears:\n${output.split('\n').filter((l) => l.includes(PASSWORD)).join('\n')}`);
});

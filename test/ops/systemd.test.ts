// The shipped systemd units (deploy/systemd): systemd-analyze verify finds nothing to say about them,
// their sandboxing is what each daemon needs, and `libvirt install` uses the same hardened unit
// instead of writing one of its own.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { existsSync, mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { HOOK_MARKER, SERVE_UNIT, installServeUnit, renderServeUnit, serveUnitTemplate, uninstallHooks } from '../../src/agent/libvirt/install.js';
import { runCli } from '../../src/cli/main.js';
import { skipUnless } from '../support/skip.js';
import { guardRootNamespace } from '../support/root-guard.js';

guardRootNamespace();

const UNITS = ['ipvisor-serve.service', 'ipvisor-agent.service', 'ipvisor-server.service'];
const hasAnalyze = spawnSync('sh', ['-c', 'command -v systemd-analyze']).status === 0;
const skip = skipUnless(!hasAnalyze && 'systemd-analyze is not installed (Debian package systemd)');
const BIN = resolve('bin/ipvisor');

function tmp(): { dir: string; done: () => void } {
  const dir = mkdtempSync(join(tmpdir(), 'ipvisor-units-'));
  return { dir, done: () => rmSync(dir, { recursive: true, force: true }) };
}

/** systemd-analyze verify's complaints about one unit file (empty: none). /usr/bin/ipvisor is not
 * installed on a test machine, so the copy runs this checkout's bin/ipvisor instead. */
function verify(dir: string, name: string, text: string): string {
  const file = join(dir, name);
  writeFileSync(file, existsSync('/usr/bin/ipvisor') ? text : text.replace(/^ExecStart=\/usr\/bin\/ipvisor /m, `ExecStart=${BIN} `));
  const r = spawnSync('systemd-analyze', ['verify', '--man=no', '--generators=no', file], { encoding: 'utf8' });
  return (r.stderr + (r.status ? `exit ${r.status}` : '')).trim();
}

function directives(text: string): Map<string, string[]> {
  const m = new Map<string, string[]>();
  for (const line of text.split('\n')) {
    const kv = /^([A-Za-z]+)=(.*)$/.exec(line);
    if (kv) m.set(kv[1], [...(m.get(kv[1]) ?? []), kv[2]]);
  }
  return m;
}

function exposure(file: string): number {
  const r = spawnSync('systemd-analyze', ['security', '--offline=true', '--no-pager', file], { encoding: 'utf8' });
  const m = /Overall exposure level for \S+: ([\d.]+)/.exec(r.stdout);
  assert.ok(m, r.stdout + r.stderr);
  return Number(m[1]);
}

test('systemd-analyze verify: the shipped units have no findings; a broken unit has', { skip }, () => {
  const t = tmp();
  try {
    for (const u of UNITS) assert.equal(verify(t.dir, u, readFileSync(join('deploy/systemd', u), 'utf8')), '', u);
    // the check can fail: an unknown key and a bad value are reported
    const bad = readFileSync('deploy/systemd/ipvisor-serve.service', 'utf8').replace('ProtectSystem=strict', 'ProtectSystem=maybe\nProtectEverything=yes');
    assert.match(verify(t.dir, 'ipvisor-bad.service', bad), /ProtectEverything|protect system/i);
  } finally {
    t.done();
  }
});

test('units: sandboxing each daemon needs (host networking for serve and agent, none for server)', () => {
  for (const u of UNITS) {
    const d = directives(readFileSync(join('deploy/systemd', u), 'utf8'));
    const one = (k: string) => (d.get(k) ?? []).join(' ');
    assert.equal(one('NoNewPrivileges'), 'yes', u);
    assert.equal(one('ProtectSystem'), 'strict', u);
    assert.equal(one('ProtectHome'), 'yes', u);
    assert.equal(one('PrivateTmp'), 'yes', u);
    assert.ok(one('ReadWritePaths'), u);
    assert.match(one('ExecStart'), /^\/usr\/bin\/ipvisor (serve|agent|server) /, u);
    const families = one('RestrictAddressFamilies').split(/\s+/).sort();
    if (u === 'ipvisor-server.service') {
      assert.equal(one('CapabilityBoundingSet'), '', 'server: no capabilities');
      assert.deepEqual(families, ['AF_INET', 'AF_INET6', 'AF_UNIX']);
      assert.equal(one('DynamicUser'), 'yes');
      assert.equal(one('ProtectKernelTunables'), 'yes');
    } else {
      assert.deepEqual(one('CapabilityBoundingSet').split(/\s+/).sort(), ['CAP_NET_ADMIN', 'CAP_NET_RAW'], u);
      assert.deepEqual(families, ['AF_INET', 'AF_INET6', 'AF_NETLINK', 'AF_UNIX'], u);
      // sysctls (ip_forward, proxy_arp/ndp) are written: /proc/sys must stay writable
      assert.notEqual(one('ProtectKernelTunables'), 'yes', u);
      assert.match(one('ReadWritePaths'), /\/var\/lib\/ipvisor/, u);
      assert.match(one('ReadWritePaths'), /\/run\/ipvisor/, u);
    }
  }
  assert.match(directives(readFileSync('deploy/systemd/ipvisor-agent.service', 'utf8')).get('ReadWritePaths')!.join(' '), /\/etc\/libvirt\/hooks/);
});

test('systemd-analyze security: exposure of each unit (recorded in docs/operations.md)', { skip }, () => {
  const figures: Record<string, number> = {};
  for (const u of UNITS) figures[u] = exposure(join('deploy/systemd', u));
  console.log(`# exposure: ${JSON.stringify(figures)}`);
  assert.ok(figures['ipvisor-server.service'] <= 2, `server ${figures['ipvisor-server.service']}`);
  assert.ok(figures['ipvisor-serve.service'] <= 3.5, `serve ${figures['ipvisor-serve.service']}`);
  assert.ok(figures['ipvisor-agent.service'] <= 3.5, `agent ${figures['ipvisor-agent.service']}`);
  const doc = readFileSync('docs/operations.md', 'utf8');
  for (const [u, v] of Object.entries(figures)) assert.match(doc, new RegExp(`\\| ${u.replace('.', '\\.')} \\| ${v.toFixed(1)} `), `docs/operations.md lists ${u} at ${v}`);
});

test('libvirt install, source checkout: the shipped hardened unit runs this checkout; verify finds nothing', { skip }, () => {
  const t = tmp();
  try {
    const sd = join(t.dir, 'etc');
    const res = installServeUnit({ systemdDir: sd, packagedDirs: [join(t.dir, 'lib')], execStart: [process.execPath, BIN, 'serve'], db: '/var/lib/ipvisor/ipvisor.db', template: serveUnitTemplate() });
    assert.equal(res.packaged, false);
    assert.deepEqual(res.written, [join(sd, SERVE_UNIT)]);
    const text = readFileSync(join(sd, SERVE_UNIT), 'utf8');
    assert.ok(text.startsWith(HOOK_MARKER));
    assert.match(text, new RegExp(`^ExecStart=${process.execPath} ${BIN} serve \\$IPVISOR_SERVE_ARGS$`, 'm'));
    for (const k of ['NoNewPrivileges=yes', 'ProtectSystem=strict', 'CapabilityBoundingSet=CAP_NET_ADMIN CAP_NET_RAW']) assert.ok(text.includes(k), k);
    const r = spawnSync('systemd-analyze', ['verify', '--man=no', '--generators=no', join(sd, SERVE_UNIT)], { encoding: 'utf8' });
    assert.equal(r.stderr.trim(), '');
    // special characters survive systemd's quoting; a checkout under /root keeps ProtectHome read-only
    const odd = renderServeUnit(serveUnitTemplate(), { execStart: ['/usr/bin/node', '/root/my ipvisor/100%/$x/bin/ipvisor', 'serve'] });
    assert.match(odd, /^ExecStart=\/usr\/bin\/node "\/root\/my ipvisor\/100%%\/\$\$x\/bin\/ipvisor" serve \$IPVISOR_SERVE_ARGS$/m);
    assert.match(odd, /^ProtectHome=read-only$/m);
  } finally {
    t.done();
  }
});

test('libvirt install with the packaged unit: an old ipvisor-written unit that would shadow it goes, a foreign one stays; another store gets a drop-in', () => {
  const t = tmp();
  try {
    const sd = join(t.dir, 'etc');
    const lib = join(t.dir, 'lib');
    mkdirSync(lib);
    mkdirSync(sd);
    writeFileSync(join(lib, SERVE_UNIT), readFileSync('deploy/systemd/ipvisor-serve.service'));
    writeFileSync(join(sd, SERVE_UNIT), `${HOOK_MARKER}\n[Service]\nExecStart=/usr/bin/node /opt/ipvisor/bin/ipvisor serve\n`); // what older versions wrote
    const opts = { systemdDir: sd, packagedDirs: [lib], execStart: ['/usr/bin/node', BIN, 'serve'], template: serveUnitTemplate() };
    const res = installServeUnit({ ...opts, db: '/srv/ipvisor/state.db' });
    assert.equal(res.packaged, true);
    assert.deepEqual(res.removed, [join(sd, SERVE_UNIT)]);
    const dropIn = join(sd, `${SERVE_UNIT}.d`, '10-ipvisor-libvirt-install.conf');
    assert.deepEqual(res.written, [dropIn]);
    assert.match(readFileSync(dropIn, 'utf8'), /^Environment=IPVISOR_DB=\/srv\/ipvisor\/state\.db\nReadWritePaths=\/srv\/ipvisor\n/m);
    assert.ok(existsSync(join(lib, SERVE_UNIT)));
    // back to the default store: the drop-in goes
    assert.deepEqual(installServeUnit({ ...opts, db: '/var/lib/ipvisor/ipvisor.db' }).removed, [dropIn]);
    // a unit the admin wrote is never replaced
    writeFileSync(join(sd, SERVE_UNIT), '[Service]\nExecStart=/bin/true\n');
    assert.equal(installServeUnit({ ...opts, db: '/var/lib/ipvisor/ipvisor.db' }).skipped.length, 1);
    assert.equal(readFileSync(join(sd, SERVE_UNIT), 'utf8'), '[Service]\nExecStart=/bin/true\n');
    // uninstall removes only ours (the packaged unit is the package's)
    writeFileSync(join(sd, SERVE_UNIT), renderServeUnit(serveUnitTemplate(), { execStart: ['/usr/bin/node', BIN, 'serve'] }));
    const un = uninstallHooks({ hooksDir: join(t.dir, 'hooks'), systemdDir: sd });
    assert.deepEqual(un.removed, [join(sd, SERVE_UNIT)]);
    assert.ok(existsSync(join(lib, SERVE_UNIT)));
  } finally {
    t.done();
  }
});

test('ipvisor libvirt install --systemd-dir: hooks plus the shipped unit (no systemctl outside /etc/systemd/system)', async () => {
  const t = tmp();
  try {
    const entry = join(t.dir, 'hook.cjs');
    writeFileSync(entry, '');
    let out = '';
    const io = { stdout: (s: string) => (out += s), stderr: (s: string) => (out += s), env: process.env };
    const code = await runCli(['--db', join(t.dir, 'db', 'ipvisor.db'), '--json', 'libvirt', 'install', '--hooks-dir', join(t.dir, 'hooks'), '--systemd-dir', join(t.dir, 'sd'), '--entry', entry, '--log', join(t.dir, 'hook.log')], io);
    assert.equal(code, 0, out);
    const res = JSON.parse(out);
    assert.equal(res.enabled, false);
    const unit = readFileSync(join(t.dir, 'sd', SERVE_UNIT), 'utf8');
    assert.match(unit, /^ProtectSystem=strict$/m);
    assert.ok(res.written.includes(join(t.dir, 'sd', `${SERVE_UNIT}.d`, '10-ipvisor-libvirt-install.conf')), 'non-default store: drop-in');
  } finally {
    t.done();
  }
});

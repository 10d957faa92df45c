// The Debian package, installed for real: `apt-get install ./dist/ipvisor_*.deb`, then the installed
// /usr/bin/ipvisor (version, init, a network and a pool, plan inside a network namespace, doctor),
// the units, man page and completions in place, then `apt-get purge`, which keeps /var/lib/ipvisor.
// Not part of `npm test` (it installs a package on the machine): .ci/deb.sh builds the package and
// runs this file. Root only.
import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { existsSync, mkdtempSync, readFileSync, readdirSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { skipUnless } from '../support/skip.js';
import { guardRootNamespace } from '../support/root-guard.js';

guardRootNamespace();

const VERSION = JSON.parse(readFileSync('package.json', 'utf8')).version as string;
const DEB = resolve(process.env.IPVISOR_DEB ?? `dist/ipvisor_${VERSION}_amd64.deb`);
const skip = skipUnless(process.getuid?.() !== 0 ? 'needs root (installs a package)' : !existsSync(DEB) ? `${DEB} is missing: run scripts/build-deb.sh first` : false);
const NS = `ipvdeb${process.pid % 100000}`;
const dir = mkdtempSync(join(tmpdir(), 'ipv-deb-'));
const db = join(dir, 'ipvisor.db');
const stateExisted = existsSync('/var/lib/ipvisor');

function sh(argv: string[], env: NodeJS.ProcessEnv = {}): { code: number; out: string; err: string } {
  const r = spawnSync(argv[0], argv.slice(1), { encoding: 'utf8', env: { ...process.env, DEBIAN_FRONTEND: 'noninteractive', ...env }, timeout: 600_000 });
  return { code: r.status ?? 1, out: r.stdout ?? '', err: r.stderr ?? '' };
}
const apt = (...args: string[]) => sh(['apt-get', '-y', '-q', '-o', 'DPkg::Lock::Timeout=300', ...args]);
const ipvisor = (...args: string[]) => sh(['/usr/bin/ipvisor', '--db', db, ...args]);

before(() => {
  if (skip) return;
  const r = apt('install', '--no-install-recommends', DEB);
  assert.equal(r.code, 0, r.out + r.err);
});

after(() => {
  if (!skip) {
    sh(['ip', 'netns', 'del', NS]);
    if (existsSync('/usr/bin/ipvisor')) apt('purge', 'ipvisor');
    if (!stateExisted) rmSync('/var/lib/ipvisor', { recursive: true, force: true });
  }
  rmSync(dir, { recursive: true, force: true });
});

test('installed: version, its own Node runtime, units, man page, completions, state directory', { skip }, () => {
  const v = sh(['/usr/bin/ipvisor', '--version']);
  assert.equal(v.code, 0, v.err);
  assert.equal(v.out.trim(), VERSION);
  const node = sh(['/usr/lib/ipvisor/node/bin/node', '--version']);
  assert.match(node.out, /^v(2[2-9]|[3-9]\d)\./, 'a current LTS runtime, not Debian 12\'s Node 18');
  for (const u of ['ipvisor-serve.service', 'ipvisor-agent.service', 'ipvisor-server.service']) {
    assert.ok(existsSync(`/lib/systemd/system/${u}`), u);
    const r = sh(['systemd-analyze', 'verify', '--man=no', '--generators=no', `/lib/systemd/system/${u}`]);
    assert.equal(r.err.trim(), '', `${u}: ${r.err}`);
  }
  assert.ok(statSync('/usr/share/man/man1/ipvisor.1.gz').size > 1000);
  for (const f of ['/usr/share/bash-completion/completions/ipvisor', '/usr/share/zsh/vendor-completions/_ipvisor', '/usr/share/fish/vendor_completions.d/ipvisor.fish', '/usr/share/doc/ipvisor/operations.md', '/usr/share/doc/ipvisor/copyright']) assert.ok(existsSync(f), f);
  assert.equal(statSync('/var/lib/ipvisor').mode & 0o777, 0o700);
  const depends = sh(['dpkg-query', '-W', '-f', '${Depends}', 'ipvisor']).out;
  assert.match(depends, /nftables/);
  assert.match(depends, /iproute2/);
});

test('installed CLI: init, a network and a pool, an allocation, plan inside a network namespace, doctor', { skip }, () => {
  const ok = (...args: string[]) => {
    const r = ipvisor(...args);
    assert.equal(r.code, 0, `${args.join(' ')}: ${r.err}`);
    return r;
  };
  ok('init');
  ok('network', 'create', 'lan', '--bridge', 'br-deb', '--mode', 'routed', '--subnet', '192.0.2.0/24,gateway=192.0.2.1');
  ok('pool', 'create', 'lan4', '--network', 'lan', '--cidr', '192.0.2.0/24');
  ok('vm', 'add', 'web1');
  ok('vif', 'add', 'web1', '--network', 'lan', '--mac', '52:54:00:de:b0:01');
  assert.equal(ok('ip', 'allocate', '--vif', 'web1:0', '--family', '4', '--json').out.includes('192.0.2.2'), true);
  assert.equal(sh(['ip', 'netns', 'add', NS]).code, 0);
  assert.equal(sh(['ip', 'netns', 'exec', NS, 'ip', 'link', 'add', 'br-deb', 'type', 'bridge']).code, 0);
  assert.equal(sh(['ip', 'netns', 'exec', NS, 'ip', 'link', 'set', 'br-deb', 'up']).code, 0);
  const plan = sh(['/usr/bin/ipvisor', '--db', db, 'plan'], { IPVISOR_NETNS: NS, IPVISOR_RUN_DIR: dir });
  assert.equal(plan.code, 0, plan.err);
  assert.match(plan.out, /\+ address 192\.0\.2\.1\/24 dev br-deb/);
  assert.match(plan.out, /\+ nft-table bridge ipvisor/);
  const doctor = sh(['/usr/bin/ipvisor', '--db', db, 'doctor', '--json'], { IPVISOR_NETNS: NS, IPVISOR_RUN_DIR: dir });
  const res = JSON.parse(doctor.out);
  assert.ok(res.findings.some((f: { check: string; severity: string }) => f.check === 'nft' && f.severity === 'ok'));
});

test('purge removes the package and its units but keeps /var/lib/ipvisor unless asked', { skip }, () => {
  writeFileSync('/var/lib/ipvisor/.deb-smoke', 'keep me\n');
  try {
    const r = apt('purge', 'ipvisor');
    assert.equal(r.code, 0, r.out + r.err);
    assert.ok(!existsSync('/usr/bin/ipvisor'));
    assert.ok(!existsSync('/lib/systemd/system/ipvisor-serve.service'));
    assert.ok(!existsSync('/usr/lib/ipvisor'));
    assert.equal(readFileSync('/var/lib/ipvisor/.deb-smoke', 'utf8'), 'keep me\n');
  } finally {
    rmSync('/var/lib/ipvisor/.deb-smoke', { force: true });
  }
  if (stateExisted && readdirSync('/var/lib/ipvisor').length) return; // never purge someone's real store
  assert.equal(apt('install', '--no-install-recommends', DEB).code, 0);
  const r = sh(['apt-get', '-y', '-q', '-o', 'DPkg::Lock::Timeout=300', 'purge', 'ipvisor'], { IPVISOR_PURGE_DATA: 'yes' });
  assert.equal(r.code, 0, r.out + r.err);
  assert.ok(!existsSync('/var/lib/ipvisor'), 'IPVISOR_PURGE_DATA=yes purges the state too');
});

// Applied state equals the document: every corpus document this kernel can build is rendered to the
// live `ip` format and run in a fresh network namespace whose NICs (veths) carry the document's
// MACs; the kernel's addresses, routes, MTUs and the resolver file must then be exactly what the
// document says. The same documents rendered for systemd-networkd are applied by the real
// systemd-networkd in such a namespace and compared the same way. A second render from the
// observed state must change nothing.
import assert from 'node:assert/strict';
import { execFile, spawn } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync, writeFileSync, mkdirSync, existsSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { after, before, describe, test } from 'node:test';
import type { GuestNetState } from '../../src/core/guest/ir.js';
import { parseNetworkData } from '../../src/core/guest/parse.js';
import { liveState } from '../../src/agent/guest/push.js';
import { render } from '../../src/core/guest/render.js';
import { IP_SCRIPT_PATH } from '../../src/core/guest/renderers/ip.js';
import { observedAddresses } from '../../src/core/guest/rollback.js';
import { skipUnless } from '../support/skip.js';
import { compareApplied, kernelState, type KernelState } from './applied.js';
import { loadCorpus, REJECTED } from './corpus.js';
import { which } from './validators.js';
import { guardRootNamespace } from '../support/root-guard.js';

guardRootNamespace();

const run = promisify(execFile);
const skip = skipUnless(process.getuid?.() !== 0 ? 'needs root (network namespaces)' : !which('unshare') ? 'unshare is not installed (util-linux)' : null);
let seq = 0;

/** Which virtual link kinds this kernel can create in a namespace (bonding, 8021q may be absent). */
async function kernelKinds(): Promise<{ bond: boolean; vlan: boolean }> {
  const ns = `ipvak-${process.pid}`;
  await run('ip', ['netns', 'add', ns]);
  try {
    const ok = (args: string[]) => run('ip', ['-n', ns, 'link', 'add', ...args]).then(() => true, () => false);
    const bond = await ok(['b0', 'type', 'bond']);
    await run('ip', ['-n', ns, 'link', 'add', 'v0', 'type', 'veth', 'peer', 'name', 'v1']);
    const vlan = await ok(['link', 'v0', 'name', 'v0.5', 'type', 'vlan', 'id', '5']);
    return { bond, vlan };
  } finally {
    await run('ip', ['netns', 'del', ns]);
  }
}

/** A fresh namespace whose physical NICs are veths named and addressed as the document's (peers up, for carrier). */
async function guestNamespace(state: GuestNetState): Promise<string> {
  const ns = `ipvas-${process.pid}-${seq++}`;
  await run('ip', ['netns', 'add', ns]);
  await run('ip', ['-n', ns, 'link', 'set', 'lo', 'up']);
  let n = 0;
  for (const i of state.interfaces.filter((x) => x.type === 'physical')) {
    await run('ip', ['-n', ns, 'link', 'add', i.name, ...(i.mac ? ['address', i.mac] : []), 'type', 'veth', 'peer', 'name', `ipvpeer${n++}`]);
    await run('ip', ['-n', ns, 'link', 'set', `ipvpeer${n - 1}`, 'up']);
  }
  return ns;
}

/**
 * Runs a script inside the namespace with a private /run (no systemd-resolved of the test machine
 * is reachable) and a private resolver file bind-mounted over /etc/resolv.conf; returns its output
 * and the resolver file afterwards.
 */
async function runInGuest(ns: string, script: string): Promise<{ code: number; stderr: string; resolv: string }> {
  const dir = mkdtempSync(join(tmpdir(), 'ipvisor-applied-'));
  try {
    writeFileSync(join(dir, 'apply.sh'), script);
    writeFileSync(join(dir, 'resolv.conf'), '# before the push\nnameserver 198.51.100.99\n');
    const inner = 'mount -t tmpfs tmpfs /run && mount --bind "$1" /etc/resolv.conf && exec sh "$2"';
    const r = await new Promise<{ code: number; stderr: string }>((resolve, reject) => {
      const c = spawn('ip', ['netns', 'exec', ns, 'unshare', '--mount', '--propagation', 'private', 'sh', '-c', inner, 'sh', join(dir, 'resolv.conf'), join(dir, 'apply.sh')], { stdio: ['ignore', 'ignore', 'pipe'] });
      let stderr = '';
      c.stderr!.on('data', (d) => (stderr += d));
      c.on('error', reject);
      c.on('close', (code) => resolve({ code: code ?? -1, stderr }));
    });
    return { ...r, resolv: readFileSync(join(dir, 'resolv.conf'), 'utf8') };
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
}

function observedNet(k: KernelState) {
  return { links: k.links.map((l) => ({ ...l })), addrs: k.addrs, routes4: k.routes4, routes6: k.routes6 } as never;
}

/** Applies the rendered systemd-networkd files with the real networkd in the namespace; waits until the state matches or 20 s pass. */
async function applyWithNetworkd(ns: string, state: GuestNetState): Promise<string[]> {
  const dir = mkdtempSync(join(tmpdir(), 'ipvisor-networkd-'));
  const files = render(state, 'networkd');
  // A veth has no permanent MAC (ethtool reports 00:00:00:00:00:00), so the renderer's
  // PermanentMACAddress= match (right for real NICs, and for bond members whose current MAC is the
  // bond's) is turned into MACAddress= here; everything else is applied as rendered. The .link
  // files are udev's (renames), which does not run in the namespace.
  for (const [p, c] of Object.entries(files)) if (!p.endsWith('.link')) writeFileSync(join(dir, p.split('/').pop()!), c.replace(/^PermanentMACAddress=/m, 'MACAddress='));
  const inner = [
    'set -e',
    'mount --make-rprivate /',
    // networkd waits for udev unless /sys is read-only (its container rule); no udev runs here
    'mount -o remount,bind,ro /sys',
    'mount -t tmpfs tmpfs /run',
    'mount -t tmpfs tmpfs /usr/lib/systemd/network',
    'mount -t tmpfs tmpfs /etc/systemd/network',
    'cp "$1"/* /etc/systemd/network/',
    'mkdir -p /run/systemd/netif/links /run/systemd/netif/leases /run/systemd/netif/lldp',
    'chown -R systemd-network:systemd-network /run/systemd/netif',
    'SYSTEMD_LOG_TARGET=console exec /lib/systemd/systemd-networkd',
  ].join('\n');
  const child = spawn('ip', ['netns', 'exec', ns, 'unshare', '--mount', 'sh', '-c', inner, 'sh', dir], { stdio: ['ignore', 'pipe', 'pipe'] });
  let log = '';
  child.stdout!.on('data', (d) => (log += d));
  child.stderr!.on('data', (d) => (log += d));
  try {
    const deadline = Date.now() + 20_000;
    let diffs: string[] = [];
    for (;;) {
      diffs = compareApplied(state, await kernelState(ns));
      if (!diffs.length || Date.now() > deadline || child.exitCode !== null) break;
      await new Promise((r) => setTimeout(r, 250));
    }
    return diffs.length ? [...diffs, `networkd log: ${log.split('\n').filter((l) => /ipvisor|Failed|Could not|Invalid|rror/.test(l)).slice(0, 8).join(' | ')}`] : [];
  } finally {
    if (child.exitCode === null && child.pid) {
      child.kill('SIGTERM');
      await new Promise((r) => child.once('exit', r));
    }
    rmSync(dir, { recursive: true, force: true });
  }
}

describe('applied state equals the document (corpus, live ip format and systemd-networkd)', { skip: skip || false }, () => {
  let kinds: { bond: boolean; vlan: boolean };
  const namespaces: string[] = [];
  const buildable: { name: string; state: GuestNetState }[] = [];
  const notBuilt: string[] = [];

  before(async () => {
    kinds = await kernelKinds();
    for (const c of loadCorpus()) {
      if (c.name in REJECTED) continue;
      const state = parseNetworkData(c.doc, { nicNames: c.nics });
      const needs = [...new Set(state.interfaces.filter((i) => i.type !== 'physical').map((i) => i.type))];
      const missing = needs.filter((t) => !kinds[t as 'bond' | 'vlan']);
      if (missing.length) notBuilt.push(`${c.name} (${missing.join(', ')})`);
      else buildable.push({ name: c.name, state });
    }
  });
  after(async () => {
    for (const ns of namespaces) await run('ip', ['netns', 'del', ns]).catch(() => undefined);
  });

  test('the corpus has documents this kernel can build', (t) => {
    t.diagnostic(`built: ${buildable.length}; not buildable on this kernel: ${notBuilt.join(', ') || 'none'}`);
    assert.ok(buildable.length >= 12, `only ${buildable.length} documents buildable`);
  });

  test('live ip format: kernel state and resolver equal the document; a second apply changes nothing', async () => {
    const failures: string[] = [];
    for (const { name, state } of buildable) {
      const ns = await guestNamespace(state);
      namespaces.push(ns);
      const first = await runInGuest(ns, render(state, 'ip')[IP_SCRIPT_PATH]!);
      const k = { ...(await kernelState(ns)), resolv: first.resolv };
      const diffs = compareApplied(state, k, { resolver: true });
      if (first.code !== 0) diffs.push(`apply exited ${first.code}: ${first.stderr.trim()}`);
      // from the observed state, nothing is left to change: no address, MTU or route command
      const again = render(state, 'ip', { current: observedAddresses(observedNet(k)), live: liveState(observedNet(k)) })[IP_SCRIPT_PATH]!;
      const changes = again.split('\n').filter((l) => /^step ip .*(addr (replace|del|flush)|route (replace|del)| mtu | up$)/.test(l));
      if (changes.length) diffs.push(`second render still changes: ${changes.join(' | ')}`);
      const second = await runInGuest(ns, again);
      if (second.code !== 0) diffs.push(`second apply exited ${second.code}: ${second.stderr.trim()}`);
      diffs.push(...compareApplied(state, await kernelState(ns)).map((d) => `after the second apply: ${d}`));
      if (diffs.length) failures.push(`${name}:\n  ${diffs.join('\n  ')}`);
      await run('ip', ['netns', 'del', ns]);
      namespaces.splice(namespaces.indexOf(ns), 1);
    }
    assert.deepEqual(failures, []);
  });

  test('systemd-networkd: the real networkd applies the rendered files; kernel state equals the document', { skip: !which('systemd-networkd') ? skipUnless('systemd-networkd is not installed') || false : false }, async () => {
    // one namespace and one networkd per document, all at once (each waits for its links)
    const results = await Promise.all(
      buildable.map(async ({ name, state }) => {
        const ns = await guestNamespace(state);
        namespaces.push(ns);
        const diffs = await applyWithNetworkd(ns, state);
        return diffs.length ? `${name}:\n  ${diffs.join('\n  ')}` : null;
      }),
    );
    assert.deepEqual(results.filter((r) => r !== null), []);
  });
});

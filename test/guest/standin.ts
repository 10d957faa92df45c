// A running stand-in guest: the real qemu-ga inside its own network namespace (a veth "eth0")
// and a private mount namespace (tmpfs over the config dirs and /run). Root only.
import { execFile, spawn, type ChildProcess } from 'node:child_process';
import { existsSync, mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { skipUnless } from '../support/skip.js';

export const run = promisify(execFile);
const SCRIPT = new URL('./standin-guest.sh', import.meta.url).pathname;

export function standinUnavailable(): string | false {
  return skipUnless(standinMissing());
}

function standinMissing(): string | null {
  if (process.getuid?.() !== 0) return 'needs root (network and mount namespaces)';
  if (!['/usr/sbin/qemu-ga', '/usr/bin/qemu-ga'].some(existsSync)) return 'qemu-ga is not installed (Debian package qemu-guest-agent)';
  if (!['/usr/bin/unshare', '/bin/unshare'].some(existsSync)) return 'unshare is not installed (util-linux)';
  return null;
}

export interface StandinGuest {
  ns: string;
  dir: string;
  socket: string;
  agent: ChildProcess;
  /** Starts one more agent (own socket) in the same guest, e.g. with blocked RPCs. */
  startAgent(socket: string, extraArgs: string[]): Promise<ChildProcess>;
  ip(...args: string[]): Promise<string>;
  /**
   * Hot-adds a NIC: a veth `name` with `mac` in the guest, its peer `h-<name>` in the guest's "host
   * side" namespace (`hostNs`), both up. The peer gets `peerAddr` (CIDR) when given.
   */
  addNic(name: string, mac: string, peerAddr?: string): Promise<void>;
  /** Hot-removes a NIC (the kernel device goes, as when the hypervisor unplugs it). */
  removeNic(name: string): Promise<void>;
  /** The namespace holding the peers of added NICs (where a test pings from). */
  hostNs: string;
  hostIp(...args: string[]): Promise<string>;
  stop(): Promise<void>;
}

async function waitFor(path: string, child: ChildProcess, ms: number): Promise<void> {
  const deadline = Date.now() + ms;
  while (!existsSync(path)) {
    if (child.exitCode !== null) throw new Error(`qemu-ga exited with ${child.exitCode}`);
    if (Date.now() > deadline) throw new Error(`qemu-ga socket ${path} did not appear`);
    await new Promise((r) => setTimeout(r, 20));
  }
}

export async function startStandinGuest(mac: string): Promise<StandinGuest> {
  const ns = `ipvg-${process.pid}-${Math.floor(Math.random() * 1e6)}`;
  const dir = mkdtempSync(join(tmpdir(), 'ipvisor-qga-'));
  const agents: ChildProcess[] = [];
  const ip = async (...args: string[]): Promise<string> => (await run('ip', ['-n', ns, ...args])).stdout;
  const hostNs = `${ns}h`;
  let hostNsMade = false;
  const hostIp = async (...args: string[]): Promise<string> => (await run('ip', ['-n', hostNs, ...args])).stdout;
  const addNic = async (name: string, mac: string, peerAddr?: string): Promise<void> => {
    if (!hostNsMade) {
      await run('ip', ['netns', 'add', hostNs]);
      hostNsMade = true;
      await hostIp('link', 'set', 'lo', 'up');
    }
    await ip('link', 'add', name, 'address', mac, 'type', 'veth', 'peer', 'name', `h-${name}`, 'netns', hostNs);
    await hostIp('link', 'set', `h-${name}`, 'up');
    if (peerAddr) await hostIp('addr', 'add', peerAddr, 'dev', `h-${name}`, 'nodad');
    await ip('link', 'set', name, 'up');
    // the kernel's own IPv6 link-local setup (DAD) finishes now, not during the test that follows
    const deadline = Date.now() + 5000;
    while ((await ip('-6', 'addr', 'show', 'dev', name, 'tentative')).trim() && Date.now() < deadline) await new Promise((r) => setTimeout(r, 50));
  };
  const removeNic = async (name: string): Promise<void> => {
    await ip('link', 'del', name);
  };
  const stop = async (): Promise<void> => {
    for (const a of agents) if (a.exitCode === null && a.pid) process.kill(a.pid, 'SIGTERM');
    await Promise.all(agents.map((a) => (a.exitCode === null ? new Promise((r) => a.once('exit', r)) : undefined)));
    // anything the agent started in the guest (the rollback guard) goes with the namespace
    const pids = (await run('ip', ['netns', 'pids', ns]).catch(() => ({ stdout: '' }))).stdout.split('\n').filter(Boolean);
    for (const p of pids) {
      try {
        process.kill(Number(p), 'SIGKILL');
      } catch {
        /* already gone */
      }
    }
    await run('ip', ['netns', 'del', ns]).catch(() => undefined);
    if (hostNsMade) await run('ip', ['netns', 'del', hostNs]).catch(() => undefined);
    rmSync(dir, { recursive: true, force: true });
  };
  const startAgent = async (socket: string, extra: string[]): Promise<ChildProcess> => {
    const state = join(dir, `state-${agents.length}`);
    const child = spawn('ip', ['netns', 'exec', ns, 'unshare', '--mount', '--propagation', 'private', 'bash', SCRIPT, socket, state, ...extra], { stdio: ['ignore', 'ignore', 'pipe'] });
    agents.push(child);
    await waitFor(socket, child, 5000);
    return child;
  };
  try {
    await run('ip', ['netns', 'add', ns]);
    await ip('link', 'add', 'eth0', 'address', mac, 'type', 'veth', 'peer', 'name', 'eth0p');
    for (const l of ['lo', 'eth0', 'eth0p']) await ip('link', 'set', l, 'up');
    const socket = join(dir, 'qga.sock');
    const agent = await startAgent(socket, []);
    return { ns, dir, socket, agent, startAgent, ip, addNic, removeNic, hostNs, hostIp, stop };
  } catch (e) {
    await stop();
    throw e;
  }
}

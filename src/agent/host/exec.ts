// Runs host commands with argv arrays (never a shell). Store-free: the XCP-ng dom0 binder bundles
// this with iproute2.ts and nft.ts. `netns` runs every command inside a network namespace (tests,
// benchmarks); by default it comes from IPVISOR_NETNS.
import { spawn, type ChildProcessWithoutNullStreams } from 'node:child_process';
import { IpvisorError } from '../../core/model/errors.js';

export interface HostRunner {
  readonly netns: string | undefined;
  /** Runs argv[0] with the rest as arguments; rejects with HOST_COMMAND on a non-zero exit. */
  run(argv: string[], opts?: { input?: string; allowFail?: boolean }): Promise<{ code: number; stdout: string; stderr: string }>;
  /** Starts a long-running command with pipes on all three streams (an agent's persistent
   * `nft -i`, host/nft-session.ts). A runner without it gets one process per command instead. */
  start?(argv: string[]): ChildProcessWithoutNullStreams;
}

/** Where the host commands come from, for the message when one is missing. */
const PACKAGE_OF: Record<string, string> = { ip: 'iproute2', nft: 'nftables', iptables: 'iptables', ip6tables: 'iptables', sysctl: 'procps' };

export function createHostRunner(opts: { netns?: string } = {}): HostRunner {
  const netns = opts.netns ?? (process.env.IPVISOR_NETNS || undefined);
  return {
    netns,
    start(argv) {
      const full = netns ? ['ip', 'netns', 'exec', netns, ...argv] : argv;
      return spawn(full[0], full.slice(1), { stdio: ['pipe', 'pipe', 'pipe'] });
    },
    run(argv, runOpts = {}) {
      const full = netns ? ['ip', 'netns', 'exec', netns, ...argv] : argv;
      return new Promise((resolve, reject) => {
        const child = spawn(full[0], full.slice(1), { stdio: ['pipe', 'pipe', 'pipe'] });
        const out: Buffer[] = [];
        const err: Buffer[] = [];
        child.stdout.on('data', (b: Buffer) => out.push(b));
        child.stderr.on('data', (b: Buffer) => err.push(b));
        child.on('error', (e: NodeJS.ErrnoException) => {
          const what = e.code === 'ENOENT' ? `${full[0]} is not installed or not on PATH${PACKAGE_OF[full[0]] ? ` (Debian package ${PACKAGE_OF[full[0]]})` : ''}` : e.message;
          reject(new IpvisorError('HOST_COMMAND', `${argv[0]}: ${what}`, { cause: e }));
        });
        child.on('close', (code) => {
          const res = { code: code ?? 1, stdout: Buffer.concat(out).toString('utf8'), stderr: Buffer.concat(err).toString('utf8') };
          if (res.code !== 0 && !runOpts.allowFail) {
            const first = res.stderr.trim().split('\n').slice(0, 3).join(' | ');
            reject(new IpvisorError('HOST_COMMAND', `${argv.slice(0, 3).join(' ')}: exit ${res.code}: ${first}`, { details: { argv, stderr: res.stderr } }));
          } else resolve(res);
        });
        child.stdin.on('error', () => undefined); // the command may exit before reading stdin
        child.stdin.end(runOpts.input ?? '');
      });
    },
  };
}

/** True when `cmd` can be run (used by tests to skip cleanly). */
export async function commandExists(cmd: string): Promise<boolean> {
  try {
    await createHostRunner({ netns: undefined }).run([cmd, '--version'], { allowFail: true });
    return true;
  } catch {
    return false;
  }
}


// virsh with argv arrays. Never used from inside a hook (calling back into libvirtd from a hook
// deadlocks). The connection URI comes from IPVISOR_LIBVIRT_URI, else virsh's own default
// (LIBVIRT_DEFAULT_URI or qemu:///system for root).
import { execFile } from 'node:child_process';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { IpvisorError } from '../../core/model/errors.js';

export interface Virsh {
  readonly uri: string | undefined;
  /** Runs `virsh -q [-c URI] args...`; rejects with a DRIVER error naming the subcommand. */
  run(args: string[], opts?: { allowFail?: boolean; timeoutMs?: number }): Promise<{ code: number; stdout: string; stderr: string }>;
  /** Runs a subcommand that takes an XML file (net-define, define), via a private temp file. */
  withXmlFile(args: (file: string) => string[], xml: string): Promise<string>;
}

export function createVirsh(opts: { uri?: string } = {}): Virsh {
  const uri = opts.uri ?? (process.env.IPVISOR_LIBVIRT_URI || undefined);
  const virsh: Virsh = {
    uri,
    run(args, runOpts = {}) {
      const argv = ['-q', ...(uri ? ['-c', uri] : []), ...args];
      return new Promise((resolve, reject) => {
        execFile('virsh', argv, { timeout: runOpts.timeoutMs ?? 60_000, maxBuffer: 64 << 20 }, (err, stdout, stderr) => {
          const e = err as (NodeJS.ErrnoException & { code?: unknown }) | null;
          if (e && e.code === 'ENOENT') {
            reject(new IpvisorError('DRIVER', 'virsh: not found (install libvirt-clients)'));
            return;
          }
          const code = e ? (typeof e.code === 'number' ? e.code : 1) : 0;
          const res = { code, stdout: String(stdout), stderr: String(stderr) };
          if (code !== 0 && !runOpts.allowFail) {
            const msg = res.stderr.replace(/^error: /gm, '').trim().split('\n').filter(Boolean).join(': ') || `exit ${code}`;
            reject(new IpvisorError('DRIVER', `virsh ${args[0]}: ${msg}`, { details: { args, stderr: res.stderr } }));
          } else resolve(res);
        });
      });
    },
    async withXmlFile(args, xml) {
      const dir = mkdtempSync(join(tmpdir(), 'ipvisor-virsh-'));
      try {
        const file = join(dir, 'def.xml');
        writeFileSync(file, xml, { mode: 0o600 });
        return (await virsh.run(args(file))).stdout;
      } finally {
        rmSync(dir, { recursive: true, force: true });
      }
    },
  };
  return virsh;
}

/** Names of all libvirt networks (active and inactive). */
export async function listNetworkNames(v: Virsh): Promise<string[]> {
  return (await v.run(['net-list', '--all', '--name'])).stdout.split('\n').map((s) => s.trim()).filter(Boolean);
}

/** UUIDs of all domains (running and defined). */
export async function listDomainUuids(v: Virsh): Promise<string[]> {
  return (await v.run(['list', '--all', '--uuid'])).stdout.split('\n').map((s) => s.trim()).filter(Boolean);
}

export async function networkIsActive(v: Virsh, name: string): Promise<boolean> {
  return (await v.run(['net-list', '--name'])).stdout.split('\n').map((s) => s.trim()).includes(name);
}

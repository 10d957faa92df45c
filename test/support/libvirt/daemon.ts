// A real libvirtd for tests, confined the way shared/reference/libvirt/libvirt-ci-recipe.sh does it:
// libvirtd and virtlogd run inside a network namespace the test creates, so every bridge, tap,
// dnsmasq and iptables rule libvirt makes lives there. On top of the recipe, the daemons run in a
// private mount namespace in which the hooks dir, /run/libvirt, the persistent definitions and the
// dnsmasq lease dir are bind-mounted from a per-test directory: the test never touches the host's
// /etc/libvirt/hooks or its definitions, and a libvirtd of the host (if any) is left alone.
// Everything is started with argv arrays and stopped by PID.
import { execFile, spawnSync } from 'node:child_process';
import { existsSync, mkdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { skipUnless } from '../skip.js';

const run = promisify(execFile);

export interface LibvirtHarness {
  ns: string;
  dir: string;
  hooksDir: string;
  uri: string;
  /** Runs virsh against this daemon; resolves stdout, rejects on non-zero exit. */
  virsh(...args: string[]): Promise<string>;
  /** Runs a command inside the namespace (argv). */
  nsExec(argv: string[], opts?: { input?: string; timeoutMs?: number }): Promise<{ code: number; stdout: string; stderr: string }>;
  startLibvirtd(): Promise<void>;
  stopLibvirtd(): Promise<void>;
  restartLibvirtd(): Promise<void>;
  /** Stops everything and removes everything it created (idempotent). */
  teardown(): Promise<void>;
}

export const GUEST_DIR = process.env.IPVISOR_TEST_GUEST_DIR ?? '/var/cache/ipvisor-test/guest';

/** Why the real-libvirtd tests cannot run here, or null when they can. */
export function libvirtSkipReason(): string | false {
  return skipUnless(libvirtMissing());
}

function libvirtMissing(): string | null {
  if (process.getuid?.() !== 0) return 'needs root';
  for (const bin of ['/usr/sbin/libvirtd', '/usr/sbin/virtlogd', '/usr/bin/virsh', '/usr/bin/qemu-system-x86_64', '/usr/bin/nsenter', '/usr/bin/unshare']) {
    if (!existsSync(bin)) return `${bin} missing (install .ci/apt-libvirt.txt)`;
  }
  if (!existsSync('/dev/net/tun')) return '/dev/net/tun missing';
  return null;
}

/** Builds the tiny guest if needed (Debian packages via apt-get download); returns its paths. */
export function ensureGuest(): { kernel: string; initrd: string; busybox: string } {
  const kernel = join(GUEST_DIR, 'vmlinuz');
  if (!existsSync(kernel)) {
    const script = new URL('./build-guest.sh', import.meta.url).pathname;
    const r = spawnSync('bash', [script, GUEST_DIR], { stdio: ['ignore', 'inherit', 'inherit'] });
    if (r.status !== 0) throw new Error(`building the test guest failed (${script})`);
  }
  return { kernel, initrd: join(GUEST_DIR, 'initrd.gz'), busybox: join(GUEST_DIR, 'busybox') };
}

async function sh(argv: string[], opts: { input?: string; timeoutMs?: number; allowFail?: boolean; env?: NodeJS.ProcessEnv } = {}) {
  return new Promise<{ code: number; stdout: string; stderr: string }>((resolve, reject) => {
    const child = execFile(argv[0], argv.slice(1), { timeout: opts.timeoutMs ?? 60_000, maxBuffer: 32 << 20, env: opts.env ?? process.env }, (err, stdout, stderr) => {
      const code = err ? (typeof (err as { code?: unknown }).code === 'number' ? ((err as { code: number }).code) : 1) : 0;
      if (code !== 0 && !opts.allowFail) {
        reject(new Error(`${argv.join(' ')} exited ${code}: ${String(stderr).trim()}`));
        return;
      }
      resolve({ code, stdout: String(stdout), stderr: String(stderr) });
    });
    child.stdin?.on('error', () => undefined);
    if (opts.input !== undefined) child.stdin?.end(opts.input);
    else child.stdin?.end();
  });
}

/** The daemons (and so the hooks they run) already live in the namespace: IPVISOR_NETNS, which a
 * test sets for its in-process CLI calls, must not reach them. */
function daemonEnv(): NodeJS.ProcessEnv {
  const env = { ...process.env };
  delete env.IPVISOR_NETNS;
  delete env.IPVISOR_LIBVIRT_URI;
  return env;
}

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

function pidAlive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch {
    return false;
  }
}

/**
 * Creates the namespaces and directories and starts virtlogd + libvirtd. Hook scripts must be in
 * `hooksDir` before libvirtd starts (libvirt looks for them only at daemon start): pass
 * `beforeStart` to install them, or call restartLibvirtd() after installing.
 */
export async function startLibvirtHarness(opts: { name: string; beforeStart?: (h: LibvirtHarness) => Promise<void> }): Promise<LibvirtHarness> {
  const ns = `ipv-${opts.name}`;
  const dir = `/run/ipvisor-test-${opts.name}`;
  const mntFile = join(dir, 'mnt', 'ns');
  const binds: Array<[string, string]> = [
    [join(dir, 'hooks'), '/etc/libvirt/hooks'],
    [join(dir, 'run-libvirt'), '/run/libvirt'],
    [join(dir, 'etc-qemu'), '/etc/libvirt/qemu'],
    [join(dir, 'dnsmasq'), '/var/lib/libvirt/dnsmasq'],
  ];
  const uri = `qemu:///system?socket=${join(dir, 'run-libvirt', 'libvirt-sock')}`;
  let libvirtdPid = 0;
  let virtlogdPid = 0;
  let mountsDone = false;

  const inNs = (argv: string[]) => ['nsenter', `--mount=${mntFile}`, '--', 'ip', 'netns', 'exec', ns, ...argv];

  const h: LibvirtHarness = {
    ns,
    dir,
    hooksDir: join(dir, 'hooks'),
    uri,
    async virsh(...args: string[]) {
      return (await sh(['virsh', '-q', '-c', uri, ...args])).stdout;
    },
    async nsExec(argv, o = {}) {
      return sh(['ip', 'netns', 'exec', ns, ...argv], { ...o, allowFail: true });
    },
    async startLibvirtd() {
      if (!virtlogdPid || !pidAlive(virtlogdPid)) {
        await sh(inNs(['virtlogd', '-d', '--pid-file', join(dir, 'virtlogd.pid')]), { env: daemonEnv() });
        virtlogdPid = await readPid(join(dir, 'virtlogd.pid'));
      }
      await sh(inNs(['libvirtd', '-d', '--pid-file', join(dir, 'libvirtd.pid')]), { env: daemonEnv() });
      libvirtdPid = await readPid(join(dir, 'libvirtd.pid'));
      for (let i = 0; i < 600; i++) {
        const r = await sh(['virsh', '-q', '-c', uri, 'version'], { allowFail: true });
        if (r.code === 0) return;
        await sleep(100);
      }
      throw new Error('libvirtd did not answer within 60 s');
    },
    async stopLibvirtd() {
      if (libvirtdPid && pidAlive(libvirtdPid)) {
        process.kill(libvirtdPid, 'SIGTERM');
        for (let i = 0; i < 400 && pidAlive(libvirtdPid); i++) await sleep(50);
        if (pidAlive(libvirtdPid)) process.kill(libvirtdPid, 'SIGKILL');
      }
      libvirtdPid = 0;
      rmSync(join(dir, 'libvirtd.pid'), { force: true });
    },
    async restartLibvirtd() {
      await h.stopLibvirtd();
      await h.startLibvirtd();
    },
    async teardown() {
      if (libvirtdPid && pidAlive(libvirtdPid)) {
        // Domains and networks first, so that qemu and dnsmasq end with them.
        const doms = await sh(['virsh', '-q', '-c', uri, 'list', '--all', '--name'], { allowFail: true });
        for (const d of doms.stdout.split('\n').map((s) => s.trim()).filter(Boolean)) {
          await sh(['virsh', '-q', '-c', uri, 'destroy', d], { allowFail: true });
          await sh(['virsh', '-q', '-c', uri, 'undefine', d], { allowFail: true });
        }
        const nets = await sh(['virsh', '-q', '-c', uri, 'net-list', '--all', '--name'], { allowFail: true });
        for (const n of nets.stdout.split('\n').map((s) => s.trim()).filter(Boolean)) {
          await sh(['virsh', '-q', '-c', uri, 'net-destroy', n], { allowFail: true });
          await sh(['virsh', '-q', '-c', uri, 'net-undefine', n], { allowFail: true });
        }
      }
      await h.stopLibvirtd();
      if (virtlogdPid && pidAlive(virtlogdPid)) {
        process.kill(virtlogdPid, 'SIGTERM');
        for (let i = 0; i < 100 && pidAlive(virtlogdPid); i++) await sleep(50);
      }
      virtlogdPid = 0;
      // Stray processes that still live in the namespace (dnsmasq, qemu) are ours: end them by PID.
      const pids = await sh(['ip', 'netns', 'pids', ns], { allowFail: true });
      for (const p of pids.stdout.split('\n').map((s) => Number(s.trim())).filter((n) => n > 0)) {
        try {
          process.kill(p, 'SIGKILL');
        } catch {
          /* gone */
        }
      }
      if (mountsDone) {
        await sh(['umount', mntFile], { allowFail: true });
        await sh(['umount', join(dir, 'mnt')], { allowFail: true });
        mountsDone = false;
      }
      await sh(['ip', 'netns', 'del', ns], { allowFail: true });
      rmSync(dir, { recursive: true, force: true });
    },
  };

  try {
    await sh(['ip', 'netns', 'del', ns], { allowFail: true });
    rmSync(dir, { recursive: true, force: true });
    for (const [src] of binds) mkdirSync(src, { recursive: true });
    mkdirSync(join(dir, 'mnt'), { recursive: true });
    await sh(['ip', 'netns', 'add', ns]);
    await sh(['ip', 'netns', 'exec', ns, 'ip', 'link', 'set', 'lo', 'up']);
    // A persistent mount namespace needs its file on a private mount (as /run/netns is).
    await sh(['mount', '--bind', join(dir, 'mnt'), join(dir, 'mnt')]);
    await sh(['mount', '--make-private', join(dir, 'mnt')]);
    writeFileSync(mntFile, '');
    mountsDone = true;
    await sh(['unshare', `--mount=${mntFile}`, '--propagation', 'private', 'true']);
    for (const [src, dst] of binds) {
      mkdirSync(dst, { recursive: true });
      await sh(['nsenter', `--mount=${mntFile}`, '--', 'mount', '--bind', src, dst]);
    }
    if (opts.beforeStart) await opts.beforeStart(h);
    await h.startLibvirtd();
    return h;
  } catch (err) {
    await h.teardown();
    throw err;
  }
}

async function readPid(file: string): Promise<number> {
  for (let i = 0; i < 100; i++) {
    if (existsSync(file)) {
      const n = Number(readFileSync(file, 'utf8').trim());
      if (n > 0) return n;
    }
    await sleep(20);
  }
  throw new Error(`no pid in ${file}`);
}

/** Minimal domain XML for the tiny direct-boot guest (TCG: KVM is unusable on these hosts). */
export function guestDomainXml(o: { name: string; uuid: string; network: string; mac: string; serialLog: string }): string {
  const g = ensureGuest();
  return `<domain type='qemu'>
  <name>${o.name}</name>
  <uuid>${o.uuid}</uuid>
  <memory unit='MiB'>192</memory>
  <vcpu>1</vcpu>
  <os><type arch='x86_64' machine='pc'>hvm</type>
    <kernel>${g.kernel}</kernel><initrd>${g.initrd}</initrd><cmdline>console=ttyS0 panic=-1 quiet</cmdline></os>
  <features><acpi/></features>
  <on_poweroff>destroy</on_poweroff><on_reboot>destroy</on_reboot><on_crash>destroy</on_crash>
  <devices>
    <emulator>/usr/bin/qemu-system-x86_64</emulator>
    <interface type='network'><source network='${o.network}'/><mac address='${o.mac}'/><model type='virtio'/></interface>
    <serial type='pty'><log file='${o.serialLog}' append='off'/></serial>
    <console type='pty'/>
  </devices>
</domain>`;
}

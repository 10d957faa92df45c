// The whole libvirt hook (bundled to dist/libvirt-hook-full.cjs, so that a hook call pays only for
// what it uses, not for the whole CLI). libvirt execs the small entry (hook-entry.ts ->
// dist/libvirt-hook.cjs), which hands the call to the local agent and loads this only when no
// agent answers or this is no agent host. Also reached as `ipvisor hook libvirt-network|libvirt-qemu
// ...` through the CLI.
//   argv: libvirt-network|libvirt-qemu [--db PATH | --host NAME --state-dir DIR] [--log PATH] [--run-dir DIR] -- <libvirt's argv...>
// (--run-dir: libvirtd runs hooks with its own environment, so a run dir other than /run/ipvisor
// comes in the script's argv, like the store.)
// Never writes to stdout.
import { fileLogger, runLibvirtHook, type HookDeps, type HookKind } from './hook.js';

export const DEFAULT_HOOK_LOG = '/var/log/ipvisor/libvirt-hooks.log';

export interface HookInvocation {
  kind: HookKind;
  db: string | undefined;
  /** Agent host (`libvirt install` there): this host and the agent's state directory. */
  agent?: { host: string; stateDir: string };
  logFile: string;
  /** IPVISOR_RUN_DIR for this call (host lock, enforced-store record, agent marker). */
  runDir?: string;
  args: string[];
}

export function parseHookInvocation(argv: string[], env: NodeJS.ProcessEnv = process.env): HookInvocation | undefined {
  const rest = [...argv];
  if (rest[0] === 'hook') rest.shift();
  const which = rest.shift();
  const kind: HookKind | undefined = which === 'libvirt-network' ? 'network' : which === 'libvirt-qemu' ? 'qemu' : undefined;
  if (!kind) return undefined;
  let db = env.IPVISOR_DB || undefined;
  let logFile = env.IPVISOR_HOOK_LOG || DEFAULT_HOOK_LOG;
  let host: string | undefined;
  let stateDir: string | undefined;
  let runDir = env.IPVISOR_RUN_DIR || undefined;
  while (rest.length) {
    const a = rest[0];
    if (a === '--') {
      rest.shift();
      break;
    }
    if (a === '--db' && rest.length > 1) {
      db = rest[1];
      rest.splice(0, 2);
    } else if (a === '--log' && rest.length > 1) {
      logFile = rest[1];
      rest.splice(0, 2);
    } else if ((a === '--host' || a === '--state-dir') && rest.length > 1) {
      if (a === '--host') host = rest[1];
      else stateDir = rest[1];
      rest.splice(0, 2);
    } else if (a === '--run-dir' && rest.length > 1) {
      runDir = rest[1];
      rest.splice(0, 2);
    } else break;
  }
  const agent = host !== undefined ? { host, stateDir: stateDir ?? env.IPVISOR_STATE_DIR ?? '/var/lib/ipvisor' } : undefined;
  return { kind, db, ...(agent ? { agent } : {}), logFile, runDir, args: rest };
}

export function defaultHookDeps(inv: HookInvocation): HookDeps {
  return {
    log: fileLogger(inv.logFile),
    async openStore() {
      const { openStore } = await import('../../core/store/open.js');
      // never create: a hook that found no store would record into (and enforce) an empty one
      return openStore(inv.db, { create: false });
    },
    async apply(store, scope, actor) {
      const { applyHost } = await import('../host/apply.js');
      await applyHost(store, { actor, scope });
    },
    async observeHost(exceptDev) {
      const [{ observeHostPrefixes }, { createHostRunner }] = await Promise.all([import('./subnets.js'), import('../host/exec.js')]);
      return observeHostPrefixes(createHostRunner(), exceptDev);
    },
  };
}

export async function readStdin(): Promise<string> {
  if (process.stdin.isTTY) return '';
  const chunks: Buffer[] = [];
  for await (const c of process.stdin) chunks.push(c as Buffer);
  return Buffer.concat(chunks).toString('utf8');
}

/** Runs one hook call; returns the exit status. Refusals print one line on stderr. `pre`: what the
 * small entry already did (read stdin; asked the local agent, which did not answer). */
export async function hookMain(argv: string[], deps?: HookDeps, pre?: { xml: string; agentTried?: boolean }): Promise<number> {
  const inv = parseHookInvocation(argv);
  if (!inv) {
    await readStdin(); // never leave libvirt's write to a closed pipe (EPIPE)
    process.stderr.write('ipvisor hook: expected libvirt-network or libvirt-qemu\n');
    return 0;
  }
  // every runDir() reader (lock, enforced-store record, agent marker) follows the script's --run-dir
  if (inv.runDir) process.env.IPVISOR_RUN_DIR = inv.runDir;
  // performance.now() counts from process start: Node start-up and module loading show up too.
  const tMain = performance.now();
  const xml = pre ? pre.xml : await readStdin();
  const tStdin = performance.now();
  // on an agent host the local agent (or, without one, the copy on disk) is the truth, not a store
  if (!deps) {
    const { readAgentMarker } = await import('../local-socket.js');
    // the running agent's marker; else what `libvirt install` on an agent host wrote into the
    // script (an agent not started yet: the hook enforces from its copy on disk, never a store)
    const marker = readAgentMarker(inv.agent ? { ...process.env, IPVISOR_STATE_DIR: inv.agent.stateDir } : process.env) ?? (inv.agent ? { ...inv.agent, servers: [] } : undefined);
    if (marker) {
      if (inv.kind !== 'qemu') return 0;
      const { agentQemuHook } = await import('../hook-agent.js');
      return agentQemuHook(marker, inv.args, xml, fileLogger(inv.logFile), { agentTried: pre?.agentTried }).catch(() => 0);
    }
  }
  const d = deps ?? defaultHookDeps(inv);
  const res = await runLibvirtHook(inv.kind, inv.args, xml, d);
  if (process.env.IPVISOR_HOOK_TIMING) d.log(`timing: start-up+load ${tMain.toFixed(1)} ms, stdin ${(tStdin - tMain).toFixed(1)} ms, hook ${(performance.now() - tStdin).toFixed(1)} ms`);
  if (res.code !== 0 && res.refusal) process.stderr.write(res.refusal + '\n');
  return res.code;
}

// Run when executed directly (the bundle), not when imported by the CLI.
const self = process.argv[1] ?? '';
if (/libvirt-hook-full\.cjs$|hook-main\.(ts|js)$/.test(self)) {
  hookMain(process.argv.slice(2)).then(
    (code) => {
      process.exitCode = code;
    },
    () => {
      process.exitCode = 0;
    },
  );
}

// libvirt's hooks (/etc/libvirt/hooks/{network,qemu}.d/ipvisor): argv plus XML on stdin. They
// record facts and make the host match the plan for the VIF or network concerned. Rules libvirt
// imposes (NOTES.md §3): never call back into libvirt (deadlock); print nothing on stdout (on
// migrate/restore libvirt reads it as the new domain XML); be fast (the VM start waits); be safe in
// parallel (after a restart libvirt replays port-created/reconnect for everything at once); exit 0
// for anything unexpected (a non-zero exit aborts the operation) except deliberate refusals: a
// subnet clash, a disabled VIF, and a store that cannot be trusted or written (fail closed).
import { appendFileSync, mkdirSync } from 'node:fs';
import { dirname } from 'node:path';
import { IpvisorError } from '../../core/model/errors.js';
import type { Store } from '../../core/store/store.js';
import { effectiveLocking } from '../../core/model/locking.js';
import { DOC_SETTINGS, findStoreNetwork, forgetPort, recordDomain, recordNetworkFacts, recordPort, type LibvirtSettings } from '../../core/service/libvirt-facts.js';
import { findClash, type UsedPrefix } from './subnets.js';
import { parseDomainXml, parseNetworkHookXml } from './xml.js';
import { createLogger, logText, newRequestId } from '../../core/log.js';
import { escapeControl, factLabel } from '../../core/model/validate.js';
import { hookDuration } from '../../core/metrics.js';

export type HookKind = 'network' | 'qemu';
export type ApplyScope = { vifUuid: string } | { networkUuid: string };

/** Every operation libvirt 9 runs hooks for. */
export const NETWORK_OPS = ['start', 'started', 'stopped', 'port-created', 'port-deleted', 'updated'] as const;
export const QEMU_OPS = ['prepare', 'start', 'started', 'stopped', 'release', 'migrate', 'restore', 'reconnect', 'attach'] as const;

export interface HookArgs {
  object: string;
  op: string;
  subop: string;
  extra: string;
}

export function parseHookArgv(argv: string[]): HookArgs | undefined {
  if (argv.length < 3) return undefined;
  return { object: argv[0], op: argv[1], subop: argv[2], extra: argv[3] ?? '-' };
}

export interface HookDeps {
  openStore(): Promise<Store>;
  /** Makes the host match the plan for one VIF or network (host/apply.ts). */
  apply(store: Store, scope: ApplyScope, actor: string): Promise<void>;
  /** Prefixes in use on this host except on `exceptDev` (for the start-time clash check). */
  observeHost(exceptDev: string | null): Promise<UsedPrefix[]>;
  log(line: string): void;
  actor?: string;
}

export interface HookResult {
  /** 0, or 1 for a deliberate refusal. */
  code: number;
  /** One-line reason for a refusal (goes to stderr; libvirt shows it to the user). */
  refusal?: string;
}

/** The hook's log: JSON lines (component libvirt-hook, the hook call's id, host, level) appended to a
 * file; never throws (a hook must not fail because /var/log is full). */
export function fileLogger(path: string, bindings: Record<string, unknown> = {}): (line: string) => void {
  let dirReady = false;
  const log = createLogger({
    sink: {
      write(line: string) {
        try {
          if (!dirReady) {
            mkdirSync(dirname(path), { recursive: true });
            dirReady = true;
          }
          appendFileSync(path, line);
        } catch {
          /* logging is best effort */
        }
      },
    },
    base: { component: 'libvirt-hook', hookId: newRequestId(), ...bindings },
  });
  // One line per entry: parser errors quote the XML, newlines included (JSON escapes them anyway).
  return (line: string) => logText(log, escapeControl(line.replace(/\s*\n\s*/g, ' ')));
}

/** Timed in ipvisor_hook_duration_seconds when the handling process serves /metrics (a hook run as
 * its own process by libvirt does not: see docs/operations.md). */
export async function runLibvirtHook(kind: HookKind, argv: string[], xml: string, deps: HookDeps): Promise<HookResult> {
  const done = hookDuration.startTimer();
  try {
    const res = await handleLibvirtHook(kind, argv, xml, deps);
    done({ hook: kind, result: res.code === 0 ? 'ok' : 'refused' });
    return res;
  } catch (err) {
    done({ hook: kind, result: 'error' });
    throw err;
  }
}

async function handleLibvirtHook(kind: HookKind, argv: string[], xml: string, deps: HookDeps): Promise<HookResult> {
  const actor = deps.actor ?? `libvirt-hook:${kind}`;
  const args = parseHookArgv(argv);
  const what = `${kind} ${factLabel(argv.join(' '), 300)}`;
  if (!args) {
    deps.log(`${what}: unexpected arguments; ignored`);
    return { code: 0 };
  }
  const known: readonly string[] = kind === 'network' ? NETWORK_OPS : QEMU_OPS;
  if (!known.includes(args.op)) {
    deps.log(`${what}: operation '${args.op}' unknown to this ipvisor; ignored`);
    return { code: 0 };
  }
  // migrate/restore/attach: libvirt reads stdout as replacement XML; we print nothing and keep it.
  if (kind === 'qemu' && (args.op === 'migrate' || args.op === 'restore' || args.op === 'attach')) {
    deps.log(`${what}: nothing to do`);
    return { code: 0 };
  }
  let store: Store | undefined;
  try {
    const t = process.env.IPVISOR_HOOK_TIMING ? performance.now() : 0;
    store = await deps.openStore();
    if (t) deps.log(`timing: store open ${(performance.now() - t).toFixed(1)} ms`);
    return kind === 'network' ? await networkHook(store, args, xml, deps, actor, what) : await qemuHook(store, args, xml, deps, actor, what);
  } catch (err) {
    // A store that is missing, damaged, unknown, read-only or full cannot record this operation's
    // facts, and enforcing without them would leave its taps unfiltered: refuse (fail closed).
    const code = err instanceof IpvisorError ? err.code : undefined;
    if (code && code.startsWith('STORE_') && code !== 'STORE_BUSY') {
      const refusal = `ipvisor: ${err instanceof Error ? err.message : String(err)}; refusing ${kind} ${args.op} (nothing recorded or applied)`;
      deps.log(`${what}: refused: ${refusal}`);
      return { code: 1, refusal };
    }
    deps.log(`${what}: error: ${err instanceof Error ? err.message : String(err)}; exit 0 so libvirt goes on`);
    return { code: 0 };
  } finally {
    await store?.close().catch(() => undefined);
  }
}

async function applySafely(store: Store, scope: ApplyScope, deps: HookDeps, actor: string, what: string): Promise<void> {
  try {
    const t = process.env.IPVISOR_HOOK_TIMING ? performance.now() : 0;
    await deps.apply(store, scope, actor);
    if (t) deps.log(`timing: apply ${(performance.now() - t).toFixed(1)} ms`);
  } catch (err) {
    deps.log(`${what}: host apply for ${JSON.stringify(scope)} failed: ${err instanceof Error ? err.message : String(err)}`);
  }
}

async function networkHook(store: Store, args: HookArgs, xml: string, deps: HookDeps, actor: string, what: string): Promise<HookResult> {
  const { network: info, port } = parseNetworkHookXml(xml);
  switch (args.op) {
    case 'start': {
      // Re-check for a clash every time the network starts; the bridge does not exist yet.
      const n = await findStoreNetwork(store, info);
      if (!n) return done(deps, what, 'not an ipvisor network');
      const used = await deps.observeHost(info.bridge);
      // Running networks show up as routes on their bridges, so host routes cover them too.
      for (const ip of info.ips) {
        const cidr = `${ip.address}/${ip.prefix}`;
        const clash = findClash(cidr, used);
        if (clash) {
          const refusal = `ipvisor: network ${factLabel(info.name, 128)}: subnet ${cidr} clashes with ${clash.what} on this host; not starting it`;
          deps.log(`${what}: refused: ${refusal}`);
          return { code: 1, refusal };
        }
      }
      return done(deps, what, 'no clash');
    }
    case 'started': {
      const problems: string[] = [];
      const n = await store.transaction((tx) => recordNetworkFacts(tx, info, actor, true, problems), { write: true });
      logProblems(deps, what, problems);
      if (!n) return done(deps, what, 'not an ipvisor network');
      await applySafely(store, { networkUuid: n.uuid }, deps, actor, what);
      return done(deps, what, `bridge ${factLabel(info.bridge, 64)} recorded, host applied`);
    }
    case 'stopped': {
      const problems: string[] = [];
      const n = await store.transaction((tx) => recordNetworkFacts(tx, info, actor, false, problems), { write: true });
      logProblems(deps, what, problems);
      if (!n) return done(deps, what, 'not an ipvisor network');
      await applySafely(store, { networkUuid: n.uuid }, deps, actor, what);
      return done(deps, what, 'host applied');
    }
    case 'updated':
      // net-update (ipvisor's own DHCP reservations among others): nothing on the host changes.
      return done(deps, what, 'nothing to do');
    case 'port-created': {
      if (!port) return done(deps, what, 'no <networkport> in the XML');
      const problems: string[] = [];
      const r = await store.transaction((tx) => recordPort(tx, info, port, actor, problems), { write: true });
      logProblems(deps, what, problems);
      if (r.vif && r.ifname) await applySafely(store, { vifUuid: r.vif.uuid }, deps, actor, what);
      return done(deps, what, `port ${factLabel(port.uuid, 64)} mac ${factLabel(port.mac, 64)} ${problems.length ? 'checked' : 'recorded'}${r.vif ? `, vif ${r.vif.uuid}` : ''}${r.ifname ? ` on ${r.ifname}, host applied` : ' (tap not known yet)'}`);
    }
    case 'port-deleted': {
      if (!port) return done(deps, what, 'no <networkport> in the XML');
      const vif = await store.transaction((tx) => forgetPort(tx, info, port, actor), { write: true });
      if (vif) await applySafely(store, { vifUuid: vif.uuid }, deps, actor, what);
      return done(deps, what, `port ${factLabel(port.uuid, 64)} forgotten`);
    }
  }
  return done(deps, what, 'ignored');
}

async function qemuHook(store: Store, args: HookArgs, xml: string, deps: HookDeps, actor: string, what: string): Promise<HookResult> {
  const dom = parseDomainXml(xml);
  switch (args.op) {
    case 'prepare': {
      const r = await store.transaction((tx) => recordDomain(tx, dom, 'defined', actor), { write: true });
      logProblems(deps, what, r.problems);
      const settings = (await store.getDoc<LibvirtSettings>(DOC_SETTINGS, 'hooks'))?.value;
      if (settings?.refuseDisabledVifs) {
        for (const { vif } of r.vifs) {
          const network = await store.getNetwork(vif.networkUuid);
          if (!network) continue;
          const count = (await store.listAssignments({ vifUuid: vif.uuid })).length;
          if (effectiveLocking(vif, network, count) === 'disabled') {
            const refusal = `ipvisor: domain ${factLabel(dom.name, 128)}: VIF ${vif.mac} on network ${network.name} is disabled; not starting it (ipvisor libvirt install --no-refuse-disabled turns this off)`;
            deps.log(`${what}: refused: ${refusal}`);
            return { code: 1, refusal };
          }
        }
      }
      return done(deps, what, `${r.vifs.length} vif(s) recorded`);
    }
    case 'start':
    case 'started':
    case 'reconnect': {
      const r = await store.transaction((tx) => recordDomain(tx, dom, 'running', actor), { write: true });
      logProblems(deps, what, r.problems);
      // a tap disabled (or let go) because of facts that cannot be recorded: the network's full path
      for (const networkUuid of r.quarantineChanged) await applySafely(store, { networkUuid }, deps, actor, what);
      // started repeats start's facts: apply only when a tap changed there; reconnect (libvirtd
      // restart) always re-applies, that is what makes everything hold again.
      for (const { vif, changed } of r.vifs) {
        if (args.op !== 'started' || changed) await applySafely(store, { vifUuid: vif.uuid }, deps, actor, what);
      }
      return done(deps, what, r.vifs.map(({ vif }) => `${vif.mac}=${vif.ifname ?? '?'}`).join(' ') || 'no ipvisor vifs');
    }
    case 'stopped':
    case 'release': {
      const r = await store.transaction((tx) => recordDomain(tx, dom, 'stopped', actor), { write: true });
      logProblems(deps, what, r.problems);
      for (const networkUuid of r.quarantineChanged) await applySafely(store, { networkUuid }, deps, actor, what);
      for (const { vif, changed } of r.vifs) if (changed) await applySafely(store, { vifUuid: vif.uuid }, deps, actor, what);
      return done(deps, what, `${r.vifs.filter((v) => v.changed).length} vif(s) unbound`);
    }
  }
  return done(deps, what, 'ignored');
}

/** Facts that failed validation: one escaped line each (factLabel), never stored as given. */
function logProblems(deps: HookDeps, what: string, problems: string[]): void {
  for (const p of problems.slice(0, 20)) deps.log(`${what}: invalid fact: ${p}`);
  if (problems.length > 20) deps.log(`${what}: ... and ${problems.length - 20} more invalid facts`);
}

function done(deps: HookDeps, what: string, note: string): HookResult {
  deps.log(`${what}: ${note}`);
  return { code: 0 };
}

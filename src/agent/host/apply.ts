// Observe -> diff -> apply for this host, under the host lock. The full path reads everything
// (`ip -j`, `nft -j`) and applies only the difference in one nft transaction; the one-VIF path
// (libvirt hooks) touches only that VIF's set elements, from what it recorded last time.
import type { HostFacts, HostPlan, VifEnforcement } from '../../core/compile/host-plan.js';
import { IPVISOR_RT_PROTO, compileHostPlan, hostCidr, vifElements } from '../../core/compile/host-plan.js';
import type { ElementChange, NftElements, NftFamily } from '../../core/compile/nft-ruleset.js';
import { NFT_TABLE, diffElements, expectedChains, renderElementChanges, renderTableDelete, renderTableReplace, setNames, skeletonMarker } from '../../core/compile/nft-ruleset.js';
import type { PlanChange } from '../../core/enforcer.js';
import { formatPlanChange } from '../../core/enforcer.js';
import { decideStoreSwitch } from '../../core/compile/store-switch.js';
import { IpvisorError, asIpvisorError } from '../../core/model/errors.js';
import { effectiveLocking } from '../../core/model/locking.js';
import { createHash } from 'node:crypto';
import { performance } from 'node:perf_hooks';
import type { Store } from '../../core/store/store.js';
import type { HostRunner } from './exec.js';
import { createHostRunner } from './exec.js';
import type { OwnedHostState } from './iproute2.js';
import { applyL3Diff, applyL3DiffUndoable, diffL3, emptyOwnedState, mergeOwnedStates, observeLinks, revertL3 } from './iproute2.js';
import { forwardPolicyDrops, revertForwardChanges, syncForwardAccepts } from './iptables.js';
import { withHostLock } from './lock.js';
import { clearEnforcedOrigin, readEnforcedOrigin, writeEnforcedOrigin } from './origin.js';
import { nftApply, nftListOwnChains, nftListTables, nftObserve } from './nft.js';
import type { ObservedNft } from './nft.js';
import type { HostSource } from './source.js';
import { LOCAL_CHANGE as DOC_CHANGE, LOCAL_VIF as DOC_VIF, isHostSource, storeHostSource } from './source.js';
import type { HostLocalState } from '../state.js';
import { applyDuration, countChanges } from '../../core/metrics.js';

const OWNED_KEY = 'state';
/** A new table's elements are listed one by one in plans up to this many (else only counted). */
const PLAN_ELEMENT_LINES = 200;

export interface HostApplyOptions {
  actor: string;
  /** Apply even when the store is not the one the host's enforcement came from and would remove
   * what the host enforces (core/compile/store-switch.ts). */
  force?: boolean;
  dryRun?: boolean;
  /** vifUuid / vifUuids: only those VIFs' elements, in one transaction (hooks, an agent's one-VIF
   * change); the full path takes over when that cannot be done safely or the transaction fails. */
  scope?: { vifUuid?: string; vifUuids?: string[]; networkUuid?: string };
  /** Runs the one-VIF path's element transaction (an agent's persistent `nft -i`); default `nft -f -`. */
  nft?: (script: string) => Promise<void>;
  runner?: HostRunner;
  log?: (msg: string) => void;
  /** Audit action for changes (default 'host.apply'; serve logs drift repairs as 'host.repair'). */
  auditAction?: string;
  /**
   * Periodic re-verify: when both tables exist with the current skeleton's chains, trust their
   * elements (element and rule changes by others arrive as `nft monitor` events, which trigger a
   * full verify) and check only addresses, routes and the rest. Saves ~1 s at 20,000 VIFs.
   */
  quick?: boolean;
}

type BridgeElements = NftElements['bridge'];

interface VifRecord {
  ifname: string | null;
  elements: BridgeElements;
}

export async function observeHostFacts(runner: HostRunner, host: string): Promise<HostFacts> {
  const links = await observeLinks(runner);
  const facts: HostFacts = { links: {}, hostname: host };
  for (const [name, l] of Object.entries(links)) facts.links[name] = { up: l.up, adminUp: l.adminUp, addresses: l.addresses };
  return facts;
}

function loadOwned(local: HostLocalState): OwnedHostState {
  const d = local.get<OwnedHostState>(DOC_CHANGE, OWNED_KEY);
  return { ...emptyOwnedState(), ...(d ?? {}) };
}

/** Whether a table of ours has exactly the current skeleton (a `nft flush chain` or an older ipvisor shows here). */
function skeletonIntact(obs: ObservedNft, family: NftFamily): boolean {
  const t = obs.tables[family];
  if (!t.present) return false;
  const want = expectedChains(family);
  if (Object.keys(t.chains).length !== Object.keys(want).length) return false;
  for (const [name, count] of Object.entries(want)) if (t.chains[name] !== count) return false;
  // exactly ipvisor's sets: a foreign set inside ipvisor's table is drift too
  const sets = setNames(family);
  return t.sets.length === sets.length && sets.every((s) => t.sets.includes(s));
}

function count(e: NftElements, family: NftFamily): number {
  return Object.values(e[family] as Record<string, string[]>).reduce((n, l) => n + l.length, 0);
}

/** IPVISOR_TRACE_HOST=1 prints how long each phase of a full run took (stderr). */
function phaseTimer(): (phase: string) => void {
  if (!process.env.IPVISOR_TRACE_HOST) return () => undefined;
  let last = performance.now();
  return (phase) => {
    const now = performance.now();
    process.stderr.write(`ipvisor host: ${phase} ${(now - last).toFixed(1)} ms\n`);
    last = now;
  };
}

export interface HostRun {
  plan: HostPlan;
  changes: PlanChange[];
  warnings: string[];
}

/** The whole host: observe, diff, and (unless dryRun) apply. */
async function runFull(src: HostSource, opts: HostApplyOptions, runner: HostRunner): Promise<HostRun> {
  const dryRun = !!opts.dryRun;
  const trace = phaseTimer();
  const local = src.local;
  const { snapshot, settings } = await src.desired();
  let facts = await observeHostFacts(runner, src.host);
  trace('snapshot+facts');
  let plan = compileHostPlan(snapshot, facts, settings);
  trace('compile');
  const changes: PlanChange[] = [];

  // nftables: one transaction for both tables.
  let families: NftFamily[] = ['bridge', 'inet'];
  // quick trusts the tables' elements only while the wanted ones are what the last run applied: a
  // CLI change (ip allocate, vif set --locking) changes them without any nft event
  const nftDigest = createHash('sha1').update(JSON.stringify(plan.nft)).digest('hex');
  const lastDigest = local.get<{ digest: string }>(DOC_CHANGE, 'nft-digest')?.digest;
  if (opts.quick && lastDigest === nftDigest) {
    const chains = await nftListOwnChains(runner);
    families = families.filter((f) => {
      const want = Object.keys(expectedChains(f));
      const have = chains[f] ?? [];
      return !(have.length === want.length && want.every((c) => have.includes(c)));
    });
  }
  const obs = await nftObserve(runner, families);
  trace('nft observe');
  let script = '';
  // what undoes the nft transaction if a later step fails (a rebuilt table is not restored: its old
  // skeleton was the drift being repaired)
  let nftUndo = '';
  for (const family of families) {
    if (!skeletonIntact(obs, family)) {
      const what = obs.tables[family].present ? '~' : '+';
      if (what === '+') nftUndo += renderTableDelete(family);
      changes.push({ op: what, kind: 'nft-table', target: `${family} ${NFT_TABLE}`, detail: `${what === '~' ? 'rebuilt, ' : ''}${count(plan.nft, family)} set elements` });
      script += renderTableReplace(family, plan.nft);
      // what goes in, element by element, as long as that stays readable
      if (count(plan.nft, family) <= PLAN_ELEMENT_LINES) {
        for (const [set, elems] of Object.entries(plan.nft[family] as Record<string, string[]>)) {
          for (const e of elems) changes.push({ op: '+', kind: 'nft-element', target: `${family} ${set} ${e}` });
        }
      }
      continue;
    }
    const diff = diffElements(plan.nft, obs.elements, family);
    for (const c of diff) {
      for (const e of c.remove) changes.push({ op: '-', kind: 'nft-element', target: `${family} ${c.set} ${e}` });
      for (const e of c.add) changes.push({ op: '+', kind: 'nft-element', target: `${family} ${c.set} ${e}` });
    }
    script += renderElementChanges(diff);
    nftUndo += renderElementChanges(diff.map((c) => ({ ...c, add: c.remove, remove: c.add })));
  }

  // Addresses, routes, proxy neighbours, sysctls.
  const owned = loadOwned(local);
  const l3 = await diffL3(runner, l3Desired(plan), owned, IPVISOR_RT_PROTO);
  changes.push(...l3.changes);
  plan.warnings.push(...l3.warnings);
  const ipt = await syncForwardAccepts(runner, plan.iptablesForward, { dryRun: true });
  changes.push(...ipt);
  trace('l3+iptables observe');

  // a store with another identity never silently removes what the host enforces
  const identity = await src.storeIdentity();
  const decision = identity ? decideStoreSwitch({ enforcedFrom: readEnforcedOrigin(), store: identity, changes, force: !!opts.force }) : undefined;
  if (decision?.reason) plan.warnings.push(decision.reason);
  if (decision && !decision.allow && !dryRun) {
    const shown = decision.removals.slice(0, 5).map(formatPlanChange).join('; ');
    throw new IpvisorError('STORE_IDENTITY', `${decision.reason}. Removals: ${shown}${decision.removals.length > 5 ? `; ... ${decision.removals.length - 5} more (ipvisor plan lists them)` : ''}`, {
      details: { store: identity, removals: decision.removals },
    });
  }

  if (!dryRun && changes.length) {
    // All or nothing (DESIGN.md): nftables, then addresses/routes, then iptables; each step leaves
    // its undo, and a failing step undoes the earlier ones, so the host stays as it was.
    const undo: Array<() => Promise<unknown>> = [];
    try {
      await nftApply(runner, script);
      if (nftUndo) undo.push(() => nftApply(runner, nftUndo));
      trace('nft apply');
      if (l3.batch.length || l3.sysctlWrites.length) local.put(DOC_CHANGE, OWNED_KEY, mergeOwnedStates(owned, l3.owned));
      undo.push(await applyL3DiffUndoable(runner, l3));
      if (ipt.length) {
        undo.push(() => revertForwardChanges(runner, ipt));
        await syncForwardAccepts(runner, plan.iptablesForward);
      }
    } catch (err) {
      const failed: string[] = [];
      for (const u of undo.reverse()) await u().catch((e: Error) => failed.push(e.message));
      // the ledger keeps what may still be there when an undo failed (teardown removes it)
      if (!failed.length) local.put(DOC_CHANGE, OWNED_KEY, owned);
      const e = asIpvisorError(err);
      throw new IpvisorError(
        e.code,
        `${e.message}; ${failed.length ? `undoing this apply's earlier changes failed too (${failed.join('; ')}): ipvisor teardown removes what is left` : "this apply's earlier changes were undone: the host is as it was"}`,
        { details: e.details, field: e.field, cause: err },
      );
    }
    local.put(DOC_CHANGE, OWNED_KEY, l3.owned);
    // the default route may wait for an address added just now
    if (settings.gateway?.whenUp && !plan.routes.some((r) => r.dst === 'default')) {
      facts = await observeHostFacts(runner, src.host);
      plan = compileHostPlan(snapshot, facts, settings);
      plan.warnings.push(...l3.warnings);
      if (plan.routes.some((r) => r.dst === 'default')) {
        const again = await diffL3(runner, l3Desired(plan), l3.owned, IPVISOR_RT_PROTO);
        plan.warnings.push(...again.warnings.filter((w) => !plan.warnings.includes(w)));
        await applyL3Diff(runner, again);
        local.put(DOC_CHANGE, OWNED_KEY, again.owned);
        changes.push(...again.changes);
      }
    }
  }
  if (!dryRun && identity && decision?.record) writeEnforcedOrigin({ storeId: identity.id, location: identity.location, since: new Date().toISOString() });
  if (!dryRun && lastDigest !== nftDigest) local.put(DOC_CHANGE, 'nft-digest', { digest: nftDigest });
  // the per-VIF records follow the wanted elements: rewrite them only when those changed since the
  // last sync (a drift repair re-applies the same elements and leaves them alone)
  if (!dryRun) {
    const digest = createHash('sha1').update(JSON.stringify([plan.nft.bridge, plan.vifs.map((v) => [v.vifUuid, v.ifname, v.enforced])])).digest('hex');
    const last = local.get<{ digest?: string }>(DOC_CHANGE, 'vif-records');
    if (last?.digest !== digest) {
      syncVifRecords(local, plan.vifs, plan.nft);
      local.put(DOC_CHANGE, 'vif-records', { digest, syncedAt: new Date().toISOString() });
      trace('vif records');
    }
  }
  const forwards = plan.routes.some((r) => r.dst !== 'default') || plan.nft.inet.nat_bridges.length > 0;
  for (const d of forwards ? await forwardPolicyDrops(runner).catch(() => []) : []) {
    if (plan.routes.some((r) => r.family === d.family && r.dst !== 'default') || plan.nft.inet.nat_bridges.length) {
      plan.warnings.push(
        `${d.family === 4 ? 'iptables' : 'ip6tables'} FORWARD policy is DROP (Docker sets this): forwarded VM traffic is dropped there. ` +
          `Fix: ${d.family === 4 ? 'iptables' : 'ip6tables'} -I FORWARD -i BRIDGE -j ACCEPT and -o BRIDGE -j ACCEPT (or DOCKER-USER), or restore the policy with -P FORWARD ACCEPT`,
      );
    }
  }
  return { plan, changes, warnings: plan.warnings };
}

function l3Desired(plan: HostPlan) {
  return {
    addresses: plan.addresses.map((a) => ({ dev: a.dev, cidr: a.cidr })),
    routes: plan.routes.map((r) => ({ dst: r.dst, family: r.family, dev: r.dev, via: r.via, metric: r.metric })),
    proxyNeighbours: plan.proxyNeighbours,
    sysctls: plan.sysctls,
    narrowings: plan.narrowings,
  };
}

function bridgeOnly(e: NftElements): BridgeElements {
  return e.bridge;
}

function emptyBridge(): BridgeElements {
  return { locked_ifs: [], disabled_ifs: [], vif_mac: [], vif_ip4: [], vif_net4: [], vif_ip6: [], vif_net6: [], vif_nd6: [], vif_ndnet6: [] };
}

/** Bridge-table elements grouped by the interface name they start with (one pass, not one per VIF). */
function elementsByIfname(all: NftElements): Map<string, BridgeElements> {
  const out = new Map<string, BridgeElements>();
  for (const k of Object.keys(all.bridge) as (keyof BridgeElements)[]) {
    for (const e of all.bridge[k]) {
      const end = e.indexOf('"', 1);
      const ifname = e.slice(1, end);
      let b = out.get(ifname);
      if (!b) out.set(ifname, (b = emptyBridge()));
      b[k].push(e);
    }
  }
  return out;
}

/** Records, per VIF, the elements the host now holds for it: what the one-VIF path removes next time. */
function syncVifRecords(local: HostLocalState, vifs: VifEnforcement[], nft: NftElements): void {
  const existing = new Map(local.list<VifRecord>(DOC_VIF).map((d) => [d.key, d.value]));
  const byIf = elementsByIfname(nft);
  const writes: Array<[string, VifRecord]> = [];
  for (const v of vifs) {
    // only the VIF that holds the name owns its elements: a stale binding of the same name must not
    // take them away when the one-VIF path later unbinds or moves it
    const rec: VifRecord = { ifname: v.ifname, elements: (v.enforced && v.ifname && byIf.get(v.ifname)) || emptyBridge() };
    const old = existing.get(v.vifUuid);
    existing.delete(v.vifUuid);
    if (!old || JSON.stringify(old) !== JSON.stringify(rec)) writes.push([v.vifUuid, rec]);
  }
  if (!writes.length && !existing.size) return;
  local.batch(() => {
    for (const [k, v] of writes) local.put(DOC_VIF, k, v);
    for (const k of existing.keys()) local.delete(DOC_VIF, k);
  });
}

/**
 * The one-VIF path: the VIFs' wanted elements against what was recorded for them, in one nft
 * transaction (new elements before old ones go), without listing anything. Returns null, and the
 * full path takes over, when that transaction fails (tables missing, a recorded element gone:
 * drift) or when the change is more than elements (routes, an interface name another VIF holds).
 */
async function runVifs(src: HostSource, vifUuids: string[], opts: HostApplyOptions, runner: HostRunner): Promise<PlanChange[] | null> {
  // another store than the host's, or none recorded yet: the full path decides what it may change
  const identity = await src.storeIdentity();
  if (identity && readEnforcedOrigin()?.storeId !== identity.id) return null;
  const adds: ElementChange[] = [];
  const removes: ElementChange[] = [];
  const planChanges: PlanChange[] = [];
  const records: Array<[string, VifRecord | null]> = [];
  for (const vifUuid of new Set(vifUuids)) {
    const inputs = await src.vifInputs(vifUuid);
    const vif = inputs.vif;
    const recDoc = src.local.get<VifRecord>(DOC_VIF, vifUuid);
    const old: BridgeElements = recDoc?.elements ?? emptyBridge();
    let want: BridgeElements = emptyBridge();
    let ifname: string | null = null;
    if (vif) {
      const { network, vm } = inputs;
      if (network && network.driver !== 'xapi' && vm?.host === src.host) {
        const assigned = inputs.assignments.filter((a) => a.kind !== 'reserved');
        const locking = effectiveLocking(vif, network, assigned.length);
        want = bridgeOnly(vifElements(vif, locking, assigned.map(hostCidr).sort()));
        ifname = vif.ifname;
        // routed addresses also need routes and forward accepts: the full path handles those
        if (assigned.some((a) => a.kind === 'routed')) return null;
        // A new binding whose name another VIF still holds (its VM stopped without an unbind: a host
        // crash) would add to that VIF's elements on the interface; the full path enforces only the
        // newest binding. Checked only when the binding changes (a VM start), not per address change.
        if (ifname && recDoc?.ifname !== ifname && (await inputs.otherHolders(ifname)).length) return null;
      }
    }
    // the name this VIF leaves may belong to another (stale) binding next: the full path decides
    if (recDoc?.ifname && recDoc.ifname !== ifname && (await inputs.otherHolders(recDoc.ifname)).length) return null;
    for (const set of Object.keys(want) as (keyof BridgeElements)[]) {
      const w = new Set(want[set]);
      const o = new Set(old[set]);
      const add = [...w].filter((e) => !o.has(e));
      const remove = [...o].filter((e) => !w.has(e));
      if (add.length) adds.push({ family: 'bridge', set, add, remove: [] });
      if (remove.length) removes.push({ family: 'bridge', set, add: [], remove });
      for (const e of remove) planChanges.push({ op: '-', kind: 'nft-element', target: `bridge ${set} ${e}` });
      for (const e of add) planChanges.push({ op: '+', kind: 'nft-element', target: `bridge ${set} ${e}` });
    }
    records.push([vifUuid, vif ? { ifname, elements: want } : null]);
  }
  if (opts.dryRun) return planChanges;
  if (!adds.length && !removes.length) {
    // nothing to change for these VIFs, but a VM restarted after `nft flush ruleset` must not find
    // the host unprotected: `list chains` loads no set elements (~3 ms at 20,000 VIFs)
    const chains = await nftListOwnChains(runner);
    const intact = (['bridge', 'inet'] as NftFamily[]).every((f) => chains[f]?.includes(skeletonMarker(f)));
    return intact ? planChanges : null;
  }
  try {
    // No listing first (at 20,000 VIFs even `nft list tables` takes ~0.2 s): the transaction fails
    // as a whole when the table is missing or a recorded element is gone, and the full path takes over.
    const script = renderElementChanges(adds) + renderElementChanges(removes);
    await (opts.nft ? opts.nft(script) : nftApply(runner, script));
  } catch (err) {
    opts.log?.(`one-VIF change failed (${(err as Error).message.split('\n')[0]}); applying the whole host`);
    return null;
  }
  src.local.batch(() => {
    for (const [vifUuid, rec] of records) {
      if (rec) src.local.put(DOC_VIF, vifUuid, rec);
      else src.local.delete(DOC_VIF, vifUuid);
    }
    // the records no longer match the last full sync's digest: the next full run re-checks them all
    src.local.delete(DOC_CHANGE, 'vif-records');
  });
  return planChanges;
}

/** A Store means this box's store and this host (the one-box path); an agent passes its own source. */
async function sourceOf(target: Store | HostSource): Promise<HostSource> {
  return isHostSource(target) ? target : storeHostSource(target);
}

/**
 * Observe, diff and apply this host's state under the host lock. With scope.vifUuid only that
 * VIF's anti-spoofing elements are touched (fast path for hooks). Returns what changed (dryRun:
 * what would change).
 */
export async function applyHost(target: Store | HostSource, opts: HostApplyOptions): Promise<PlanChange[]> {
  const runner = opts.runner ?? createHostRunner();
  const src = await sourceOf(target);
  return withHostLock(async () => {
    // timed under the lock: the histogram says how long enforcement takes, not how long it waited
    const timer = opts.dryRun ? undefined : applyDuration.startTimer();
    let scope = 'full';
    try {
      const vifUuids = [...(opts.scope?.vifUuid ? [opts.scope.vifUuid] : []), ...(opts.scope?.vifUuids ?? [])];
      if (vifUuids.length) {
        const fast = await runVifs(src, vifUuids, opts, runner);
        if (fast) {
          scope = 'vif';
          if (!opts.dryRun) {
            countChanges(fast);
            await src.audit(opts.actor, opts.auditAction ?? 'host.apply', fast);
          }
          timer?.({ scope, result: 'ok' });
          return fast;
        }
      }
      const res = await runFull(src, opts, runner);
      for (const w of res.warnings) opts.log?.(`warning: ${w}`);
      if (!opts.dryRun) {
        countChanges(res.changes);
        await src.audit(opts.actor, opts.auditAction ?? 'host.apply', res.changes);
      }
      timer?.({ scope, result: 'ok' });
      return res.changes;
    } catch (err) {
      timer?.({ scope, result: 'error' });
      throw err;
    }
  });
}

/** Plan and warnings without applying (ipvisor plan). */
export async function planHost(target: Store | HostSource, opts: Omit<HostApplyOptions, 'dryRun'>): Promise<HostRun> {
  const runner = opts.runner ?? createHostRunner();
  const src = await sourceOf(target);
  return withHostLock(() => runFull(src, { ...opts, dryRun: true }, runner));
}

/** Removes ipvisor's tables, routes, addresses, proxies, iptables accepts; restores what it changed. */
export async function teardownHost(target: Store | HostSource, opts: HostApplyOptions): Promise<PlanChange[]> {
  const runner = opts.runner ?? createHostRunner();
  const src = await sourceOf(target);
  const local = src.local;
  return withHostLock(async () => {
    const changes: PlanChange[] = [];
    const tables = new Set(await nftListTables(runner));
    let script = '';
    for (const family of ['bridge', 'inet'] as NftFamily[]) {
      if (!tables.has(`${family} ${NFT_TABLE}`)) continue;
      changes.push({ op: '-', kind: 'nft-table', target: `${family} ${NFT_TABLE}` });
      script += renderTableDelete(family);
    }
    const owned = loadOwned(local);
    changes.push(...(await revertL3(runner, owned, { proto: IPVISOR_RT_PROTO, dryRun: true })));
    const ipt = await syncForwardAccepts(runner, [], { dryRun: true });
    changes.push(...ipt);
    if (!opts.dryRun) {
      await nftApply(runner, script);
      await revertL3(runner, owned, { proto: IPVISOR_RT_PROTO });
      if (ipt.length) await syncForwardAccepts(runner, []);
      local.batch(() => {
        local.deleteKind(DOC_CHANGE);
        local.deleteKind(DOC_VIF);
      });
      clearEnforcedOrigin();
      await src.audit(opts.actor, 'host.teardown', changes);
    }
    return changes;
  });
}

export interface VifStatus extends VifEnforcement {
  /** "VM:DEVICE" */
  label: string;
  enforced: boolean;
  drift: string[];
}

/** Per VIF: effective locking mode, allowed addresses, drift between wanted and actual elements. */
export async function hostStatus(target: Store | HostSource, opts: { runner?: HostRunner } = {}): Promise<{ vifs: VifStatus[]; pending: PlanChange[]; warnings: string[] }> {
  const runner = opts.runner ?? createHostRunner();
  const src = await sourceOf(target);
  const run = await withHostLock(() => runFull(src, { actor: 'status', dryRun: true }, runner));
  const obs = await nftObserve(runner, ['bridge']);
  const present = new Set(Object.values(obs.elements.bridge).flat());
  const byIf = elementsByIfname(run.plan.nft);
  const { snapshot } = await src.desired();
  const vms = snapshot.vms;
  const vmNames = new Map(vms.map((v) => [v.uuid, v.name]));
  // this host's VIFs only: other hosts' VMs and XAPI networks (locked through XAPI) are not ours here
  const here = new Set(vms.filter((v) => v.host === src.host).map((v) => v.uuid));
  const xapiNets = new Set(snapshot.networks.filter((n) => n.driver === 'xapi').map((n) => n.uuid));
  const vifs: VifStatus[] = run.plan.vifs.filter((v) => here.has(v.vmUuid) && !xapiNets.has(v.networkUuid)).map((v) => {
    const want = Object.values((v.enforced && v.ifname && byIf.get(v.ifname)) || emptyBridge()).flat();
    const missing = want.filter((e) => !present.has(e));
    return {
      ...v,
      label: `${vmNames.get(v.vmUuid) ?? v.vmUuid}:${v.device}`,
      enforced: v.enforced && obs.tables.bridge.present,
      drift: missing.map((e) => `missing ${e}`),
    };
  });
  // stable rows for people and scripts: by VM name, then device number
  vifs.sort((a, b) => (vmNames.get(a.vmUuid) ?? a.vmUuid).localeCompare(vmNames.get(b.vmUuid) ?? b.vmUuid) || a.device - b.device);
  return { vifs, pending: run.changes, warnings: run.warnings };
}

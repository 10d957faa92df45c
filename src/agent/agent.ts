// The agent on one hypervisor host: keeps a copy of the host's desired state on disk (with the
// identity of the store it came from), enforces it (observe -> diff -> apply), repairs drift, and
// follows the control plane (long-poll, periodic catch-up). Losing the control plane never loosens
// anything: the agent keeps enforcing its copy, a restart enforces from disk, hooks enforce from the
// copy, facts wait in a queue on disk until the control plane is back.
import type { AppliedReport, ControlPlane, DesiredDelta, DesiredState, HostFact } from '../core/control-plane.js';
import { AGENT_PROTOCOL, applyDelta } from '../core/control-plane.js';
import type { HostDesired } from '../core/compile/host-desired.js';
import { desiredDigest } from '../core/compile/host-desired.js';
import type { PlanChange } from '../core/enforcer.js';
import { formatPlanChange } from '../core/enforcer.js';
import type { Vif } from '../core/model/types.js';
import { applyHost, planHost, teardownHost, hostStatus } from './host/apply.js';
import { createHostRunner, type HostRunner } from './host/exec.js';
import { copyHostSource, auditLine, type HostSource } from './host/source.js';
import { NftSession } from './host/nft-session.js';
import { changedVifs } from './host/vif-delta.js';
import type { HostLocalState } from './state.js';
import { countRepairs } from '../core/metrics.js';
import type { HostPort } from '../core/watcher.js';

const KIND = 'agent';
const FACTS = 'agent-fact';
const BINDINGS = 'agent-binding';
const RETAINED = 'agent-retained';
/** Deltas accepted since the copy under KIND/desired was written (key: revision, zero-padded). */
const DELTAS = 'agent-delta';
/** Deltas kept on disk before the whole copy is written again (at 20,000 VIFs, writing the copy
 * takes most of a second: a delta is written as it came, small, and the copy now and then). */
const COMPACT_AFTER = 64;

/** A binding a hook made on this host, enforced at once and kept until the control plane agrees. */
export interface LocalBinding {
  vmUuid: string;
  mac: string;
  ifname: string | null;
  at: string;
}

/** A VIF the control plane no longer lists for this host while its interface is still here (a live
 * migration's source until release): enforced as it was until the interface goes. */
interface Retained {
  vif: Vif;
  state: { vm: HostDesired['snapshot']['vms'][number]; assignments: HostDesired['snapshot']['assignments'] };
}

export interface AgentOptions {
  host: string;
  controlPlane: ControlPlane;
  local: HostLocalState;
  log(msg: string): void;
  /** Periodic re-verify (drift repair), default 5 s; 0: the caller drives it (serve). */
  intervalMs?: number;
  /** Actor of audit events (default agent:HOST; serve: 'serve'). */
  actor?: string;
  /** Long-poll wait, default 25 s. 0: plain polling every pollMs (the bench's alternative). */
  waitMs?: number;
  pollMs?: number;
  /** Delay before trying the control plane again after a failure, default 1 s. */
  retryMs?: number;
  runner?: HostRunner;
  version?: string;
  /** Interfaces present on the host (for retained VIFs); default: /sys/class/net. */
  interfaceExists?(ifname: string): Promise<boolean>;
  /** While run() runs, one-VIF changes go through a persistent `nft -i` (default); false: `nft -f -`. */
  nftSession?: boolean;
}

export class Agent {
  private desired: DesiredState | undefined;
  private removed = false;
  private connected = false;
  private everTried = false;
  private running = false;
  private again = false;
  private timer: NodeJS.Timeout | undefined;
  private pending: Array<{ reason: string; vifs?: string[] }> = [];
  /** What the control plane sent since start (bench, tests): a delta that did not verify is a mismatch. */
  readonly received = { snapshot: 0, delta: 0, mismatch: 0 };
  /** Deltas on disk after the written copy (DELTAS). */
  private deltasKept = 0;
  private lastReport: AppliedReport | undefined;
  private refused: string | undefined;
  /** The digest of the last refused state: the long-poll waits for something else than it (asking
   * with the enforced digest would get the refused state back at once, in a loop). */
  private refusedDigest: string | undefined;
  private lastWarnings = new Set<string>();
  private flushing: Promise<void> | undefined;
  private readonly desiredListeners = new Set<() => void>();
  /** The effective desired state last enforced in full or by the one-VIF path: what a desired-state
   * change is compared with to find the VIFs it touches. */
  private lastEnforced: HostDesired | undefined;
  /** effectiveDesired() of the current copy and local bindings (bumped when those change). */
  private effective: { desired: DesiredState | undefined; version: number; value: HostDesired } | undefined;
  private localVersion = 0;
  private nftSession: NftSession | undefined;
  /** Whether the last enforce() applied some VIFs only (its report keeps the last full run's drift). */
  private lastRunScoped = false;
  private readyResolve!: () => void;
  /** Resolves after the first reconcile (from disk or from the control plane's first answer). */
  readonly ready = new Promise<void>((r) => (this.readyResolve = r));
  readonly host: string;
  private readonly actor: string;

  constructor(private readonly opts: AgentOptions) {
    this.host = opts.host;
    this.actor = opts.actor ?? `agent:${opts.host}`;
    this.desired = opts.local.get<DesiredState>(KIND, 'desired');
    // the deltas accepted since the copy was written; a break in the chain (never expected) makes
    // the next accepted state write the whole copy
    const replayed = replayDeltas(this.desired, opts.local.list<DesiredDelta>(DELTAS).map((d) => d.value));
    this.desired = replayed.desired;
    this.deltasKept = replayed.broken ? COMPACT_AFTER : replayed.applied;
    this.removed = !!opts.local.get<boolean>(KIND, 'removed');
  }

  get state(): { host: string; connected: boolean; removed: boolean; revision: number | null; digest: string | null; storeIdentity: string | null; refused?: string; queuedFacts: number; last?: AppliedReport } {
    return {
      host: this.host,
      connected: this.connected,
      removed: this.removed,
      revision: this.desired?.revision ?? null,
      digest: this.desired?.digest ?? null,
      storeIdentity: this.desired?.storeIdentity ?? null,
      refused: this.refused,
      queuedFacts: this.opts.local.list(FACTS).length,
      last: this.lastReport,
    };
  }

  /** What is enforced: the copy, plus bindings hooks made here, plus retained VIFs. Kept while
   * neither changes (the one-VIF paths read it per change); unchanged records stay the same objects. */
  effectiveDesired(): HostDesired {
    const c = this.effective;
    if (c && c.desired === this.desired && c.version === this.localVersion) return c.value;
    const value = this.computeEffective();
    this.effective = { desired: this.desired, version: this.localVersion, value };
    return value;
  }

  /** The kept effectiveDesired() with new bindings laid over it (what computeEffective would make
   * of them, without copying every VIF again); false when nothing is kept. */
  private patchEffective(bindings: LocalBinding[]): boolean {
    const c = this.effective;
    if (!c || c.desired !== this.desired || c.version !== this.localVersion) return false;
    const value: HostDesired = { ...c.value, snapshot: { ...c.value.snapshot, vifs: overlayBindings(c.value.snapshot.vifs, bindings) } };
    this.effective = { desired: this.desired, version: ++this.localVersion, value };
    return true;
  }

  private computeEffective(): HostDesired {
    const d: HostDesired = this.desired ?? { host: this.host, snapshot: { networks: [], pools: [], vms: [], vifs: [], assignments: [] }, settings: {} };
    const retained = this.opts.local.list<Retained>(RETAINED);
    const bindings = this.opts.local.list<LocalBinding>(BINDINGS);
    if (!retained.length && !bindings.length) return { host: this.host, snapshot: d.snapshot, settings: d.settings };
    const snapshot = { ...d.snapshot, vms: [...d.snapshot.vms], vifs: [...d.snapshot.vifs], assignments: [...d.snapshot.assignments] };
    for (const { value: r } of retained) {
      if (snapshot.vifs.some((v) => v.uuid === r.vif.uuid)) continue;
      if (!snapshot.vms.some((v) => v.uuid === r.state.vm.uuid)) snapshot.vms.push({ ...r.state.vm, host: this.host });
      snapshot.vifs.push(r.vif);
      snapshot.assignments.push(...r.state.assignments.filter((a) => !snapshot.assignments.some((b) => b.uuid === a.uuid)));
    }
    snapshot.vifs = overlayBindings(snapshot.vifs, bindings.map((b) => b.value));
    return { host: this.host, snapshot, settings: d.settings };
  }

  source(): HostSource {
    return copyHostSource({
      host: this.host,
      local: this.opts.local,
      desired: () => this.effectiveDesired(),
      // the host applier records it and checks it too (core/compile/store-switch.ts): a CLI apply
      // from another store on this host then knows what the agent enforces
      storeIdentity: () => (this.desired ? { id: this.desired.storeIdentity, location: 'the control plane' } : null),
      report: async (actor, action, changes) => this.queueFacts([{ kind: 'audit', host: this.host, time: new Date().toISOString(), actor, action, changes: changes.slice(0, 200).map(auditLine) }]),
    });
  }

  private queueFacts(facts: HostFact[]): void {
    const base = Date.now().toString().padStart(15, '0');
    this.opts.local.batch(() => facts.forEach((f, i) => this.opts.local.put(FACTS, `${base}-${process.pid}-${i}-${Math.random().toString(36).slice(2, 8)}`, f)));
  }

  /** What agent-placed watchers (libvirt events, guest push, DHCP reservations) get instead of a
   * store: the enforced desired state, the fact queue, this host's local state. */
  hostPort(): HostPort {
    return {
      name: this.host,
      desired: () => this.effectiveDesired(),
      reportFacts: (facts) => {
        this.queueFacts(facts);
        if (this.connected) void this.flushFacts().catch(() => undefined);
      },
      onDesired: (listener) => {
        this.desiredListeners.add(listener);
        return () => this.desiredListeners.delete(listener);
      },
      local: this.opts.local,
    };
  }

  /** Sends queued facts; they stay queued while the control plane is unreachable. One send at a
   * time (watchers, hooks and the run loop all flush), so no fact goes out twice. */
  async flushFacts(): Promise<void> {
    while (this.flushing) await this.flushing.catch(() => undefined);
    this.flushing = this.sendQueuedFacts().finally(() => (this.flushing = undefined));
    return this.flushing;
  }

  private async sendQueuedFacts(): Promise<void> {
    const queued = this.opts.local.list<HostFact>(FACTS);
    if (!queued.length || this.removed) return;
    await this.opts.controlPlane.reportFacts(this.host, queued.map((q) => q.value));
    this.opts.local.batch(() => queued.forEach((q) => this.opts.local.delete(FACTS, q.key)));
  }

  /** A new desired state from the control plane: keep it unless it comes from another store. */
  accept(state: DesiredState, delta?: DesiredDelta): boolean {
    const have = this.desired;
    if (have && have.storeIdentity !== state.storeIdentity && !state.force) {
      const why = `the control plane's store ${state.storeIdentity} is not the store this host's enforcement came from (${have.storeIdentity}); keeping what is enforced (ipvisor server --force replaces it)`;
      if (this.refused !== why) this.opts.log(`refused: ${why}`);
      this.refused = why;
      this.refusedDigest = state.digest;
      return false;
    }
    this.refused = undefined;
    this.refusedDigest = undefined;
    this.retainDeparted(have, state);
    this.desired = state;
    if (delta && this.deltasKept < COMPACT_AFTER) {
      this.opts.local.put(DELTAS, String(delta.revision).padStart(15, '0'), delta);
      this.deltasKept++;
    } else {
      this.opts.local.batch(() => {
        this.opts.local.put(KIND, 'desired', state);
        this.opts.local.deleteKind(DELTAS);
      });
      this.deltasKept = 0;
    }
    for (const l of this.desiredListeners) {
      try {
        l(); // a watcher's wake-up: it must not keep the copy from being accepted
      } catch (err) {
        this.opts.log(`desired-state listener failed: ${(err as Error).message}`);
      }
    }
    // bindings the control plane now shows (or overrode after our facts were delivered) are done
    if (!this.opts.local.list(FACTS).length) this.opts.local.deleteKind(BINDINGS);
    return true;
  }

  /**
   * A delta from the control plane: applied to the copy it was computed from and kept only when the
   * result's digest is the server's; otherwise (another copy, a change the feed did not carry) a
   * snapshot is asked for. Nothing is enforced from a copy that does not verify. Returns the VIFs
   * a one-VIF reconcile may cover, 'all' for a full one, or undefined when nothing was accepted.
   */
  async acceptDelta(delta: DesiredDelta, signal?: AbortSignal): Promise<string[] | 'all' | undefined> {
    const have = this.desired;
    if (have && have.revision === delta.fromRevision && have.storeIdentity === delta.storeIdentity) {
      const next = applyDelta(have, delta);
      if (desiredDigest(next) === delta.digest) {
        this.received.delta++;
        const scope = deltaScope(have, delta);
        return this.accept(next, delta) ? scope : undefined;
      }
    }
    this.received.mismatch++;
    this.opts.log(`desired state: the delta to revision ${delta.revision} does not verify against this host's copy (revision ${have?.revision ?? 'none'}); asking for a snapshot`);
    const a = await this.opts.controlPlane.desiredState(this.host, { full: true, signal });
    if (a.kind !== 'snapshot') return undefined;
    this.received.snapshot++;
    return this.accept(a.state) ? 'all' : undefined;
  }

  /** VIFs bound here in the old copy and gone from the new one keep their enforcement while their
   * interface exists: a live migration's source removes only at release. */
  private retainDeparted(old: DesiredState | undefined, next: DesiredState): void {
    if (!old) return;
    const keep = new Set(next.snapshot.vifs.map((v) => v.uuid));
    for (const vif of old.snapshot.vifs) {
      if (keep.has(vif.uuid) || !vif.ifname) continue;
      const vm = old.snapshot.vms.find((v) => v.uuid === vif.vmUuid);
      if (!vm) continue;
      const r: Retained = { vif, state: { vm, assignments: old.snapshot.assignments.filter((a) => a.vifUuid === vif.uuid) } };
      this.opts.local.put(RETAINED, vif.uuid, r);
    }
  }

  /** Drops retained VIFs whose interface is gone (the VM left this host). */
  private async pruneRetained(): Promise<void> {
    const exists = this.opts.interfaceExists ?? defaultInterfaceExists;
    for (const { key, value } of this.opts.local.list<Retained>(RETAINED)) {
      if (!value.vif.ifname || !(await exists(value.vif.ifname))) {
        this.opts.local.delete(RETAINED, key);
        this.localVersion++;
      }
    }
  }

  /** A libvirt hook on this host: bind or release interfaces, enforce them at once, queue the facts. */
  async hookEvent(ev: { op: string; vmUuid: string; interfaces: Array<{ mac: string; ifname: string | null }> }): Promise<{ changes: PlanChange[] }> {
    const at = new Date().toISOString();
    const release = ev.op === 'stopped' || ev.op === 'release';
    const bindings: LocalBinding[] = ev.interfaces.map((i) => ({ vmUuid: ev.vmUuid, mac: i.mac.toLowerCase(), ifname: release ? null : i.ifname, at }));
    let retainedGone = false;
    if (release) {
      for (const { key, value } of this.opts.local.list<Retained>(RETAINED)) {
        if (value.vif.vmUuid !== ev.vmUuid) continue;
        this.opts.local.delete(RETAINED, key);
        retainedGone = true;
      }
    }
    // only VIFs this host's copy knows: an unknown VM waits for the control plane (its facts go out)
    this.opts.local.batch(() => {
      for (const b of bindings) this.opts.local.put(BINDINGS, `${b.vmUuid}/${b.mac}`, b);
    });
    if (retainedGone || !this.patchEffective(bindings)) this.localVersion++;
    this.queueFacts(bindings.map((b) => ({ kind: 'vif-bind', host: this.host, time: at, vmUuid: b.vmUuid, mac: b.mac, ifname: b.ifname })));
    const changes: PlanChange[] = [];
    const eff = this.effectiveDesired();
    // the event's VIFs in one element transaction, from what was applied for them (no listing)
    const vifUuids: string[] = [];
    for (const b of bindings) {
      const vif = eff.snapshot.vifs.find((v) => v.vmUuid === b.vmUuid && v.mac === b.mac);
      if (vif) vifUuids.push(vif.uuid);
    }
    if (vifUuids.length) changes.push(...(await applyHost(this.source(), { actor: this.actor, scope: { vifUuids }, runner: this.opts.runner, nft: this.nftApplier(), log: this.opts.log })));
    // a VM this host did not know: ask the control plane now (a migration's target)
    if (!release && bindings.some((b) => !eff.snapshot.vifs.some((v) => v.vmUuid === b.vmUuid && v.mac === b.mac))) {
      try {
        await this.flushFacts();
        const a = await this.opts.controlPlane.desiredState(this.host, { digest: this.desired?.digest });
        if (a.kind === 'snapshot' && this.accept(a.state)) changes.push(...(await this.enforce('hook')));
      } catch (err) {
        this.opts.log(`hook: control plane unreachable (${(err as Error).message}); VM ${ev.vmUuid} is enforced once it answers`);
      }
    } else {
      void this.flushFacts().catch(() => undefined);
    }
    return { changes };
  }

  private async enforce(reason: string, vifs?: string[]): Promise<PlanChange[]> {
    await this.pruneRetained();
    this.lastRunScoped = false;
    // re-verified every few seconds: a warning is logged when it is new or came back
    const seen = new Set<string>();
    const log = (m: string) => {
      if (!m.startsWith('warning: ')) return this.opts.log(m);
      seen.add(m);
      if (!this.lastWarnings.has(m)) this.opts.log(m);
    };
    try {
      // A change that touches a few VIFs only (a delta says which; a whole new copy is compared with
      // what was enforced last): their elements, from what was applied for them, in one nft
      // transaction; the one-VIF path falls back to the whole host by itself when it cannot, and the
      // periodic full reconcile stays the safety net that repairs any drift.
      const eff = this.effectiveDesired();
      const scope = vifs ?? (reason === 'desired state' && this.lastEnforced ? changedVifs(this.lastEnforced, eff) : null);
      if (scope) {
        const changes = scope.length ? await applyHost(this.source(), { actor: this.actor, auditAction: 'host.repair', scope: { vifUuids: scope }, runner: this.opts.runner, nft: this.nftApplier(), log, force: !!this.desired?.force }) : [];
        // a delta's VIFs are relative to the last copy, not to what was enforced last: keep that
        if (!vifs) this.lastEnforced = eff;
        this.lastRunScoped = true;
        return changes;
      }
      this.localVersion++; // a hook process without its agent may have written bindings meanwhile
      const full = this.effectiveDesired();
      // a copy accepted with --force (server/serve --force) may remove what another store's put there
      const changes = await applyHost(this.source(), { actor: this.actor, auditAction: 'host.repair', quick: reason === 'periodic', runner: this.opts.runner, log, force: !!this.desired?.force });
      this.lastEnforced = full;
      return changes;
    } finally {
      // a one-VIF run sees no host-wide warnings: the last full run's stand
      if (!this.lastRunScoped) this.lastWarnings = seen;
    }
  }

  /** One reconcile: apply the copy (only `vifs` when given), then report what was done (when the
   * control plane answers). */
  async reconcile(reason: string, vifs?: string[]): Promise<void> {
    if (this.running) {
      this.again = true;
      this.pending.push({ reason, vifs });
      return;
    }
    this.running = true;
    try {
      do {
        this.again = false;
        let report: AppliedReport;
        try {
          const changes = await this.enforce(reason, vifs);
          countRepairs(changes);
          if (changes.length) this.opts.log(`host: repaired ${changes.length} change(s) (${reason}): ${changes.slice(0, 5).map(formatPlanChange).join('; ')}${changes.length > 5 ? '; ...' : ''}`);
          report = this.report(true, changes.length, undefined, await this.drift(changes.length, this.lastRunScoped));
        } catch (err) {
          this.opts.log(`host: reconcile failed (${reason}): ${(err as Error).message}`);
          report = this.report(false, 0, (err as Error).message, await this.drift(1, false));
        }
        this.lastReport = report;
        if (this.connected && !this.removed) {
          await this.flushFacts().catch(() => undefined);
          await this.opts.controlPlane.reportApplied(this.host, report).catch(() => undefined);
        }
        const next = this.pending;
        this.pending = [];
        if (next.length) {
          reason = next[0].reason;
          // one full request among them makes it a full reconcile
          vifs = next.every((p) => p.vifs) ? [...new Set(next.flatMap((p) => p.vifs!))] : undefined;
        }
      } while (this.again);
    } finally {
      this.running = false;
      this.readyResolve();
    }
  }

  /**
   * The differences still pending after a reconcile (what `plan` would change now), for the report.
   * A full run that changed nothing observed the host in sync: no second look. A one-VIF run
   * observed only its VIFs: the last full run's drift stands until the next one.
   */
  private async drift(changes: number, scoped: boolean): Promise<string[]> {
    if (scoped) return this.lastReport?.drift ?? [];
    if (!changes) return [];
    try {
      const plan = await planHost(this.source(), { actor: this.actor, runner: this.opts.runner, force: !!this.desired?.force });
      return plan.changes.slice(0, 200).map(formatPlanChange);
    } catch (err) {
      return [`plan failed: ${(err as Error).message}`];
    }
  }

  private report(ok: boolean, changes: number, error?: string, drift: string[] = []): AppliedReport {
    return {
      revision: this.desired?.revision ?? 0,
      digest: this.desired?.digest ?? '',
      storeIdentity: this.desired?.storeIdentity ?? '',
      ok,
      error,
      changes,
      drift,
      warnings: [...this.lastWarnings].map((w) => w.replace(/^warning: /, '')),
      refused: this.refused,
      agentVersion: this.opts.version ?? AGENT_PROTOCOL,
      at: new Date().toISOString(),
    };
  }

  requestReconcile(reason: string): void {
    if (this.timer) return;
    this.timer = setTimeout(() => {
      this.timer = undefined;
      void this.reconcile(reason);
    }, 20);
  }

  /** The persistent `nft -i` of a running agent, if any (one-VIF changes). */
  private nftApplier(): ((script: string) => Promise<void>) | undefined {
    const session = this.nftSession;
    return session ? (script) => session.apply(script) : undefined;
  }

  /** Scripts the persistent `nft -i` applied (tests, bench). */
  get nftSessionApplied(): number {
    return this.nftSession?.applied ?? 0;
  }

  /** Runs until the signal aborts: enforce from disk at once, then follow the control plane. */
  async run(signal: AbortSignal): Promise<void> {
    if (this.opts.nftSession !== false) this.nftSession ??= new NftSession(this.opts.runner ?? createHostRunner());
    if (this.desired) {
      this.opts.log(`enforcing the desired state on disk (revision ${this.desired.revision}, store ${this.desired.storeIdentity})`);
      await this.reconcile('start');
    }
    const every = this.opts.intervalMs ?? 5000;
    const periodic = every > 0 ? setInterval(() => this.requestReconcile('periodic'), every) : undefined;
    try {
      while (!signal.aborted) {
        try {
          // facts queued during an outage go out first (the long-poll may wait a while)
          if (this.opts.local.list(FACTS).length) await this.flushFacts();
          // the copy's revision and store: a change may come as a delta against it
          const a = await this.opts.controlPlane.desiredState(this.host, {
            digest: this.refusedDigest ?? this.desired?.digest,
            revision: this.desired?.revision,
            storeIdentity: this.desired?.storeIdentity,
            waitMs: this.opts.waitMs ?? 25_000,
            signal,
          });
          if (!this.connected) this.opts.log('control plane reachable');
          this.connected = true;
          if (a.kind === 'removed') {
            if (!this.removed) this.opts.log(`host ${this.host} was removed on the control plane: keeping what is enforced; ipvisor agent --teardown cleans up`);
            this.removed = true;
            this.opts.local.put(KIND, 'removed', true);
            await sleep(this.opts.retryMs ?? 1000, signal);
            continue;
          }
          if (this.removed) this.opts.local.delete(KIND, 'removed');
          this.removed = false;
          if (a.kind === 'snapshot') this.received.snapshot++;
          if (a.kind === 'snapshot' && this.accept(a.state)) await this.reconcile('desired state');
          else if (a.kind === 'delta') {
            const scope = await this.acceptDelta(a.delta, signal);
            if (scope) await this.reconcile('desired state', scope === 'all' ? undefined : scope);
            else await this.flushFacts();
          } else await this.flushFacts();
          if (this.opts.waitMs === 0) await sleep(this.opts.pollMs ?? 5000, signal);
        } catch (err) {
          if (signal.aborted) break;
          if (this.connected || !this.everTried) this.opts.log(`control plane unreachable: ${(err as Error).message}; enforcing the last desired state (revision ${this.desired?.revision ?? 'none'})`);
          this.connected = false;
          this.everTried = true;
          await sleep(this.opts.retryMs ?? 1000, signal);
        }
      }
    } finally {
      if (periodic) clearInterval(periodic);
      this.readyResolve();
      if (this.timer) clearTimeout(this.timer);
      while (this.running) await new Promise((r) => setTimeout(r, 20));
      this.nftSession?.close();
      this.nftSession = undefined;
    }
  }

  /** `ipvisor apply` on an agent host: enforce the copy now and say what changed. */
  async applyNow(): Promise<PlanChange[]> {
    while (this.running) await new Promise((r) => setTimeout(r, 20));
    this.running = true;
    try {
      const changes = await this.enforce('apply');
      this.lastReport = this.report(true, changes.length);
      return changes;
    } finally {
      this.running = false;
    }
  }

  plan() {
    return planHost(this.source(), { actor: this.actor, runner: this.opts.runner });
  }

  status() {
    return hostStatus(this.source(), { runner: this.opts.runner });
  }

  /** `ipvisor agent --teardown`: remove everything this host's enforcement put there. */
  async teardown(): Promise<PlanChange[]> {
    const changes = await teardownHost(this.source(), { actor: this.actor, runner: this.opts.runner });
    this.opts.local.batch(() => {
      for (const k of [KIND, DELTAS, BINDINGS, RETAINED]) this.opts.local.deleteKind(k);
    });
    this.desired = undefined;
    this.lastEnforced = undefined;
    this.localVersion++;
    return changes;
  }
}

/** The VIFs a delta touches when it touches nothing else (no network, pool, setting or quarantined
 * tap; every assignment on a VIF): a one-VIF reconcile each covers it. 'all' otherwise. */
export function deltaScope(old: DesiredState, delta: DesiredDelta): string[] | 'all' {
  if (delta.upsert.networks?.length || delta.remove.networks?.length || delta.upsert.pools?.length || delta.remove.pools?.length) return 'all';
  if (JSON.stringify(delta.settings) !== JSON.stringify(old.settings)) return 'all';
  if (JSON.stringify(delta.quarantinedTaps ?? []) !== JSON.stringify(old.snapshot.quarantinedTaps ?? [])) return 'all';
  const vifs = new Set<string>();
  const oldAssignment = new Map(old.snapshot.assignments.map((a) => [a.uuid, a]));
  for (const a of delta.upsert.assignments ?? []) {
    const before = oldAssignment.get(a.uuid);
    if (!a.vifUuid || (before && before.vifUuid !== a.vifUuid)) return 'all';
    vifs.add(a.vifUuid);
  }
  for (const uuid of delta.remove.assignments ?? []) {
    const before = oldAssignment.get(uuid);
    if (!before) continue;
    if (!before.vifUuid) return 'all';
    vifs.add(before.vifUuid);
  }
  for (const v of delta.upsert.vifs ?? []) vifs.add(v.uuid);
  for (const uuid of delta.remove.vifs ?? []) vifs.add(uuid);
  for (const uuid of [...(delta.upsert.vms ?? []).map((v) => v.uuid), ...(delta.remove.vms ?? [])]) {
    for (const v of old.snapshot.vifs) if (v.vmUuid === uuid) vifs.add(v.uuid);
    for (const v of delta.upsert.vifs ?? []) if (v.vmUuid === uuid) vifs.add(v.uuid);
  }
  // many VIFs at once (a VM with many, a bulk change): the whole host in one transaction is cheaper
  return vifs.size > 0 && vifs.size <= 16 ? [...vifs] : 'all';
}

/**
 * The copy with the kept deltas replayed, each only onto the copy it was made for and kept only
 * when its result verifies; replay stops at the first delta that does not (the chain is broken).
 */
export function replayDeltas(copy: DesiredState | undefined, deltas: DesiredDelta[]): { desired: DesiredState | undefined; applied: number; broken: boolean } {
  let desired = copy;
  let applied = 0;
  for (const delta of deltas) {
    if (!desired || delta.fromRevision !== desired.revision || delta.storeIdentity !== desired.storeIdentity) return { desired, applied, broken: true };
    const next = applyDelta(desired, delta);
    if (desiredDigest(next) !== delta.digest) return { desired, applied, broken: true };
    desired = next;
    applied++;
  }
  return { desired, applied, broken: false };
}

/** The VIFs with local bindings laid over them (a new array; untouched VIFs stay the same objects):
 * a binding applies to the first VIF with its VM and MAC, the last binding of a key wins. */
function overlayBindings(vifs: Vif[], bindings: LocalBinding[]): Vif[] {
  const vms = new Set(bindings.map((b) => b.vmUuid));
  const left = new Map(bindings.map((b) => [`${b.vmUuid}/${b.mac}`, b]));
  const out = vifs.slice();
  for (let i = 0; i < out.length && left.size; i++) {
    const v = out[i];
    if (!vms.has(v.vmUuid)) continue;
    const key = `${v.vmUuid}/${v.mac}`;
    const b = left.get(key);
    if (!b) continue;
    left.delete(key);
    out[i] = { ...v, ifname: b.ifname, boundAt: b.ifname ? b.at : null };
  }
  return out;
}

/** A control plane that is not there: a hook enforcing without its agent, from the copy on disk. */
export const OFFLINE: ControlPlane = {
  async desiredState() {
    throw new Error('no control plane in this process');
  },
  async reportApplied() {
    throw new Error('no control plane in this process');
  },
  async reportFacts() {
    throw new Error('no control plane in this process');
  },
};

async function defaultInterfaceExists(ifname: string): Promise<boolean> {
  const { access } = await import('node:fs/promises');
  return access(`/sys/class/net/${ifname}`).then(
    () => true,
    () => false,
  );
}

function sleep(ms: number, signal: AbortSignal): Promise<void> {
  return new Promise((resolve) => {
    if (signal.aborted) return resolve();
    // the listener goes with the timer: an outage of hours retries thousands of times
    const onAbort = () => (clearTimeout(t), resolve());
    const t = setTimeout(() => (signal.removeEventListener('abort', onAbort), resolve()), ms);
    signal.addEventListener('abort', onAbort, { once: true });
  });
}

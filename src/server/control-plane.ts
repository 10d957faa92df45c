// The control plane over a store: the in-process ControlPlane adapter (`serve`: the agent calls it
// directly) and what the HTTP routes (agent-http.ts) call for remote agents.
//
// Desired state per host is the host's slice of one snapshot of the store (compile/host-desired.ts),
// read once per store revision and shared by every host asking at that revision. Wake-ups: the
// store's watch() (PostgreSQL LISTEN/NOTIFY, SQLite in-process signal and data_version polling)
// wakes the long-polls; a long-poll answers only when its host's digest changed, and the change feed
// narrows which hosts to recompute (a change row naming host A never wakes host B's agent).
import type { AppliedReport, ControlPlane, DeltaList, DesiredAnswer, DesiredDelta, DesiredQuery, DesiredState, HostFact } from '../core/control-plane.js';
import { DELTA_LISTS } from '../core/control-plane.js';
import { DOC_HOST_SETTING, desiredDigest, hostSettingKey } from '../core/compile/host-desired.js';
import type { HostSettings } from '../core/compile/host-plan.js';
import type { Snapshot } from '../core/model/snapshot.js';
import type { Assignment, Vif, Vm } from '../core/model/types.js';
import { DOC_QUARANTINE, loadSnapshot } from '../core/model/snapshot.js';
import type { Change, Store } from '../core/store/store.js';
import { bindVifFact, recordHostChanges } from '../core/service/host-facts.js';
import { parseHostFact } from '../core/model/validate.js';
import { DOC_AGENT_HOST, recordAgentReport } from './hosts.js';

export interface StoreControlPlaneOptions {
  /** Server mode: only registered hosts get desired state; others are told 'removed'. */
  requireRegistration?: boolean;
  /** `ipvisor server --force`: agents may replace a copy from a store with another identity. */
  force?: boolean;
  /** A delta is answered only from at most this many change rows (else a snapshot). */
  maxDeltaChanges?: number;
}

interface Waiter {
  host: string;
  digest?: string;
  wake(): void;
}

/** One read of the store shared by every host asking at its revision. */
interface Cached {
  revision: number;
  snapshot: Snapshot;
  /** host-setting documents by key (per host `gateway@NAME`, or the global `gateway`). */
  settingDocs: Map<string, unknown>;
  /** Each host's state at this snapshot (a digest costs a hash of the host's slice). */
  hosts: Map<string, DesiredState>;
  /** The snapshot by host, VM and VIF: a host's slice without scanning the whole store per host,
   * and what a VM or VIF change drags along. */
  index?: SnapshotIndex;
  /** Change rows since a revision, read once for every host asking from it. */
  since: Map<number, Promise<Change[]>>;
}

const DEFAULT_MAX_DELTA_CHANGES = 5000;

export class StoreControlPlane implements ControlPlane {
  private cache: Cached | undefined;
  private loading: Promise<Cached> | undefined;
  private readonly waiters = new Set<Waiter>();
  private unwatch: (() => void) | undefined;
  private lastSeenRevision = 0;
  private identity: string | undefined;
  /** Answers by kind since start (bench, tests). */
  readonly answered = { snapshot: 0, delta: 0, unchanged: 0 };
  /** Long-polls woken by a change, per host (tests: a VIF change wakes only its host). */
  readonly woken: Record<string, number> = {};

  constructor(readonly store: Store, private readonly opts: StoreControlPlaneOptions = {}) {}

  /** Number of agents waiting in a long-poll (bench, host list). */
  get waiting(): number {
    return this.waiters.size;
  }

  private async storeIdentity(): Promise<string> {
    this.identity ??= (await this.store.identity()).id;
    return this.identity;
  }

  private async snapshotAt(): Promise<Cached> {
    const revision = await this.store.currentRevision();
    const cache = this.cache;
    if (cache && cache.revision === revision) return cache;
    if (!this.loading) {
      this.loading = (async (): Promise<Cached> => {
        // Only agents' reports and other documents since the cached read: the snapshot still holds
        // (every agent's report makes a revision; re-reading the store for each would be waste).
        if (cache && revision > cache.revision) {
          const rows = await this.store.changesSince(cache.revision, 1000);
          if (rows.length < 1000 && !rows.some(concernsDesired)) {
            const moved: Cached = { ...cache, revision, since: new Map() };
            return moved;
          }
        }
        // the snapshot may include changes after `revision`: then the next revision re-reads it
        const snapshot = await loadSnapshot(this.store);
        const settingDocs = new Map((await this.store.listDocs(DOC_HOST_SETTING)).map((d) => [d.key, d.value] as const));
        return { revision, snapshot, settingDocs, hosts: new Map(), since: new Map() };
      })().finally(() => (this.loading = undefined));
    }
    const got = await this.loading;
    if (!this.cache || got.revision >= this.cache.revision) this.cache = got;
    return got;
  }

  async stateFor(host: string): Promise<DesiredState> {
    return (await this.stateAndCache(host)).state;
  }

  private async stateAndCache(host: string): Promise<{ state: DesiredState; cache: Cached }> {
    const cache = await this.snapshotAt();
    const storeIdentity = await this.storeIdentity();
    let state = cache.hosts.get(host);
    if (!state) {
      cache.index ??= indexSnapshot(cache.snapshot);
      const d = { host, snapshot: sliceOf(cache.index, cache.snapshot, host), settings: settingsOf(cache.settingDocs, host) };
      state = { ...d, revision: cache.revision, digest: desiredDigest(d), storeIdentity, force: this.opts.force || undefined };
      cache.hosts.set(host, state);
    }
    return { state, cache };
  }

  /** What changed in `host`'s slice since the agent's copy at q.revision, or undefined when only a
   * snapshot will do: no revision, another store, a revision this store has not reached (a restored
   * backup), or more change rows than a delta is worth. Objects are found through the change feed:
   * each row names an object; a VM drags its VIFs and their assignments along (a VM moving hosts
   * moves them in or out of the slice), a VIF its assignments. Whatever the feed misses shows as a
   * digest mismatch on the agent, which then asks for a snapshot. */
  private async deltaFor(host: string, state: DesiredState, cache: Cached, q: DesiredQuery): Promise<DesiredDelta | undefined> {
    const from = q.revision;
    if (from === undefined || !Number.isInteger(from) || from < 0 || q.full) return undefined;
    if (q.storeIdentity !== state.storeIdentity || from > cache.revision) return undefined;
    const max = this.opts.maxDeltaChanges ?? DEFAULT_MAX_DELTA_CHANGES;
    let rowsP = cache.since.get(from);
    if (!rowsP) {
      rowsP = this.store.changesSince(from, max + 1);
      cache.since.set(from, rowsP);
      rowsP.catch(() => cache.since.delete(from));
    }
    const rows = await rowsP;
    // whole revisions only: a feed cut short of the snapshot's revision (the row limit) cannot say
    // what changed; neither can one without rows up to it (rows no longer kept)
    const last = rows.length ? rows[rows.length - 1].revision : from;
    if (rows.length > max || last < cache.revision) return undefined;
    cache.index ??= indexSnapshot(cache.snapshot);
    const touched: Record<DeltaList, Set<string>> = { networks: new Set(), pools: new Set(), vms: new Set(), vifs: new Set(), assignments: new Set() };
    const touchVif = (uuid: string) => {
      touched.vifs.add(uuid);
      for (const a of cache.index!.assignmentsByVif.get(uuid) ?? []) touched.assignments.add(a.uuid);
    };
    for (const c of rows) {
      const h = changeHost(c);
      // another host's VM, VIF or assignment (a VM that left this host names this host: vm-left)
      if (h === undefined || (h !== 'all' && h !== host)) continue;
      if (c.kind === 'network') touched.networks.add(c.key);
      else if (c.kind === 'pool') touched.pools.add(c.key);
      else if (c.kind === 'vm' || c.kind === 'vm-left') {
        touched.vms.add(c.key);
        for (const v of cache.index.vifsByVm.get(c.key) ?? []) touchVif(v.uuid);
      } else if (c.kind === 'vif') touchVif(c.key);
      else if (c.kind === 'assignment') touched.assignments.add(c.key);
    }
    const delta: DesiredDelta = {
      storeIdentity: state.storeIdentity,
      fromRevision: from,
      revision: state.revision,
      digest: state.digest,
      ...(state.force ? { force: true } : {}),
      upsert: {},
      remove: {},
      settings: state.settings,
      ...(state.snapshot.quarantinedTaps?.length ? { quarantinedTaps: state.snapshot.quarantinedTaps } : {}),
    };
    let size = 0;
    let sliceSize = 0;
    for (const list of DELTA_LISTS) {
      if (!touched[list].size) continue;
      const have = new Map((state.snapshot[list] as Array<{ uuid: string }>).map((o) => [o.uuid, o]));
      sliceSize += have.size;
      const up: Array<{ uuid: string }> = [];
      const gone: string[] = [];
      for (const uuid of touched[list]) {
        const o = have.get(uuid);
        if (o) up.push(o);
        else gone.push(uuid);
      }
      if (up.length) (delta.upsert as Record<string, unknown>)[list] = up;
      if (gone.length) delta.remove[list] = gone;
      size += up.length + gone.length;
    }
    // a delta as big as the slice is no saving
    if (size > 64 && size > sliceSize / 2) return undefined;
    return delta;
  }

  private async answer(host: string, state: DesiredState, cache: Cached, q: DesiredQuery): Promise<DesiredAnswer> {
    const delta = await this.deltaFor(host, state, cache, q);
    if (delta) {
      this.answered.delta++;
      return { kind: 'delta', delta };
    }
    this.answered.snapshot++;
    return { kind: 'snapshot', state };
  }

  /** Starts following the store; `revision`: what the first waiter's state already holds (the feed
   * before it wakes nobody). */
  private ensureWatching(revision: number): void {
    if (this.unwatch) return;
    this.lastSeenRevision = Math.max(this.lastSeenRevision, revision);
    this.unwatch = this.store.watch((revision) => void this.onRevision(revision));
  }

  private async onRevision(revision: number): Promise<void> {
    if (!this.waiters.size) {
      this.lastSeenRevision = Math.max(this.lastSeenRevision, revision);
      return;
    }
    // Which hosts the new changes concern: a row with a host wakes that host; a row without one
    // (a network, a pool, a setting) may concern everyone.
    let hosts: Set<string> | 'all' = new Set<string>();
    try {
      const changes = await this.store.changesSince(this.lastSeenRevision, 10_000);
      if (changes.length >= 10_000) hosts = 'all';
      for (const c of changes) {
        if (hosts === 'all') break;
        const h = changeHost(c);
        if (h === 'all') hosts = 'all';
        else if (h) hosts.add(h);
      }
    } catch {
      hosts = 'all';
    }
    this.lastSeenRevision = Math.max(this.lastSeenRevision, revision);
    for (const w of [...this.waiters]) {
      if (hosts !== 'all' && !hosts.has(w.host)) continue;
      this.woken[w.host] = (this.woken[w.host] ?? 0) + 1;
      w.wake();
    }
  }

  async desiredState(host: string, q: DesiredQuery = {}): Promise<DesiredAnswer> {
    if (this.opts.requireRegistration && !(await this.store.getDoc(DOC_AGENT_HOST, host))) return { kind: 'removed' };
    let { state, cache } = await this.stateAndCache(host);
    if (state.digest !== q.digest || q.full) return this.answer(host, state, cache, q);
    if (!q.waitMs) return this.unchanged(state);
    this.ensureWatching(cache.revision);
    const deadline = Date.now() + q.waitMs;
    while (Date.now() < deadline && !q.signal?.aborted) {
      await new Promise<void>((resolve) => {
        const w: Waiter = { host, digest: q.digest, wake: () => done() };
        const t = setTimeout(() => done(), Math.max(0, deadline - Date.now()));
        const onAbort = () => done();
        q.signal?.addEventListener('abort', onAbort, { once: true });
        const done = () => {
          clearTimeout(t);
          q.signal?.removeEventListener('abort', onAbort);
          this.waiters.delete(w);
          resolve();
        };
        this.waiters.add(w);
      });
      if (this.opts.requireRegistration && !(await this.store.getDoc(DOC_AGENT_HOST, host))) return { kind: 'removed' };
      ({ state, cache } = await this.stateAndCache(host));
      if (state.digest !== q.digest) return this.answer(host, state, cache, q);
    }
    return this.unchanged(state);
  }

  private unchanged(s: DesiredState): DesiredAnswer {
    this.answered.unchanged++;
    return { kind: 'unchanged', revision: s.revision, digest: s.digest, storeIdentity: s.storeIdentity };
  }

  async reportApplied(host: string, report: AppliedReport): Promise<void> {
    if (this.opts.requireRegistration) await recordAgentReport(this.store, host, report);
    else await this.store.putDoc('host-report', host, report);
  }

  async reportFacts(host: string, facts: HostFact[]): Promise<void> {
    // checked here too: serve's in-process agent reaches this without the HTTP layer
    for (const f of facts.map((x, i) => parseHostFact(x, `facts[${i}]`))) {
      if (f.host !== host) continue; // the HTTP layer refuses these with 403 before they get here
      if (f.kind === 'audit') {
        await recordHostChanges(this.store, host, { actor: f.actor, action: f.action, changes: f.changes, time: f.time });
      } else if (f.kind === 'vif-bind') {
        await bindVifFact(this.store, { host, vmUuid: f.vmUuid, mac: f.mac, ifname: f.ifname, time: f.time });
      } else if (f.kind === 'domain') {
        // what a hook on the same host would record: VM, VIFs, taps, quarantine (facts.ts)
        const { recordDomain } = await import('../core/service/libvirt-facts.js');
        const dom = { uuid: f.domain.uuid, name: f.domain.name, id: f.state === 'running' ? 0 : null, interfaces: f.domain.interfaces };
        // a domain stopped on a host the VM has left (a migration's source, late) changes nothing there
        const known = await this.store.getVm(f.domain.uuid.toLowerCase()).catch(() => undefined);
        if (f.state === 'stopped' && known && known.host !== host) continue;
        await this.store.transaction((tx) => recordDomain(tx, dom, f.state, `agent:${host}`, host), { write: true });
        // a running domain's full XML: a NIC no longer in it was unplugged (device-removed)
        const vmUuid = f.domain.uuid.toLowerCase();
        if (f.state === 'running' && (await this.store.getVm(vmUuid))?.host === host) {
          const present = new Set(f.domain.interfaces.map((i) => i.mac?.toLowerCase()));
          for (const vif of await this.store.listVifs(vmUuid)) {
            if (vif.ifname && !present.has(vif.mac)) await bindVifFact(this.store, { host, vmUuid, mac: vif.mac, ifname: null, time: f.time });
          }
        }
      } else if (f.kind === 'guest-push') {
        const { GUEST_PUSH_DOC } = await import('../core/guest/push-port.js');
        const vm = await this.store.getVm(f.vmUuid);
        // `guest status VM` shows it; a VM that left this host meanwhile keeps its new host's record
        if (vm && vm.host === host) await this.store.putDoc(GUEST_PUSH_DOC, f.vmUuid, { ...f.record, host });
      }
    }
  }

  /** The store object now reads another file (serve reopened a replaced one): forget what was
   * read from the old one (its identity, its snapshot, its change feed). */
  storeReplaced(): void {
    this.identity = undefined;
    this.cache = undefined;
    this.lastSeenRevision = 0;
    this.unwatch?.();
    this.unwatch = undefined;
    for (const w of [...this.waiters]) w.wake();
  }

  close(): void {
    this.unwatch?.();
    this.unwatch = undefined;
    for (const w of [...this.waiters]) w.wake();
  }
}

/** Whom a change row concerns: one host, every host, or nobody (an agent's own report, XAPI state). */
export function changeHost(c: { kind: string; key: string; host: string | null }): string | 'all' | undefined {
  if (c.kind === 'network' || c.kind === 'pool') return 'all';
  if (c.kind === 'vm' || c.kind === 'vm-left' || c.kind === 'vif' || c.kind === 'assignment') return c.host ?? 'all';
  if (c.kind === `doc:${DOC_HOST_SETTING}`) return c.key.includes('@') ? c.key.slice(c.key.indexOf('@') + 1) : 'all';
  // quarantineKey(host, ifname)
  if (c.kind === `doc:${DOC_QUARANTINE}`) return c.key.includes('/') ? c.key.slice(0, c.key.indexOf('/')) : 'all';
  return undefined;
}

/** Whether a change row can change any host's desired state. */
function concernsDesired(c: Change): boolean {
  return changeHost(c) !== undefined;
}

/** A host's settings from the host-setting documents, as core/service/host-desired.ts loadHostSettings reads
 * them (the host's own document, else the global one; a document holding null stands). */
function settingsOf(docs: Map<string, unknown>, host: string): HostSettings {
  const pick = (name: 'gateway' | 'narrow') => {
    const own = hostSettingKey(name, host);
    return docs.has(own) ? docs.get(own) : docs.get(name);
  };
  return { gateway: (pick('gateway') as HostSettings['gateway']) ?? null, narrow: (pick('narrow') as HostSettings['narrow']) ?? [] };
}

interface SnapshotIndex {
  vmsByHost: Map<string, Vm[]>;
  vifsByVm: Map<string, Vif[]>;
  assignmentsByVif: Map<string, Assignment[]>;
  /** Assignments without a VIF (reservations): in every host's slice. */
  unbound: Assignment[];
}

function indexSnapshot(s: Snapshot): SnapshotIndex {
  const push = <T>(m: Map<string, T[]>, k: string, v: T) => {
    const l = m.get(k);
    if (l) l.push(v);
    else m.set(k, [v]);
  };
  const idx: SnapshotIndex = { vmsByHost: new Map(), vifsByVm: new Map(), assignmentsByVif: new Map(), unbound: [] };
  for (const v of s.vms) if (v.host) push(idx.vmsByHost, v.host, v);
  for (const v of s.vifs) push(idx.vifsByVm, v.vmUuid, v);
  for (const a of s.assignments) {
    if (a.vifUuid) push(idx.assignmentsByVif, a.vifUuid, a);
    else idx.unbound.push(a);
  }
  return idx;
}

/** hostSnapshot() (compile/host-desired.ts) through the index: the same objects (in another order,
 * which the digest does not see), without a scan of every VM, VIF and address per host. */
function sliceOf(idx: SnapshotIndex, s: Snapshot, host: string): Snapshot {
  const vms = idx.vmsByHost.get(host) ?? [];
  const vifs = vms.flatMap((v) => idx.vifsByVm.get(v.uuid) ?? []);
  const assignments = [...vifs.flatMap((v) => idx.assignmentsByVif.get(v.uuid) ?? []), ...idx.unbound];
  const quarantinedTaps = (s.quarantinedTaps ?? []).filter((q) => q.host === host);
  return { networks: s.networks, pools: s.pools, vms, vifs, assignments, ...(quarantinedTaps.length ? { quarantinedTaps } : {}) };
}

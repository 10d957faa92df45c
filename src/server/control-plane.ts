// The control plane over a store: the in-process ControlPlane adapter (`serve`: the agent calls it
// directly) and what the HTTP routes (agent-http.ts) call for remote agents.
//
// Desired state per host is the host's slice of one snapshot of the store (compile/host-desired.ts),
// read once per store revision and shared by every host asking at that revision. Wake-ups: the
// store's watch() (PostgreSQL LISTEN/NOTIFY, SQLite in-process signal and data_version polling)
// wakes the long-polls; a long-poll answers only when its host's digest changed, and the change feed
// narrows which hosts to recompute (a change row naming host A never wakes host B's agent).
import type { AppliedReport, ControlPlane, DesiredAnswer, DesiredQuery, DesiredState, HostFact } from '../core/control-plane.js';
import { DOC_HOST_SETTING, desiredDigest, hostSnapshot } from '../core/compile/host-desired.js';
import type { Snapshot } from '../core/model/snapshot.js';
import { loadSnapshot } from '../core/model/snapshot.js';
import type { Store } from '../core/store/store.js';
import { loadHostSettings } from '../core/service/host-desired.js';
import { bindVifFact } from '../core/service/host-facts.js';
import { parseHostFact } from '../core/model/validate.js';
import { DOC_AGENT_HOST, recordAgentReport } from './hosts.js';

export interface StoreControlPlaneOptions {
  /** Server mode: only registered hosts get desired state; others are told 'removed'. */
  requireRegistration?: boolean;
  /** `ipvisor server --force`: agents may replace a copy from a store with another identity. */
  force?: boolean;
}

interface Waiter {
  host: string;
  digest?: string;
  wake(): void;
}

export class StoreControlPlane implements ControlPlane {
  private cache: { revision: number; snapshot: Snapshot } | undefined;
  private loading: Promise<{ revision: number; snapshot: Snapshot }> | undefined;
  private readonly waiters = new Set<Waiter>();
  private unwatch: (() => void) | undefined;
  private lastSeenRevision = 0;
  private identity: string | undefined;

  constructor(readonly store: Store, private readonly opts: StoreControlPlaneOptions = {}) {}

  /** Number of agents waiting in a long-poll (bench, host list). */
  get waiting(): number {
    return this.waiters.size;
  }

  private async storeIdentity(): Promise<string> {
    this.identity ??= (await this.store.identity()).id;
    return this.identity;
  }

  private async snapshotAt(): Promise<{ revision: number; snapshot: Snapshot }> {
    const revision = await this.store.currentRevision();
    if (this.cache && this.cache.revision === revision) return this.cache;
    if (!this.loading) {
      this.loading = (async () => {
        // the snapshot may include changes after `revision`: then the next revision re-reads it
        const snapshot = await loadSnapshot(this.store);
        return { revision, snapshot };
      })().finally(() => (this.loading = undefined));
    }
    const got = await this.loading;
    if (!this.cache || got.revision >= this.cache.revision) this.cache = got;
    return got;
  }

  async stateFor(host: string): Promise<DesiredState> {
    const { revision, snapshot } = await this.snapshotAt();
    const d = { host, snapshot: hostSnapshot(snapshot, host), settings: await loadHostSettings(this.store, host) };
    return { ...d, revision, digest: desiredDigest(d), storeIdentity: await this.storeIdentity(), force: this.opts.force || undefined };
  }

  private ensureWatching(): void {
    if (this.unwatch) return;
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
    for (const w of [...this.waiters]) if (hosts === 'all' || hosts.has(w.host)) w.wake();
  }

  async desiredState(host: string, q: DesiredQuery = {}): Promise<DesiredAnswer> {
    if (this.opts.requireRegistration && !(await this.store.getDoc(DOC_AGENT_HOST, host))) return { kind: 'removed' };
    let state = await this.stateFor(host);
    if (state.digest !== q.digest || !q.waitMs) return state.digest !== q.digest ? { kind: 'snapshot', state } : unchanged(state);
    this.ensureWatching();
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
      state = await this.stateFor(host);
      if (state.digest !== q.digest) return { kind: 'snapshot', state };
    }
    return unchanged(state);
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
        await this.store.insertEvent({ time: f.time, actor: f.actor, action: f.action, objectKind: 'host', objectUuid: null, objectName: host, before: null, after: { changes: f.changes } });
      } else if (f.kind === 'vif-bind') {
        await bindVifFact(this.store, { host, vmUuid: f.vmUuid, mac: f.mac, ifname: f.ifname, time: f.time });
      } else if (f.kind === 'domain') {
        // what a hook on the same host would record: VM, VIFs, taps, quarantine (facts.ts)
        const { recordDomain } = await import('../agent/libvirt/facts.js');
        const dom = { uuid: f.domain.uuid, name: f.domain.name, id: f.state === 'running' ? 0 : null, interfaces: f.domain.interfaces };
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
        const { GUEST_PUSH_DOC } = await import('../agent/guest/watcher.js');
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
  return undefined;
}

function unchanged(s: DesiredState): DesiredAnswer {
  return { kind: 'unchanged', revision: s.revision, digest: s.digest, storeIdentity: s.storeIdentity };
}

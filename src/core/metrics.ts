// The one Prometheus registry (prom-client). Every series is named ipvisor_*, with base units
// (seconds) and _total on counters, as Prometheus' naming conventions say. Counters and histograms
// are updated where things happen (service layer, host apply, reconcile loops, hooks, HTTP);
// pool utilisation and agent freshness are computed from the store at scrape time (collectFromStore),
// so they are never stale and cost nothing between scrapes.
//
// prom-client is loaded only by a process that serves /metrics (enableMetrics, called by the HTTP
// server): loading it costs a few hundred milliseconds, which a libvirt hook or a one-shot CLI call
// must not pay. Until then every update below is a no-op.
import type { Counter, Gauge, Histogram, Registry } from 'prom-client';
import type { Store } from './store/store.js';

type Labels = Record<string, string>;
interface Series {
  registry: Registry;
  counters: Map<string, Counter<string>>;
  gauges: Map<string, Gauge<string>>;
  histograms: Map<string, Histogram<string>>;
}

let series: Series | undefined;
let loading: Promise<Series> | undefined;

interface Def { name: string; help: string; labelNames: readonly string[]; buckets?: number[] }
const counterDefs: Def[] = [];
const gaugeDefs: Def[] = [];
const histogramDefs: Def[] = [];

function counter(def: Def) {
  counterDefs.push(def);
  return {
    name: def.name,
    inc(labels: Labels, by = 1): void {
      series?.counters.get(def.name)!.inc(labels, by);
    },
  };
}

function gauge(def: Def) {
  gaugeDefs.push(def);
  return {
    name: def.name,
    set(labels: Labels, value: number): void {
      series?.gauges.get(def.name)!.set(labels, value);
    },
    reset(): void {
      series?.gauges.get(def.name)!.reset();
    },
  };
}

function histogram(def: Def) {
  histogramDefs.push(def);
  return {
    name: def.name,
    observe(labels: Labels, seconds: number): void {
      series?.histograms.get(def.name)!.observe(labels, seconds);
    },
    /** Returns the function that ends the timing and observes it with the labels given then. */
    startTimer(): (labels: Labels) => void {
      const start = process.hrtime.bigint();
      return (labels) => this.observe(labels, Number(process.hrtime.bigint() - start) / 1e9);
    },
  };
}

/** Loads prom-client and creates the registry (once per process); the process' default series
 * (CPU, memory, event loop, GC) come along, prefixed ipvisor_ like the rest. */
export function enableMetrics(): Promise<Series> {
  loading ??= import('prom-client').then((mod) => {
    // CommonJS: named exports under Node's loader, only the default export in the bundle
    const prom = ('Registry' in mod ? mod : (mod as { default: typeof mod }).default) as typeof mod;
    const registry = new prom.Registry();
    prom.collectDefaultMetrics({ register: registry, prefix: 'ipvisor_' });
    // gauges named *_total break the naming conventions (promtool says so); the same figures
    // remain without the suffix (ipvisor_nodejs_active_handles, ...)
    for (const name of ['nodejs_active_handles_total', 'nodejs_active_requests_total', 'nodejs_active_resources_total']) registry.removeSingleMetric(`ipvisor_${name}`);
    const s: Series = { registry, counters: new Map(), gauges: new Map(), histograms: new Map() };
    for (const d of counterDefs) s.counters.set(d.name, new prom.Counter({ name: d.name, help: d.help, labelNames: d.labelNames, registers: [registry] }));
    for (const d of gaugeDefs) s.gauges.set(d.name, new prom.Gauge({ name: d.name, help: d.help, labelNames: d.labelNames, registers: [registry] }));
    for (const d of histogramDefs) s.histograms.set(d.name, new prom.Histogram({ name: d.name, help: d.help, labelNames: d.labelNames, buckets: d.buckets, registers: [registry] }));
    series = s;
    return s;
  });
  return loading;
}

export const allocationsTotal = counter({
  name: 'ipvisor_allocations_total',
  help: 'Addresses and prefixes allocated, by pool and kind (primary, additional, routed).',
  labelNames: ['pool', 'kind'],
});

export const allocationFailuresTotal = counter({
  name: 'ipvisor_allocation_failures_total',
  help: 'Allocations refused, by pool (empty when no pool was chosen yet) and reason (the error code).',
  labelNames: ['pool', 'reason'],
});

export const poolAddresses = gauge({
  name: 'ipvisor_pool_addresses',
  help: 'Addresses of each pool by state: used (assigned, reserved, routed or held) and free (computed at scrape time).',
  labelNames: ['network', 'pool', 'family', 'state'],
});

export const poolUtilisation = gauge({
  name: 'ipvisor_pool_utilisation_ratio',
  help: 'Used share of each pool\'s usable addresses, 0 to 1 (computed at scrape time).',
  labelNames: ['network', 'pool', 'family'],
});

export const applyDuration = histogram({
  name: 'ipvisor_apply_duration_seconds',
  help: 'Host enforcement applies (observe, diff, apply under the host lock), by scope (vif: a hook\'s fast path, full) and result.',
  labelNames: ['scope', 'result'],
  buckets: [0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30],
});

export const changesAppliedTotal = counter({
  name: 'ipvisor_changes_applied_total',
  help: 'Changes host enforcement made, by kind of object (address, route, nft-element, sysctl, ...) and operation (add, remove, change).',
  labelNames: ['kind', 'op'],
});

export const driftRepairsTotal = counter({
  name: 'ipvisor_drift_repairs_total',
  help: 'Changes made by the reconcile loop (serve, agent) to bring the host back to the desired state, by kind of object.',
  labelNames: ['kind'],
});

export const hookDuration = histogram({
  name: 'ipvisor_hook_duration_seconds',
  help: 'libvirt hook events handled in this process, by hook (network, qemu) and result.',
  labelNames: ['hook', 'result'],
  buckets: [0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10],
});

export const httpRequestDuration = histogram({
  name: 'ipvisor_http_request_duration_seconds',
  help: 'HTTP requests answered, by method, route template (never the raw URL) and status code.',
  labelNames: ['method', 'route', 'status'],
  buckets: [0.001, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10],
});

export const storeErrorsTotal = counter({
  name: 'ipvisor_store_errors_total',
  help: 'Store failures (database or file system) turned into coded errors, by code (STORE_BUSY, STORE_UNAVAILABLE, ...).',
  labelNames: ['code'],
});

export const agentLastSeen = gauge({
  name: 'ipvisor_agent_last_seen_timestamp_seconds',
  help: 'When each registered agent last reported to the control plane (Unix time; computed at scrape time).',
  labelNames: ['host'],
});

export const agentRevisionLag = gauge({
  name: 'ipvisor_agent_revision_lag',
  help: 'Store revisions each agent is behind: the store\'s current revision minus the one it last applied (computed at scrape time).',
  labelNames: ['host'],
});

/** Counts one finished host apply's changes. */
export function countChanges(changes: ReadonlyArray<{ op: '+' | '-' | '~'; kind: string }>): void {
  for (const c of changes) changesAppliedTotal.inc({ kind: c.kind, op: c.op === '+' ? 'add' : c.op === '-' ? 'remove' : 'change' });
}

/** Counts what a reconcile loop repaired. */
export function countRepairs(changes: ReadonlyArray<{ kind: string }>): void {
  for (const c of changes) driftRepairsTotal.inc({ kind: c.kind });
}

export function clearStoreGauges(): void {
  for (const g of [poolAddresses, poolUtilisation, agentLastSeen, agentRevisionLag]) g.reset();
}

/** The store-derived gauges, set afresh (series of removed pools and hosts disappear). */
export async function collectFromStore(store: Store): Promise<void> {
  if (!series) return;
  const { poolUsage } = await import('./service/pools.js');
  const { DOC_AGENT_HOST } = await import('./service/hosts.js');
  const rows = await store.transaction(async (tx) => {
    const networks = new Map((await tx.listNetworks()).map((n) => [n.uuid, n]));
    const out: Array<{ network: string; pool: string; family: string; used: number; free: number; total: number }> = [];
    for (const p of await tx.listPools()) {
      const n = networks.get(p.networkUuid);
      if (!n) continue;
      const u = await poolUsage(tx, p, n);
      const total = BigInt(u.total);
      const free = BigInt(u.free);
      // IPv6 pools exceed 2^53: gauges are doubles anyway, and the ratio is what one alerts on
      out.push({ network: n.name, pool: p.name, family: String(p.family), used: Number(total - free), free: Number(free), total: Number(total) });
    }
    return out;
  });
  poolAddresses.reset();
  poolUtilisation.reset();
  for (const r of rows) {
    poolAddresses.set({ network: r.network, pool: r.pool, family: r.family, state: 'used' }, r.used);
    poolAddresses.set({ network: r.network, pool: r.pool, family: r.family, state: 'free' }, r.free);
    poolUtilisation.set({ network: r.network, pool: r.pool, family: r.family }, r.total > 0 ? r.used / r.total : 0);
  }

  const hosts = await store.listDocs<{ name: string; lastSeen?: string; applied?: { revision: number } }>(DOC_AGENT_HOST);
  agentLastSeen.reset();
  agentRevisionLag.reset();
  if (hosts.length) {
    const current = await store.currentRevision();
    for (const { value: h } of hosts) {
      if (!h.lastSeen) continue;
      agentLastSeen.set({ host: h.name }, Date.parse(h.lastSeen) / 1000);
      if (h.applied) agentRevisionLag.set({ host: h.name }, Math.max(0, current - h.applied.revision));
    }
  }
}

/** The exposition text and its content type (text/plain; version=0.0.4). */
export async function metricsText(): Promise<{ text: string; contentType: string }> {
  const s = await enableMetrics();
  return { text: await s.registry.metrics(), contentType: s.registry.contentType };
}

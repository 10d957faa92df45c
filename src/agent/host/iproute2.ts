// Thin runner and parser for iproute2 (`ip -j` to observe, `ip -batch -` to apply), plus the
// store-free address/route/proxy-neighbour applier that the XCP-ng dom0 binder reuses. Ownership
// state (what ipvisor added, what it changed) is passed in and returned; the caller persists it.
import { IpvisorError } from '../../core/model/errors.js';
import type { Family } from '../../core/model/types.js';
import type { HostRunner } from './exec.js';

type Json = any;

export interface ObservedLink {
  name: string;
  up: boolean;
  /** The UP flag: administratively up (carrier or not). */
  adminUp: boolean;
  /** "ADDR/LEN", canonical as `ip` prints it; tentative/dadfailed excluded. */
  addresses: string[];
}

export interface ObservedRoute {
  dst: string;
  family: Family;
  dev: string | null;
  via: string | null;
  metric: number | null;
  protocol: string | null;
}

export interface ObservedProxy {
  dev: string;
  address: string;
  family: Family;
}

export async function ipJson(runner: HostRunner, args: string[]): Promise<Json[]> {
  const res = await runner.run(['ip', '-j', ...args]);
  const text = res.stdout.trim();
  return text ? (JSON.parse(text) as Json[]) : [];
}

export async function observeLinks(runner: HostRunner): Promise<Record<string, ObservedLink>> {
  const out: Record<string, ObservedLink> = {};
  for (const l of await ipJson(runner, ['addr', 'show'])) {
    const flags: string[] = l.flags ?? [];
    out[l.ifname] = {
      name: l.ifname,
      up: flags.includes('UP') && (l.operstate === 'UP' || l.operstate === 'UNKNOWN'),
      adminUp: flags.includes('UP'),
      addresses: ((l.addr_info ?? []) as Json[])
        .filter((a) => (a.family === 'inet' || a.family === 'inet6') && !a.tentative && !a.dadfailed)
        .map((a) => `${a.local}/${a.prefixlen}`),
    };
  }
  return out;
}

/** All addresses per link including tentative ones (what is configured, for diffing). */
export async function observeConfiguredAddresses(runner: HostRunner): Promise<Record<string, string[]>> {
  const out: Record<string, string[]> = {};
  for (const l of await ipJson(runner, ['addr', 'show'])) {
    out[l.ifname] = ((l.addr_info ?? []) as Json[]).filter((a) => a.family === 'inet' || a.family === 'inet6').map((a) => `${a.local}/${a.prefixlen}`);
  }
  return out;
}

function normaliseDst(dst: string, family: Family): string {
  if (dst === 'default') return 'default';
  return dst.includes('/') ? dst : `${dst}/${family === 4 ? 32 : 128}`;
}

/** Routes of the main table with the given protocol number. */
export async function observeRoutes(runner: HostRunner, proto: number): Promise<ObservedRoute[]> {
  const out: ObservedRoute[] = [];
  for (const family of [4, 6] as Family[]) {
    for (const r of await ipJson(runner, [`-${family}`, 'route', 'show', 'table', 'main', 'proto', String(proto)])) {
      out.push({
        dst: normaliseDst(r.dst, family),
        family,
        dev: r.dev ?? null,
        via: r.gateway ?? null,
        metric: r.metric ?? null,
        protocol: r.protocol ?? String(proto),
      });
    }
  }
  return out;
}

export async function observeProxyNeighbours(runner: HostRunner): Promise<ObservedProxy[]> {
  const out: ObservedProxy[] = [];
  for (const family of [4, 6] as Family[]) {
    for (const n of await ipJson(runner, [`-${family}`, 'neigh', 'show', 'proxy'])) out.push({ dev: n.dev, address: n.dst, family });
  }
  return out;
}

/** Runs `ip -batch -`; with `force`, continues after a failing line (returns its stderr). */
export async function ipBatch(runner: HostRunner, lines: string[], opts: { force?: boolean } = {}): Promise<string> {
  if (!lines.length) return '';
  const res = await runner.run(['ip', ...(opts.force ? ['-force'] : []), '-batch', '-'], { input: lines.join('\n') + '\n', allowFail: true });
  if (res.code !== 0 && !opts.force) {
    // "Command failed -:4" names a line of the batch: say which command and why
    const n = Number(/Command failed -:(\d+)/.exec(res.stderr)?.[1]);
    const why = res.stderr.split('\n').find((l) => l.trim() && !l.startsWith('Command failed'))?.trim() ?? `exit ${res.code}`;
    const what = Number.isInteger(n) && lines[n - 1] ? `ip ${lines[n - 1]}` : 'ip -batch';
    throw new IpvisorError('HOST_COMMAND', `${what}: ${why}${Number.isInteger(n) && n > 1 ? ` (the ${n - 1} change(s) before it were applied)` : ''}`, {
      details: { lines, stderr: res.stderr, applied: Number.isInteger(n) && n > 0 ? n - 1 : 0 },
    });
  }
  return res.stderr;
}

export async function readSysctl(runner: HostRunner, key: string): Promise<string | null> {
  const res = await runner.run(['sysctl', '-n', key], { allowFail: true });
  return res.code === 0 ? res.stdout.trim() : null;
}

export async function writeSysctl(runner: HostRunner, key: string, value: string): Promise<void> {
  await runner.run(['sysctl', '-q', '-w', `${key}=${value}`]);
}

// ---------------------------------------------------------------------------------------------
// The store-free applier for addresses, routes and proxy neighbours.

export interface DesiredAddress {
  dev: string;
  cidr: string;
}

export interface DesiredRoute {
  dst: string;
  family: Family;
  dev: string | null;
  via: string | null;
  metric: number | null;
}

/** What ipvisor added or changed on this host, persisted by the caller between runs. */
export interface OwnedHostState {
  /** Addresses ipvisor added (it removes only these). */
  addresses: DesiredAddress[];
  proxyNeighbours: ObservedProxy[];
  /** Sysctls ipvisor changed, with the value before, restored by teardown. */
  sysctls: Array<{ key: string; before: string }>;
  /** Addresses ipvisor narrowed (dom0 management address), restored by teardown. */
  narrowed: Array<{ dev: string; from: string; to: string }>;
}

export function emptyOwnedState(): OwnedHostState {
  return { addresses: [], proxyNeighbours: [], sysctls: [], narrowed: [] };
}

/**
 * Everything either state owns. Persisted before a batch runs: `ip -batch` stops at the first
 * failing line, and what it added before that must stay ipvisor's (else teardown leaves it behind).
 */
export function mergeOwnedStates(a: OwnedHostState, b: OwnedHostState): OwnedHostState {
  const union = <T>(x: T[], y: T[], key: (v: T) => string): T[] => {
    const seen = new Set(x.map(key));
    return [...x, ...y.filter((v) => !seen.has(key(v)))];
  };
  return {
    addresses: union(a.addresses, b.addresses, (v) => `${v.dev}|${v.cidr}`),
    proxyNeighbours: union(a.proxyNeighbours, b.proxyNeighbours, (v) => `${v.family}|${v.dev}|${v.address}`),
    sysctls: union(a.sysctls, b.sysctls, (v) => v.key),
    narrowed: union(a.narrowed, b.narrowed, (v) => `${v.dev}|${v.from}`),
  };
}

export interface L3Change {
  op: '+' | '-' | '~';
  kind: 'address' | 'route' | 'proxy-neighbour' | 'sysctl' | 'narrow';
  target: string;
  detail?: string;
}

export interface DesiredL3 {
  addresses: DesiredAddress[];
  routes: DesiredRoute[];
  proxyNeighbours: ObservedProxy[];
  sysctls: Array<{ key: string; value: string }>;
  narrowings: Array<{ dev: string; from: string; to: string }>;
}

/** A desired route is present when the observed one agrees on everything the desired one says. */
function routeMatches(want: DesiredRoute, have: ObservedRoute): boolean {
  return (
    want.family === have.family &&
    want.dst === have.dst &&
    (want.dev === null || want.dev === have.dev) &&
    (want.via ?? null) === (have.via ?? null) &&
    (want.metric === null || want.metric === (have.metric ?? 0))
  );
}

function routeText(r: DesiredRoute): string {
  return `${r.dst}${r.via ? ` via ${r.via}` : ''}${r.dev ? ` dev ${r.dev}` : ''}${r.metric !== null ? ` metric ${r.metric}` : ''}`;
}

function routeArgs(r: DesiredRoute, proto: number): string {
  return `route %OP% ${r.dst}${r.via ? ` via ${r.via}` : ''}${r.dev ? ` dev ${r.dev}` : ''} proto ${proto}${r.metric !== null ? ` metric ${r.metric}` : ''}`;
}

export interface L3Diff {
  changes: L3Change[];
  batch: string[];
  sysctlWrites: Array<{ key: string; value: string; before: string | null }>;
  owned: OwnedHostState;
  /** Things left alone on purpose (a route of the same destination that is not ipvisor's). */
  warnings: string[];
}

/**
 * Diffs desired against observed L3 state. Pure apart from reading sysctls, so `plan` uses it too.
 * Removes only what `owned` says ipvisor added, and routes tagged with its protocol number.
 */
export async function diffL3(runner: HostRunner, desired: DesiredL3, ownedIn: OwnedHostState, proto: number): Promise<L3Diff> {
  const owned: OwnedHostState = JSON.parse(JSON.stringify(ownedIn));
  const changes: L3Change[] = [];
  const warnings: string[] = [];
  const batch: string[] = [];
  const configured = await observeConfiguredAddresses(runner);

  // Narrowing first: it replaces an address the user owns (recorded for teardown).
  for (const n of desired.narrowings) {
    if (!(configured[n.dev] ?? []).includes(n.from)) continue;
    changes.push({ op: '~', kind: 'narrow', target: `${n.from} dev ${n.dev}`, detail: `to ${n.to}` });
    batch.push(`addr del ${n.from} dev ${n.dev}`, `addr replace ${n.to} dev ${n.dev}`);
    if (!owned.narrowed.some((x) => x.dev === n.dev && x.from === n.from)) owned.narrowed.push(n);
    configured[n.dev] = [...(configured[n.dev] ?? []).filter((c) => c !== n.from), n.to];
  }

  const wantAddr = new Set(desired.addresses.map((a) => `${a.dev}|${a.cidr}`));
  for (const a of desired.addresses) {
    const present = (configured[a.dev] ?? []).includes(a.cidr);
    const isOwned = owned.addresses.some((o) => o.dev === a.dev && o.cidr === a.cidr);
    if (!present) {
      changes.push({ op: '+', kind: 'address', target: `${a.cidr} dev ${a.dev}` });
      batch.push(`addr add ${a.cidr} dev ${a.dev}`);
      if (!isOwned) owned.addresses.push(a);
    }
    // an address that was already there (libvirt's gateway, the user's) stays theirs
  }
  owned.addresses = owned.addresses.filter((o) => {
    if (wantAddr.has(`${o.dev}|${o.cidr}`)) return true;
    if ((configured[o.dev] ?? []).includes(o.cidr)) {
      changes.push({ op: '-', kind: 'address', target: `${o.cidr} dev ${o.dev}` });
      batch.push(`addr del ${o.cidr} dev ${o.dev}`);
    }
    return false;
  });

  const presentRoutes = await observeRoutes(runner, proto);
  // route removals go first in the batch: removing a device's last IPv4 address above takes the
  // kernel's routes through it along, and a later `route del` of one would fail the batch
  const routeDels: string[] = [];
  for (const r of presentRoutes) {
    if (desired.routes.some((d) => routeMatches(d, r))) continue;
    changes.push({ op: '-', kind: 'route', target: routeText(r), detail: `proto ${proto}` });
    routeDels.push(routeArgs(r, proto).replace('%OP%', 'del'));
  }
  batch.unshift(...routeDels);
  const missing = desired.routes.filter((r) => !presentRoutes.some((p) => routeMatches(r, p)));
  const foreign = missing.length ? await observeForeignRoutes(runner, presentRoutes, new Set(missing.map((r) => r.family))) : [];
  for (const r of missing) {
    // `route replace` would overwrite a route of the same destination and metric that is not ours
    const clash = foreign.find((f) => f.family === r.family && f.dst === r.dst && effectiveMetric(f) === effectiveMetric(r));
    if (clash) {
      warnings.push(`route ${routeText(r)}: this host already has ${routeText(clash)}${clash.protocol ? ` (proto ${clash.protocol})` : ''}, not ipvisor's; left alone`);
      continue;
    }
    changes.push({ op: '+', kind: 'route', target: routeText(r), detail: `proto ${proto}` });
    batch.push(routeArgs(r, proto).replace('%OP%', r.dst === 'default' ? 'add' : 'replace'));
  }

  const presentProxy = await observeProxyNeighbours(runner);
  const pKey = (p: ObservedProxy) => `${p.family}|${p.dev}|${p.address}`;
  const presentProxyKeys = new Set(presentProxy.map(pKey));
  const wantProxyKeys = new Set(desired.proxyNeighbours.map(pKey));
  for (const p of desired.proxyNeighbours) {
    if (!presentProxyKeys.has(pKey(p))) {
      changes.push({ op: '+', kind: 'proxy-neighbour', target: `${p.address} dev ${p.dev}` });
      batch.push(`neigh replace proxy ${p.address} dev ${p.dev}`);
      if (!owned.proxyNeighbours.some((o) => pKey(o) === pKey(p))) owned.proxyNeighbours.push(p);
    }
    // one that was already there (the user's) stays theirs: teardown leaves it
  }
  owned.proxyNeighbours = owned.proxyNeighbours.filter((o) => {
    if (wantProxyKeys.has(pKey(o))) return true;
    if (presentProxyKeys.has(pKey(o))) {
      changes.push({ op: '-', kind: 'proxy-neighbour', target: `${o.address} dev ${o.dev}` });
      batch.push(`neigh del proxy ${o.address} dev ${o.dev}`);
    }
    return false;
  });

  const sysctlWrites: L3Diff['sysctlWrites'] = [];
  for (const s of desired.sysctls) {
    const before = await readSysctl(runner, s.key);
    if (before === null || before === s.value) continue;
    changes.push({ op: '~', kind: 'sysctl', target: s.key, detail: `${before} -> ${s.value}` });
    sysctlWrites.push({ ...s, before });
    if (!owned.sysctls.some((o) => o.key === s.key)) owned.sysctls.push({ key: s.key, before });
  }
  return { changes, batch, sysctlWrites, owned, warnings };
}

/** The kernel's metric for a route without one: 0 (IPv4), 1024 (IPv6). Same dst + metric = same route. */
function effectiveMetric(r: { family: Family; metric: number | null }): number {
  return r.metric ?? (r.family === 4 ? 0 : 1024);
}

/** Main-table routes of the given families that are not ipvisor's (`ours`: its proto's routes). */
async function observeForeignRoutes(runner: HostRunner, ours: ObservedRoute[], families: Set<Family>): Promise<ObservedRoute[]> {
  const out: ObservedRoute[] = [];
  for (const family of families) {
    for (const r of await ipJson(runner, [`-${family}`, 'route', 'show', 'table', 'main'])) {
      const route: ObservedRoute = { dst: normaliseDst(r.dst, family), family, dev: r.dev ?? null, via: r.gateway ?? null, metric: r.metric ?? null, protocol: r.protocol ?? null };
      if (ours.some((o) => o.family === family && o.dst === route.dst && o.dev === route.dev && o.via === route.via && effectiveMetric(o) === effectiveMetric(route))) continue;
      out.push(route);
    }
  }
  return out;
}

/**
 * Runs `fn` with `promote_secondaries` on for every device the batch deletes an IPv4 address from,
 * then restores it. Without it the kernel deletes every secondary address of the same subnet along
 * with a primary one: removing ipvisor's gateway would take the user's addresses with it.
 */
export async function withPromotedSecondaries<T>(runner: HostRunner, batch: string[], fn: () => Promise<T>): Promise<T> {
  const devs = new Set<string>();
  for (const line of batch) {
    const m = /^addr del \d+\.\d+\.\d+\.\d+\/\d+ dev (\S+)$/.exec(line);
    if (m) devs.add(m[1]);
  }
  // slash form: interface names may contain dots (eth0.100)
  const restore: string[] = [];
  for (const dev of devs) {
    const key = `net/ipv4/conf/${dev}/promote_secondaries`;
    if ((await readSysctl(runner, key)) === '0') {
      await writeSysctl(runner, key, '1');
      restore.push(key);
    }
  }
  try {
    return await fn();
  } finally {
    for (const key of restore) await writeSysctl(runner, key, '0').catch(() => undefined);
  }
}

/** The `ip -batch` line that undoes one ipvisor writes (null: none needed). */
export function inverseBatchLine(line: string): string | null {
  const m = /^(addr|route|neigh) (add|replace|del) (.*)$/.exec(line);
  if (!m) return null;
  const [, obj, op, rest] = m;
  return `${obj} ${op === 'del' ? 'add' : 'del'} ${rest}`;
}

/** Undoes batch lines that were applied, last first; best effort (ip -force). */
async function revertBatch(runner: HostRunner, lines: string[]): Promise<void> {
  const inverse = lines.map(inverseBatchLine).filter((l): l is string => !!l).reverse();
  if (inverse.length) await withPromotedSecondaries(runner, inverse, () => ipBatch(runner, inverse, { force: true }));
}

/**
 * applyL3Diff with its undo (DESIGN.md: every multi-step change carries its undo list). On
 * failure what it did itself is undone (the sysctls it wrote, the batch lines before the failing
 * one) before it throws; on success it returns the function that undoes all of it.
 */
export async function applyL3DiffUndoable(runner: HostRunner, diff: L3Diff): Promise<() => Promise<void>> {
  const done: Array<() => Promise<void>> = [];
  const undoAll = async () => {
    const errors: string[] = [];
    for (const u of [...done].reverse()) await u().catch((e: Error) => errors.push(e.message));
    if (errors.length) throw new IpvisorError('HOST_COMMAND', `undo of addresses/routes failed: ${errors.join('; ')}`);
  };
  try {
    for (const s of diff.sysctlWrites) {
      await writeSysctl(runner, s.key, s.value);
      if (s.before !== null) done.push(() => writeSysctl(runner, s.key, s.before!));
    }
    try {
      await withPromotedSecondaries(runner, diff.batch, () => ipBatch(runner, diff.batch));
      done.push(() => revertBatch(runner, diff.batch));
    } catch (err) {
      const applied = Number((err as IpvisorError).details && ((err as IpvisorError).details as { applied?: number }).applied) || 0;
      done.push(() => revertBatch(runner, diff.batch.slice(0, applied)));
      throw err;
    }
  } catch (err) {
    await undoAll().catch(() => undefined);
    throw err;
  }
  return undoAll;
}

/** Applies a diff: sysctls first (forwarding before routes), then one `ip -batch`. */
export async function applyL3Diff(runner: HostRunner, diff: L3Diff): Promise<void> {
  for (const s of diff.sysctlWrites) await writeSysctl(runner, s.key, s.value);
  await withPromotedSecondaries(runner, diff.batch, () => ipBatch(runner, diff.batch));
}

/**
 * The dom0 binder's entry point: observe, diff and apply addresses, routes and proxy neighbours
 * in one go. Returns the changes made and the new ownership state to persist.
 */
export async function applyAddressesAndRoutes(
  runner: HostRunner,
  desired: DesiredL3,
  owned: OwnedHostState,
  opts: { proto: number; dryRun?: boolean },
): Promise<{ changes: L3Change[]; owned: OwnedHostState }> {
  const diff = await diffL3(runner, desired, owned, opts.proto);
  if (!opts.dryRun) await applyL3Diff(runner, diff);
  return { changes: diff.changes, owned: opts.dryRun ? owned : diff.owned };
}

/** Undoes everything recorded in `owned`: added addresses, proxies, routes of `proto`, sysctls, narrowings. */
export async function revertL3(runner: HostRunner, owned: OwnedHostState, opts: { proto: number; dryRun?: boolean }): Promise<L3Change[]> {
  const changes: L3Change[] = [];
  const batch: string[] = [];
  const configured = await observeConfiguredAddresses(runner);
  for (const r of await observeRoutes(runner, opts.proto)) {
    changes.push({ op: '-', kind: 'route', target: routeText(r), detail: `proto ${opts.proto}` });
    batch.push(routeArgs(r, opts.proto).replace('%OP%', 'del'));
  }
  const presentProxy = await observeProxyNeighbours(runner);
  for (const p of owned.proxyNeighbours) {
    if (!presentProxy.some((x) => x.dev === p.dev && x.address === p.address)) continue;
    changes.push({ op: '-', kind: 'proxy-neighbour', target: `${p.address} dev ${p.dev}` });
    batch.push(`neigh del proxy ${p.address} dev ${p.dev}`);
  }
  for (const a of owned.addresses) {
    if (!(configured[a.dev] ?? []).includes(a.cidr)) continue;
    changes.push({ op: '-', kind: 'address', target: `${a.cidr} dev ${a.dev}` });
    batch.push(`addr del ${a.cidr} dev ${a.dev}`);
  }
  for (const n of owned.narrowed) {
    if (!configured[n.dev]) continue;
    changes.push({ op: '~', kind: 'narrow', target: `${n.to} dev ${n.dev}`, detail: `restored to ${n.from}` });
    if ((configured[n.dev] ?? []).includes(n.to)) batch.push(`addr del ${n.to} dev ${n.dev}`);
    batch.push(`addr replace ${n.from} dev ${n.dev}`);
  }
  for (const s of owned.sysctls) changes.push({ op: '~', kind: 'sysctl', target: s.key, detail: `restored to ${s.before}` });
  if (!opts.dryRun) {
    await withPromotedSecondaries(runner, batch, () => ipBatch(runner, batch, { force: true }));
    for (const s of owned.sysctls) await writeSysctl(runner, s.key, s.before).catch(() => undefined);
  }
  return changes;
}

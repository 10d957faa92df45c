// Tenants (a VM's owner), the pools each may use and its quotas. Records live in the store's
// document table (kind 'tenant'), so every store backend has them without a table of its own.
// The quota is checked inside the allocation's own write transaction (ip.ts calls enforceTenantQuota).
import { IpvisorError, invalid, notFound } from '../model/errors.js';
import type { Family, Pool, Vm } from '../model/types.js';
import { validateInt, validateName } from '../model/validate.js';
import type { Store, StoreTx, UsageCount } from '../store/store.js';
import { audit, checkVersion, newUuid, now } from './context.js';
import { poolRef } from './resolve.js';

export const DOC_TENANT = 'tenant';
/** A row every allocation for a tenant writes first: on backends without a global write lock
 * (PostgreSQL) it serialises the tenant's allocations, so the quota count cannot race. */
const DOC_TENANT_LOCK = 'tenant-lock';

export interface TenantQuota {
  /** Pool UUID -> most assignments the tenant may hold in it. */
  pools: Record<string, number>;
  family4: number | null;
  family6: number | null;
  /** The shortest routed prefix length the tenant may take (29 allows /29 .. /32). */
  routedPrefix: number | null;
}

export interface Tenant {
  uuid: string;
  name: string;
  /** UUIDs of the pools the tenant may see and allocate from. */
  pools: string[];
  quota: TenantQuota;
  createdAt: string;
  updatedAt: string;
}

/** Who is asking: null tenant = no restriction (admin, operator, auditor, CLI). */
export interface Scope {
  tenant: string | null;
}

export const UNSCOPED: Scope = { tenant: null };

export interface TenantInput {
  name?: string;
  /** Pool names or UUIDs. */
  pools?: string[];
  /** "POOL=N", "family4=N", "family6=N", "routed-prefix=LEN". */
  quota?: string[];
  ifMatch?: string;
}

const emptyQuota = (): TenantQuota => ({ pools: {}, family4: null, family6: null, routedPrefix: null });

async function parseQuota(tx: StoreTx, entries: string[], base: TenantQuota): Promise<TenantQuota> {
  const q: TenantQuota = { ...base, pools: { ...base.pools } };
  for (const text of entries) {
    const m = /^([^=]+)=(.*)$/.exec(text.trim());
    if (!m) throw invalid('quota', `'${text}' is not KEY=VALUE (POOL=N, family4=N, family6=N, routed-prefix=LEN)`);
    const key = m[1].trim();
    const raw = m[2].trim();
    // An empty value removes the quota ("family4=").
    if (key === 'family4' || key === 'family6') q[key] = raw === '' ? null : validateInt(raw, 'quota', 0, 1_000_000_000);
    else if (key === 'routed-prefix') q.routedPrefix = raw === '' ? null : validateInt(raw, 'quota', 0, 128);
    else {
      const pool = await poolRef(tx, key, 'quota');
      if (raw === '') delete q.pools[pool.uuid];
      else q.pools[pool.uuid] = validateInt(raw, 'quota', 0, 1_000_000_000);
    }
  }
  return q;
}

export async function findTenant(tx: StoreTx, ref: string): Promise<Tenant | undefined> {
  const byName = await tx.getDoc<Tenant>(DOC_TENANT, ref);
  if (byName) return byName.value;
  return (await tx.listDocs<Tenant>(DOC_TENANT)).map((d) => d.value).find((t) => t.uuid === ref.toLowerCase());
}

export async function tenantRef(tx: StoreTx, ref: string, field = 'tenant'): Promise<Tenant> {
  const t = await findTenant(tx, ref);
  if (!t) throw notFound('tenant', ref, field);
  return t;
}

export async function listTenants(tx: StoreTx): Promise<Tenant[]> {
  return (await tx.listDocs<Tenant>(DOC_TENANT)).map((d) => d.value);
}

export async function createTenant(store: Store, input: TenantInput, actor: string): Promise<Tenant> {
  const name = validateName(input.name ?? '', 'name');
  return store.transaction(async (tx) => {
    if (await tx.getDoc(DOC_TENANT, name)) throw new IpvisorError('ALREADY_EXISTS', `name: a tenant named '${name}' already exists`, { field: 'name' });
    const pools = await Promise.all((input.pools ?? []).map(async (p) => (await poolRef(tx, p, 'pools')).uuid));
    const t = now();
    const tenant: Tenant = { uuid: newUuid(), name, pools: [...new Set(pools)], quota: await parseQuota(tx, input.quota ?? [], emptyQuota()), createdAt: t, updatedAt: t };
    await tx.putDoc(DOC_TENANT, name, tenant);
    await audit(tx, { actor, action: 'create', kind: 'tenant', uuid: tenant.uuid, name, after: tenant });
    return tenant;
  }, { write: true });
}

/** Replaces the pool list when `pools` is given; quota entries change one key each. */
export async function setTenant(store: Store, ref: string, input: TenantInput, actor: string): Promise<Tenant> {
  return store.transaction(async (tx) => {
    const before = await tenantRef(tx, ref);
    checkVersion(before, input.ifMatch, 'tenant');
    const pools = input.pools !== undefined ? [...new Set(await Promise.all(input.pools.map(async (p) => (await poolRef(tx, p, 'pools')).uuid)))] : before.pools;
    const after: Tenant = { ...before, pools, quota: await parseQuota(tx, input.quota ?? [], before.quota), updatedAt: now() };
    await tx.putDoc(DOC_TENANT, before.name, after);
    await audit(tx, { actor, action: 'set', kind: 'tenant', uuid: after.uuid, name: after.name, before, after });
    return after;
  }, { write: true });
}

/** Refused while the tenant owns VMs, unless forced: then the VMs belong to no tenant. */
export async function deleteTenant(store: Store, ref: string, opts: { force?: boolean; ifMatch?: string }, actor: string): Promise<{ tenant: Tenant; disowned: string[] }> {
  return store.transaction(async (tx) => {
    const tenant = await tenantRef(tx, ref);
    checkVersion(tenant, opts.ifMatch, 'tenant');
    const owned = (await tx.listVms()).filter((v) => v.owner === tenant.name);
    if (owned.length && !opts.force) {
      throw new IpvisorError('IN_USE', `tenant: '${tenant.name}' still owns ${owned.length} VM(s) (${owned.slice(0, 5).map((v) => v.name).join(', ')}${owned.length > 5 ? ', ...' : ''}); use --force to leave them without owner`, { field: 'tenant' });
    }
    for (const vm of owned) {
      const after: Vm = { ...vm, owner: null, updatedAt: now() };
      await tx.updateVm(after);
      await audit(tx, { actor, action: 'set', kind: 'vm', uuid: vm.uuid, name: vm.name, before: vm, after });
    }
    await tx.deleteDoc(DOC_TENANT, tenant.name);
    await tx.deleteDoc(DOC_TENANT_LOCK, tenant.name);
    await audit(tx, { actor, action: 'delete', kind: 'tenant', uuid: tenant.uuid, name: tenant.name, before: tenant });
    return { tenant, disowned: owned.map((v) => v.name) };
  }, { write: true });
}

// ---- what a tenant may see -------------------------------------------------------------------

/** UUIDs of the VMs a scope may see; undefined = all. */
export async function visibleVmUuids(tx: StoreTx, scope: Scope): Promise<Set<string> | undefined> {
  if (scope.tenant === null) return undefined;
  return new Set((await tx.listVms()).filter((v) => v.owner === scope.tenant).map((v) => v.uuid));
}

/** UUIDs of the VIFs a scope may see; undefined = all. */
export async function visibleVifUuids(tx: StoreTx, scope: Scope): Promise<Set<string> | undefined> {
  const vms = await visibleVmUuids(tx, scope);
  if (!vms) return undefined;
  return new Set((await tx.listVifs()).filter((v) => vms.has(v.vmUuid)).map((v) => v.uuid));
}

/** UUIDs of the pools a scope may see; undefined = all. A tenant that vanished sees none. */
export async function visiblePoolUuids(tx: StoreTx, scope: Scope): Promise<Set<string> | undefined> {
  if (scope.tenant === null) return undefined;
  const t = await findTenant(tx, scope.tenant);
  return new Set(t?.pools ?? []);
}

export interface TenantUsage {
  pools: Array<{ pool: string; poolUuid: string; used: number; quota: number | null }>;
  family4: { used: number; quota: number | null };
  family6: { used: number; quota: number | null };
  routedPrefix: number | null;
}

/** What a tenant holds, counted in SQL (UsageStore.countOwnerUsage: the assignments of the VIFs of
 * the VMs it owns, nobody else's), never a listing of its assignments. */
async function tenantCounts(tx: StoreTx, tenant: string): Promise<(f: (c: UsageCount) => boolean) => number> {
  const counts = await tx.countOwnerUsage(tenant);
  return (f) => counts.reduce((s, c) => s + (f(c) ? c.count : 0), 0);
}

/** The tenant's usage against its quota: one assignment (an address or a routed prefix) counts one. */
export async function tenantUsage(tx: StoreTx, tenant: Tenant): Promise<TenantUsage> {
  const count = await tenantCounts(tx, tenant.name);
  const pools = await tx.listPools();
  const poolIds = [...new Set([...tenant.pools, ...Object.keys(tenant.quota.pools)])];
  return {
    pools: poolIds.map((id) => ({ pool: pools.find((p) => p.uuid === id)?.name ?? id, poolUuid: id, used: count((a) => a.poolUuid === id), quota: tenant.quota.pools[id] ?? null })),
    family4: { used: count((a) => a.family === 4), quota: tenant.quota.family4 },
    family6: { used: count((a) => a.family === 6), quota: tenant.quota.family6 },
    routedPrefix: tenant.quota.routedPrefix,
  };
}

/**
 * Called by allocate() inside its write transaction, after the pool and prefix length are chosen:
 * a VM owned by a tenant may not take the tenant past its quota, and a tenant-scoped request may
 * only use the tenant's pools. Quotas bind whoever allocates (the quota is what the tenant holds).
 */
export async function enforceTenantQuota(tx: StoreTx, vm: Vm, pool: Pool, prefixLength: number, scope: Scope, poolNamed: string | undefined): Promise<void> {
  if (scope.tenant !== null) {
    const allowed = await visiblePoolUuids(tx, scope);
    if (!allowed!.has(pool.uuid)) {
      // A pool the tenant may not see answers like a missing one; an automatic choice says why.
      if (poolNamed !== undefined) throw notFound('pool', poolNamed, 'pool');
      throw new IpvisorError('QUOTA_EXCEEDED', `pool: the network's IPv${pool.family} ${pool.purpose} pool is not open to tenant '${scope.tenant}'`, { field: 'pool' });
    }
  }
  if (!vm.owner) return;
  const tenant = await findTenant(tx, vm.owner);
  if (!tenant) return;
  await tx.putDoc(DOC_TENANT_LOCK, tenant.name, { at: now() });
  const q = tenant.quota;
  const family: Family = pool.family;
  const max = family === 4 ? 32 : 128;
  if (prefixLength < max && q.routedPrefix !== null && prefixLength < q.routedPrefix) {
    throw new IpvisorError('QUOTA_EXCEEDED', `prefix-length: tenant '${tenant.name}' may take routed prefixes up to /${q.routedPrefix}, not /${prefixLength}`, { field: 'prefix-length' });
  }
  const poolQuota = q.pools[pool.uuid];
  const familyQuota = family === 4 ? q.family4 : q.family6;
  if (poolQuota === undefined && familyQuota === null) return;
  const count = await tenantCounts(tx, tenant.name);
  if (poolQuota !== undefined && count((a) => a.poolUuid === pool.uuid) + 1 > poolQuota) {
    throw new IpvisorError('QUOTA_EXCEEDED', `pool: tenant '${tenant.name}' holds its quota of ${poolQuota} in pool '${pool.name}'`, { field: 'pool' });
  }
  if (familyQuota !== null && count((a) => a.family === family) + 1 > familyQuota) {
    throw new IpvisorError('QUOTA_EXCEEDED', `family: tenant '${tenant.name}' holds its quota of ${familyQuota} IPv${family} assignment(s)`, { field: 'family' });
  }
}

/** A VM's owner must name an existing tenant. */
export async function checkOwner(tx: StoreTx, owner: string | null): Promise<void> {
  if (owner && !(await findTenant(tx, owner))) throw notFound('tenant', owner, 'owner');
}


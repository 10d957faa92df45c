// XAPI -> store. XAPI is the truth for which networks, VMs and VIFs exist; ipvisor is the truth for
// the addresses they hold. compileInventory is pure (cache -> what the store should contain);
// applyInventory writes the difference through the service functions (validated, audit-logged,
// actor 'sync'), so a VM or VIF deleted in XAPI releases its addresses like any other delete.
import { IpvisorError } from '../../core/model/errors.js';
import type { LockingMode, Network, NetworkMode, Vif, Vm } from '../../core/model/types.js';
import type { Store } from '../../core/store/store.js';
import { hypervisorName } from '../../core/model/validate.js';
import { createNetwork, updateNetworkFacts, deleteNetwork } from '../../core/service/networks.js';
import { addVif, createVm, deleteVif, deleteVm, setVif, setVm } from '../../core/service/vms.js';
import { XapiError, type XapiClient } from './client.js';
import { XapiCache, isGuestVm, xint, type CacheChange, type XClass } from './cache.js';
import type { XapiConnection } from './connections.js';

export const SYNC_ACTOR = 'sync';
/** What the sync and the enforcer read; PIF/PBD/SR are only the dom0 binder's business. */
export const POOL_CLASSES: readonly XClass[] = ['pool', 'host', 'VM', 'VM_guest_metrics', 'VIF', 'network'];

export interface InventoryNetwork {
  uuid: string;
  nameLabel: string;
  bridge: string | null;
  mode: NetworkMode;
  defaultLocking: LockingMode;
  ref: string;
}

export interface InventoryVm {
  uuid: string;
  nameLabel: string;
  powerState: string;
  residentOn: string | null;
  ref: string;
}

export interface InventoryVif {
  uuid: string;
  vmUuid: string;
  networkUuid: string;
  device: number;
  mac: string;
  /** vif<domid>.<device> while the VM runs and the VIF is plugged. */
  ifname: string | null;
  ref: string;
}

export interface Inventory {
  poolUuid: string | null;
  networks: InventoryNetwork[];
  vms: InventoryVm[];
  vifs: InventoryVif[];
}

/** Pure: the cache of one pool -> its networks, guest VMs and their VIFs. */
export function compileInventory(cache: XapiCache): Inventory {
  const networks: InventoryNetwork[] = [];
  const netUuidByRef = new Map<string, string>();
  for (const [ref, n] of cache.all('network')) {
    if (typeof n.uuid !== 'string') continue;
    // The host-internal management network is XAPI's own plumbing, not a VM network.
    if (n.other_config?.is_host_internal_management_network === 'true') continue;
    netUuidByRef.set(ref, n.uuid);
    networks.push({
      uuid: n.uuid,
      nameLabel: String(n.name_label || n.bridge || n.uuid),
      bridge: typeof n.bridge === 'string' && n.bridge !== '' ? n.bridge : null,
      mode: Array.isArray(n.PIFs) && n.PIFs.length > 0 ? 'bridged' : 'isolated',
      defaultLocking: n.default_locking_mode === 'disabled' ? 'disabled' : 'unlocked',
      ref,
    });
  }
  const vms: InventoryVm[] = [];
  const vmByRef = new Map<string, { uuid: string; domid: number; running: boolean }>();
  for (const [ref, vm] of cache.all('VM')) {
    if (!isGuestVm(vm) || typeof vm.uuid !== 'string') continue;
    const host = cache.get('host', vm.resident_on);
    vms.push({ uuid: vm.uuid, nameLabel: String(vm.name_label || vm.uuid), powerState: String(vm.power_state ?? 'Halted'), residentOn: host ? String(host.name_label) : null, ref });
    vmByRef.set(ref, { uuid: vm.uuid, domid: xint(vm.domid), running: vm.power_state === 'Running' });
  }
  const vifs: InventoryVif[] = [];
  for (const [ref, v] of cache.all('VIF')) {
    const vm = vmByRef.get(v.VM);
    const net = netUuidByRef.get(v.network);
    if (!vm || !net || typeof v.uuid !== 'string' || typeof v.MAC !== 'string') continue;
    const device = xint(v.device);
    if (device < 0) continue;
    vifs.push({
      uuid: v.uuid,
      vmUuid: vm.uuid,
      networkUuid: net,
      device,
      mac: v.MAC.toLowerCase(),
      ifname: vm.running && v.currently_attached === true && vm.domid >= 0 ? `vif${vm.domid}.${device}` : null,
      ref,
    });
  }
  const pool = cache.pool;
  return { poolUuid: pool ? String(pool[1].uuid) : null, networks, vms, vifs };
}

export interface SyncReport {
  connection: string;
  created: string[];
  updated: string[];
  deleted: string[];
  released: string[];
  errors: string[];
}

interface XapiExtra {
  connection: string;
  uuid?: string;
  ref?: string;
  pool?: string | null;
  bridge?: string | null;
  powerState?: string;
  residentOn?: string | null;
  gone?: boolean;
}

export function xapiExtra(o: { extra: Record<string, unknown> }): XapiExtra | undefined {
  const x = o.extra?.xapi;
  return x && typeof x === 'object' && typeof (x as XapiExtra).connection === 'string' ? (x as XapiExtra) : undefined;
}

/** A free name: the XAPI name when it passes the CLI's rules for new names, else one derived from
 * the UUID (vm-<uuid>, net-<uuid>: the XAPI name is kept as an escaped label); with a stable suffix
 * (the UUID's first 8 hex digits) when taken. An invalid name never keeps an object out of the store. */
async function chooseName(label: string, uuid: string, kind: 'vm' | 'network', taken: (name: string) => Promise<boolean>): Promise<string> {
  const base = hypervisorName(label, uuid, kind).name;
  if (!(await taken(base))) return base;
  const suffixed = `${base.slice(0, 118)}~${uuid.slice(0, 8)}`;
  return (await taken(suffixed)) ? `${base.slice(0, 90)}~${uuid}` : suffixed;
}

/** The XAPI name as recorded beside a derived one (escaped); undefined when the name is used as is. */
function nameLabelExtra(label: string, uuid: string, kind: 'vm' | 'network'): { hypervisorName?: string } {
  const h = hypervisorName(label, uuid, kind);
  return h.label === null ? {} : { hypervisorName: h.label };
}

const sameJson = (a: unknown, b: unknown): boolean => JSON.stringify(a) === JSON.stringify(b);

/** Which objects a batch of events touched (UUIDs); `applyInventory` then looks at those only. */
export interface InventoryScope {
  networks: Set<string>;
  vms: Set<string>;
  vifs: Set<string>;
}

/** Writes the difference between the inventory and the store. Errors on one object are reported
 * and do not stop the others. With a scope, only the objects it names are compared (event batches);
 * without, everything this connection created is (full sync). */
export async function applyInventory(store: Store, conn: XapiConnection, inv: Inventory, actor = SYNC_ACTOR, scope?: InventoryScope): Promise<SyncReport> {
  const report: SyncReport = { connection: conn.name, created: [], updated: [], deleted: [], released: [], errors: [] };
  const attempt = async (what: string, fn: () => Promise<void>): Promise<void> => {
    try {
      await fn();
    } catch (err) {
      report.errors.push(`${what}: ${(err as Error).message}`);
    }
  };
  const mine = (o: { extra: Record<string, unknown> }): boolean => xapiExtra(o)?.connection === conn.name;
  const inScope = (set: keyof InventoryScope, uuid: string): boolean => !scope || scope[set].has(uuid);

  // Store lookups: everything prefetched for a full sync, one row at a time for an event batch.
  const vmRows = new Map<string, Vm | undefined>();
  const vifRows = new Map<string, Vif | undefined>();
  const vmNames = new Set<string>();
  if (!scope) {
    for (const v of await store.listVms()) (vmRows.set(v.uuid, v), vmNames.add(v.name));
    for (const v of await store.listVifs()) vifRows.set(v.uuid, v);
  }
  const getVmRow = async (uuid: string): Promise<Vm | undefined> => {
    if (!vmRows.has(uuid)) vmRows.set(uuid, await store.getVm(uuid));
    return vmRows.get(uuid);
  };
  const getVifRow = async (uuid: string): Promise<Vif | undefined> => {
    if (!vifRows.has(uuid)) vifRows.set(uuid, await store.getVif(uuid));
    return vifRows.get(uuid);
  };
  const vmNameTaken = async (name: string): Promise<boolean> => vmNames.has(name) || (!!scope && !!(await store.findVmByName(name)));
  const vmNameOf = (uuid: string): string => vmRows.get(uuid)?.name ?? uuid;

  // Deletions first (only objects this connection created, gone from XAPI), so a device number or
  // name freed in the same batch can be taken by a new object.
  const invVifs = new Set(inv.vifs.map((v) => v.uuid));
  const invVms = new Set(inv.vms.map((v) => v.uuid));
  const candidates = async <T>(set: 'vifs' | 'vms', list: () => Promise<T[]>, get: (uuid: string) => Promise<T | undefined>): Promise<T[]> =>
    scope ? ((await Promise.all([...scope[set]].map(get))).filter(Boolean) as T[]) : list();
  for (const vif of await candidates('vifs', () => store.listVifs(), getVifRow)) {
    if (!mine(vif) || invVifs.has(vif.uuid)) continue;
    await getVmRow(vif.vmUuid);
    await attempt(`vif ${vmNameOf(vif.vmUuid)}:${vif.device}`, async () => {
      const res = await deleteVif(store, vif.uuid, actor);
      report.released.push(...res.released);
      report.deleted.push(`vif ${vmNameOf(vif.vmUuid)}:${vif.device}`);
      vifRows.set(vif.uuid, undefined);
    });
  }
  for (const vm of await candidates('vms', () => store.listVms(), getVmRow)) {
    if (!mine(vm) || invVms.has(vm.uuid)) continue;
    await attempt(`vm ${vm.name}`, async () => {
      const res = await deleteVm(store, vm.uuid, actor);
      report.released.push(...res.released);
      report.deleted.push(`vm ${vm.name}`);
      vmNames.delete(vm.name);
      vmRows.set(vm.uuid, undefined);
    });
  }

  // Networks (few: always listed)
  const networks = await store.listNetworks();
  const netNames = new Set(networks.map((n) => n.name));
  const byUuid = new Map(networks.map((n) => [n.uuid, n]));
  for (const n of inv.networks) {
    if (!inScope('networks', n.uuid)) continue;
    const extra = { xapi: { connection: conn.name, uuid: n.uuid, ref: n.ref, pool: inv.poolUuid, bridge: n.bridge } satisfies XapiExtra };
    const existing = byUuid.get(n.uuid);
    if (!existing) {
      await attempt(`network ${n.nameLabel}`, async () => {
        const name = await chooseName(n.nameLabel, n.uuid, 'network', async (x) => netNames.has(x));
        const input = { uuid: n.uuid, name, driver: 'xapi', bridge: n.bridge, mode: n.mode, defaultLocking: n.defaultLocking, extra: { ...extra, ...nameLabelExtra(n.nameLabel, n.uuid, 'network') } };
        let created: Network;
        try {
          created = await createNetwork(store, input, actor);
        } catch (err) {
          // Bridge names repeat across pools (xenbr0 everywhere): keep it in extra only.
          if (!(err instanceof IpvisorError && err.field === 'bridge')) throw err;
          created = await createNetwork(store, { ...input, bridge: null }, actor);
        }
        netNames.add(created.name);
        report.created.push(`network ${created.name}`);
      });
    } else if (!sameJson(xapiExtra(existing), extra.xapi) || (existing.bridge !== n.bridge && existing.bridge !== null)) {
      await attempt(`network ${existing.name}`, async () => {
        const bridgeTaken = n.bridge !== null && networks.some((o) => o.uuid !== existing.uuid && o.bridge === n.bridge);
        await updateNetworkFacts(store, existing.uuid, { bridge: bridgeTaken ? existing.bridge : n.bridge, extra }, actor);
        report.updated.push(`network ${existing.name}`);
      });
    }
  }

  // VMs
  for (const v of inv.vms) {
    if (!inScope('vms', v.uuid)) continue;
    const extra = { xapi: { connection: conn.name, ref: v.ref, powerState: v.powerState, residentOn: v.residentOn } satisfies XapiExtra };
    const existing = await getVmRow(v.uuid);
    if (!existing) {
      await attempt(`vm ${v.nameLabel}`, async () => {
        const name = await chooseName(v.nameLabel, v.uuid, 'vm', vmNameTaken);
        const vm = await createVm(store, { uuid: v.uuid, name, host: conn.name, extra: { ...extra, ...nameLabelExtra(v.nameLabel, v.uuid, 'vm') } }, actor);
        vmNames.add(vm.name);
        vmRows.set(vm.uuid, vm);
        report.created.push(`vm ${vm.name}`);
      });
    } else {
      // A rename in XAPI follows (unless the name is taken); the suffix of a collision is kept stable.
      const base = hypervisorName(v.nameLabel, v.uuid, 'vm').name;
      const wanted =
        existing.name === base || existing.name.startsWith(`${base.slice(0, 118)}~`)
          ? existing.name
          : await chooseName(v.nameLabel, v.uuid, 'vm', async (x) => x !== existing.name && (await vmNameTaken(x)));
      if (wanted !== existing.name || !sameJson(xapiExtra(existing), extra.xapi)) {
        await attempt(`vm ${existing.name}`, async () => {
          const after = await setVm(store, existing.uuid, { name: wanted, extra: { ...extra, hypervisorName: hypervisorName(v.nameLabel, v.uuid, 'vm').label ?? undefined } }, actor);
          vmNames.delete(existing.name);
          vmNames.add(wanted);
          vmRows.set(after.uuid, after);
          report.updated.push(`vm ${wanted}`);
        });
      }
    }
  }

  // VIFs
  for (const f of inv.vifs) {
    if (!inScope('vifs', f.uuid)) continue;
    if (!(await getVmRow(f.vmUuid))) continue;
    const extra = { xapi: { connection: conn.name, ref: f.ref } satisfies XapiExtra };
    const existing = await getVifRow(f.uuid);
    const label = `vif ${vmNameOf(f.vmUuid)}:${f.device}`;
    if (!existing) {
      await attempt(label, async () => {
        await addVif(store, { uuid: f.uuid, vm: f.vmUuid, network: f.networkUuid, mac: f.mac, device: f.device, ifname: f.ifname, extra }, actor);
        report.created.push(label);
      });
    } else if (existing.mac !== f.mac || existing.networkUuid !== f.networkUuid || existing.ifname !== f.ifname || !sameJson(xapiExtra(existing), extra.xapi)) {
      await attempt(label, async () => {
        // XAPI moved the VIF (VIF.move): its addresses on the old network are released.
        const res = await setVif(store, existing.uuid, { mac: f.mac, network: f.networkUuid, ifname: f.ifname, extra, force: true }, actor);
        report.released.push(...res.released);
        report.updated.push(label);
      });
    }
  }

  const invNets = new Set(inv.networks.map((n) => n.uuid));
  for (const n of await store.listNetworks()) {
    if (!mine(n) || invNets.has(n.uuid) || !inScope('networks', n.uuid)) continue;
    await attempt(`network ${n.name}`, async () => {
      try {
        await deleteNetwork(store, n.uuid, {}, actor);
        report.deleted.push(`network ${n.name}`);
      } catch (err) {
        // Pools and addresses are ipvisor's: keep them, mark the network gone.
        if (!(err instanceof IpvisorError && err.code === 'IN_USE')) throw err;
        if (!xapiExtra(n)?.gone) {
          await updateNetworkFacts(store, n.uuid, { extra: { xapi: { ...xapiExtra(n)!, gone: true } } }, actor);
          report.updated.push(`network ${n.name} (gone from XAPI, kept: ${err.message.replace(/^network: /, '')})`);
        }
      }
    });
  }
  return report;
}

/** Everything in the store that came from this connection. */
export function ownedBy(conn: string, objects: { vms: Vm[]; vifs: Vif[]; networks: Network[] }): { vms: Vm[]; vifs: Vif[]; networks: Network[] } {
  const f = <T extends { extra: Record<string, unknown> }>(xs: T[]): T[] => xs.filter((x) => xapiExtra(x)?.connection === conn);
  return { vms: f(objects.vms), vifs: f(objects.vifs), networks: f(objects.networks) };
}

/** The objects a batch touched: a VM change covers its VIFs (their ifname follows its domid); a
 * host change (names in extra) means everything. */
export function scopeOf(cache: XapiCache, changes: CacheChange[]): InventoryScope | 'all' | 'none' {
  const scope: InventoryScope = { networks: new Set(), vms: new Set(), vifs: new Set() };
  let any = false;
  for (const c of changes) {
    const rec = c.after ?? c.before;
    const uuid = typeof rec?.uuid === 'string' ? rec.uuid : undefined;
    if (c.cls === 'host') return 'all';
    if (!uuid) {
      if (c.cls === 'VM' || c.cls === 'VIF' || c.cls === 'network') return 'all'; // a del we never saw
      continue;
    }
    if (c.cls === 'network') scope.networks.add(uuid);
    else if (c.cls === 'VIF') scope.vifs.add(uuid);
    else if (c.cls === 'VM') {
      scope.vms.add(uuid);
      for (const r of [...(Array.isArray(c.after?.VIFs) ? c.after!.VIFs : []), ...(Array.isArray(c.before?.VIFs) ? c.before!.VIFs : [])]) {
        const v = cache.get('VIF', r);
        if (typeof v?.uuid === 'string') scope.vifs.add(v.uuid);
      }
    } else continue;
    any = true;
  }
  return any ? scope : 'none';
}

const RESYNC_CODES = new Set(['EVENTS_LOST', 'EVENT_FROM_TOKEN_PARSE_FAILURE', 'SESSION_INVALID']);

/** One pool: full load, then the event.from loop; resyncs from scratch when XAPI says to. */
export class XapiPoolSync {
  readonly cache = new XapiCache(POOL_CLASSES);
  private token = '';

  constructor(
    readonly store: Store,
    readonly conn: XapiConnection,
    readonly client: XapiClient,
    private readonly log: (line: string) => void = () => undefined,
  ) {}

  /** event.inject token -> get_all_records -> store. */
  async full(): Promise<SyncReport> {
    this.token = await this.cache.loadAll(this.client);
    return applyInventory(this.store, this.conn, compileInventory(this.cache));
  }

  /** Waits for one event batch (up to timeoutSeconds) and applies it; returns the cache changes. */
  async step(timeoutSeconds: number): Promise<{ changes: CacheChange[]; report: SyncReport | null }> {
    if (!this.token) return { changes: [], report: await this.full() };
    let batch;
    try {
      batch = await this.client.eventFrom(POOL_CLASSES.map((c) => c.toLowerCase()), this.token, timeoutSeconds);
    } catch (err) {
      if (err instanceof XapiError && RESYNC_CODES.has(err.xapiCode)) {
        this.log(`xapi ${this.conn.name}: ${err.xapiCode}, resyncing from scratch`);
        this.token = '';
        return { changes: [], report: await this.full() };
      }
      throw err;
    }
    this.token = batch.token;
    const changes = this.cache.applyEvents(Array.isArray(batch.events) ? batch.events : []);
    const scope = scopeOf(this.cache, changes);
    if (scope === 'none') return { changes, report: null };
    return { changes, report: await applyInventory(this.store, this.conn, compileInventory(this.cache), SYNC_ACTOR, scope === 'all' ? undefined : scope) };
  }
}

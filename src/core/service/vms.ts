import { thisHost } from '../host-identity.js';
import { IpvisorError, invalid } from '../model/errors.js';
import { VIF_LOCKINGS, type Vif, type VifLocking, type Vm } from '../model/types.js';
import { isUuid, normalizeMac, oneOf, validateInt, validateName, validateNewName, validateUuid } from '../model/validate.js';
import type { Store, StoreTx } from '../store/store.js';
import { audit, inWriteTx, newUuid, now } from './context.js';
import { releaseAssignmentTx } from './ip.js';
import { networkRef, vifRef, vmRef } from './resolve.js';
import { validateIfname } from './networks.js';
import { checkOwner } from './tenants.js';
import { checkVersion } from './context.js';

export interface VmInput {
  name: string;
  uuid?: string;
  owner?: string | null;
  host?: string;
  extra?: Record<string, unknown>;
  /** API If-Match: the version (ETag) the caller read; checked inside the transaction. */
  ifMatch?: string;
}

export async function createVm(store: Store | StoreTx, input: VmInput, actor: string): Promise<Vm> {
  const name = validateNewName(input.name, 'name', 'vm');
  const uuid = input.uuid ? (isUuid(input.uuid) ? input.uuid.toLowerCase() : (() => { throw invalid('uuid', `'${input.uuid}' is not a UUID`); })()) : newUuid();
  const host = input.host !== undefined ? validateName(input.host, 'host') : thisHost();
  const owner = input.owner ? validateName(input.owner, 'owner') : null;
  const run = async (tx: StoreTx) => {
    if (await tx.findVmByName(name)) throw new IpvisorError('ALREADY_EXISTS', `name: a VM named '${name}' already exists`, { field: 'name' });
    if (await tx.getVm(uuid)) throw new IpvisorError('ALREADY_EXISTS', `uuid: a VM with UUID ${uuid} already exists`, { field: 'uuid' });
    await checkOwner(tx, owner);
    const t = now();
    const vm: Vm = { uuid, name, host, owner, extra: input.extra ?? {}, createdAt: t, updatedAt: t };
    await tx.insertVm(vm);
    await audit(tx, { actor, action: 'create', kind: 'vm', uuid, name, after: vm });
    return vm;
  };
  return inWriteTx(store, run);
}

export async function setVm(store: Store | StoreTx, ref: string, input: Partial<VmInput>, actor: string): Promise<Vm> {
  const run = async (tx: StoreTx) => {
    const before = await vmRef(tx, ref);
    checkVersion(before, input.ifMatch, 'vm');
    const name = input.name !== undefined && input.name !== before.name ? validateNewName(input.name, 'name', 'vm') : before.name;
    if (name !== before.name && (await tx.findVmByName(name))) throw new IpvisorError('ALREADY_EXISTS', `name: a VM named '${name}' already exists`, { field: 'name' });
    const after: Vm = {
      ...before,
      name,
      host: input.host !== undefined ? validateName(input.host, 'host') : before.host,
      owner: input.owner !== undefined ? (input.owner ? validateName(input.owner, 'owner') : null) : before.owner,
      extra: input.extra !== undefined ? { ...before.extra, ...input.extra } : before.extra,
      updatedAt: now(),
    };
    if (after.owner !== before.owner) await checkOwner(tx, after.owner);
    if (JSON.stringify({ ...after, updatedAt: '' }) === JSON.stringify({ ...before, updatedAt: '' })) return before;
    await tx.updateVm(after);
    await audit(tx, { actor, action: 'set', kind: 'vm', uuid: after.uuid, name: after.name, before, after });
    return after;
  };
  return inWriteTx(store, run);
}

/** Deletes a VM with its VIFs, releasing their addresses (each release audit-logged). */
export async function deleteVm(store: Store | StoreTx, ref: string, actor: string, opts: { ifMatch?: string } = {}): Promise<{ vm: Vm; released: string[] }> {
  const run = async (tx: StoreTx) => {
    const vm = await vmRef(tx, ref);
    checkVersion(vm, opts.ifMatch, 'vm');
    const released: string[] = [];
    for (const vif of await tx.listVifs(vm.uuid)) released.push(...(await deleteVifTx(tx, vm, vif, actor)));
    await tx.deleteVm(vm.uuid);
    await audit(tx, { actor, action: 'delete', kind: 'vm', uuid: vm.uuid, name: vm.name, before: vm });
    return { vm, released };
  };
  return inWriteTx(store, run);
}

export interface VifInput {
  vm: string;
  network: string;
  mac: string;
  device?: number | string;
  locking?: string;
  ifname?: string | null;
  uuid?: string;
  extra?: Record<string, unknown>;
}

export async function addVif(store: Store | StoreTx, input: VifInput, actor: string): Promise<Vif> {
  const mac = normalizeMac(input.mac, 'mac');
  const locking = input.locking !== undefined ? oneOf<VifLocking>(input.locking, VIF_LOCKINGS, 'locking') : 'network_default';
  const ifname = input.ifname ? validateIfname(input.ifname, 'ifname') : null;
  const vifUuid = input.uuid !== undefined ? validateUuid(input.uuid, 'uuid') : newUuid();
  const run = async (tx: StoreTx) => {
    const vm = await vmRef(tx, input.vm);
    const network = await networkRef(tx, input.network);
    const existing = await tx.listVifs(vm.uuid);
    let device: number;
    if (input.device !== undefined) {
      device = validateInt(input.device, 'device', 0, 65535);
      if (existing.some((v) => v.device === device)) throw new IpvisorError('ALREADY_EXISTS', `device: VM '${vm.name}' already has a VIF with device ${device}`, { field: 'device' });
    } else {
      device = 0;
      const used = new Set(existing.map((v) => v.device));
      while (used.has(device)) device++;
    }
    const dup = await tx.findVifByMac(network.uuid, mac);
    if (dup) {
      const owner = await tx.getVm(dup.vmUuid);
      throw new IpvisorError('ALREADY_EXISTS', `mac: ${mac} is already used on network '${network.name}' by ${owner?.name ?? dup.vmUuid}:${dup.device}`, { field: 'mac' });
    }
    const t = now();
    const vif: Vif = { uuid: vifUuid, vmUuid: vm.uuid, device, mac, networkUuid: network.uuid, locking, ifname, boundAt: ifname ? t : null, extra: input.extra ?? {}, createdAt: t, updatedAt: t };
    await tx.insertVif(vif);
    await audit(tx, { actor, action: 'create', kind: 'vif', uuid: vif.uuid, name: `${vm.name}:${device}`, after: vif });
    return vif;
  };
  return inWriteTx(store, run);
}

export interface VifChanges {
  locking?: string;
  mac?: string;
  network?: string;
  ifname?: string | null;
  extra?: Record<string, unknown>;
  /** Moving a VIF with addresses to another network releases them only with force. */
  force?: boolean;
  ifMatch?: string;
}

export async function setVif(store: Store | StoreTx, ref: string, ch: VifChanges, actor: string): Promise<{ vif: Vif; released: string[] }> {
  const run = async (tx: StoreTx) => {
    const { vif: before, vm } = await vifRef(tx, ref);
    checkVersion(before, ch.ifMatch, 'vif');
    const after: Vif = { ...before, updatedAt: now() };
    const released: string[] = [];
    if (ch.locking !== undefined) after.locking = oneOf<VifLocking>(ch.locking, VIF_LOCKINGS, 'locking');
    if (ch.mac !== undefined) after.mac = normalizeMac(ch.mac, 'mac');
    if (ch.ifname !== undefined) after.ifname = ch.ifname ? validateIfname(ch.ifname, 'ifname') : null;
    if (ch.extra !== undefined) after.extra = { ...before.extra, ...ch.extra };
    if (after.ifname !== before.ifname) after.boundAt = after.ifname ? after.updatedAt : null;
    if (ch.network !== undefined) {
      const net = await networkRef(tx, ch.network);
      if (net.uuid !== before.networkUuid) {
        const held = await tx.listAssignments({ vifUuid: before.uuid });
        if (held.length && !ch.force) {
          throw new IpvisorError('IN_USE', `network: VIF ${vm.name}:${before.device} holds ${held.map((a) => a.address).join(', ')} on its current network; release them or use --force`, { field: 'network' });
        }
        for (const a of held) released.push(await releaseAssignmentTx(tx, a, actor));
        after.networkUuid = net.uuid;
      }
    }
    if (after.mac !== before.mac || after.networkUuid !== before.networkUuid) {
      const dup = await tx.findVifByMac(after.networkUuid, after.mac);
      if (dup && dup.uuid !== before.uuid) throw new IpvisorError('ALREADY_EXISTS', `mac: ${after.mac} is already used on that network`, { field: 'mac' });
    }
    if (JSON.stringify({ ...after, updatedAt: '' }) === JSON.stringify({ ...before, updatedAt: '' })) return { vif: before, released };
    await tx.updateVif(after);
    await audit(tx, { actor, action: 'set', kind: 'vif', uuid: after.uuid, name: `${vm.name}:${after.device}`, before, after });
    return { vif: after, released };
  };
  return inWriteTx(store, run);
}

/** Records the host-side interface of a VIF (vnet3, vif5.0); null unbinds it. With `host`, the
 * binding is on that host and the VM moves there (an interface name is unique per host). */
export async function bindVif(store: Store | StoreTx, ref: string, ifname: string | null, actor: string, host?: string): Promise<Vif> {
  if (host === undefined) return (await setVif(store, ref, { ifname }, actor)).vif;
  const h = validateName(host, 'host');
  return inWriteTx(store, async (tx) => {
    const { vm } = await vifRef(tx, ref);
    if (vm.host !== h) await setVm(tx, vm.uuid, { host: h }, actor);
    return (await setVif(tx, ref, { ifname }, actor)).vif;
  });
}

async function deleteVifTx(tx: StoreTx, vm: Vm, vif: Vif, actor: string): Promise<string[]> {
  const released: string[] = [];
  for (const a of await tx.listAssignments({ vifUuid: vif.uuid })) released.push(await releaseAssignmentTx(tx, a, actor));
  await tx.deleteVif(vif.uuid);
  await audit(tx, { actor, action: 'delete', kind: 'vif', uuid: vif.uuid, name: `${vm.name}:${vif.device}`, before: vif });
  return released;
}

export async function deleteVif(store: Store | StoreTx, ref: string, actor: string, opts: { ifMatch?: string } = {}): Promise<{ vif: Vif; released: string[] }> {
  const run = async (tx: StoreTx) => {
    const { vif, vm } = await vifRef(tx, ref);
    checkVersion(vif, opts.ifMatch, 'vif');
    return { vif, released: await deleteVifTx(tx, vm, vif, actor) };
  };
  return inWriteTx(store, run);
}

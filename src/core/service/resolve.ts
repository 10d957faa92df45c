// Name-or-UUID resolution for every kind of object.
import { IpvisorError, invalid, notFound } from '../model/errors.js';
import type { Network, Pool, Vif, Vm } from '../model/types.js';
import { isUuid, validateInt } from '../model/validate.js';
import type { StoreTx, VifInContext } from '../store/store.js';

export async function findNetwork(tx: StoreTx, ref: string): Promise<Network | undefined> {
  if (isUuid(ref)) {
    const byUuid = await tx.getNetwork(ref.toLowerCase());
    if (byUuid) return byUuid;
  }
  return tx.findNetworkByName(ref);
}

export async function networkRef(tx: StoreTx, ref: string, field = 'network'): Promise<Network> {
  const n = await findNetwork(tx, ref);
  if (!n) throw notFound('network', ref, field);
  return n;
}

export async function poolRef(tx: StoreTx, ref: string, field = 'pool'): Promise<Pool> {
  let p: Pool | undefined;
  if (isUuid(ref)) p = await tx.getPool(ref.toLowerCase());
  p ??= await tx.findPoolByName(ref);
  if (!p) throw notFound('pool', ref, field);
  return p;
}

export async function findVm(tx: StoreTx, ref: string): Promise<Vm | undefined> {
  if (isUuid(ref)) {
    const byUuid = await tx.getVm(ref.toLowerCase());
    if (byUuid) return byUuid;
  }
  return tx.findVmByName(ref);
}

export async function vmRef(tx: StoreTx, ref: string, field = 'vm'): Promise<Vm> {
  const v = await findVm(tx, ref);
  if (!v) throw notFound('vm', ref, field);
  return v;
}

/** "VM:DEVICE", split at the last ':' (VM names and IPv6-looking names may contain ':'). A VIF UUID works too. */
export async function vifRef(tx: StoreTx, ref: string, field = 'vif'): Promise<{ vif: Vif; vm: Vm }> {
  if (isUuid(ref)) {
    const vif = await tx.getVif(ref.toLowerCase());
    if (vif) return { vif, vm: (await tx.getVm(vif.vmUuid))! };
  }
  const i = ref.lastIndexOf(':');
  if (i <= 0 || i === ref.length - 1) throw invalid(field, `'${ref}' is not VM:DEVICE (e.g. web1:0) or a VIF UUID`);
  const device = validateInt(ref.slice(i + 1), field, 0, 65535);
  const vm = await findVm(tx, ref.slice(0, i));
  if (!vm) throw notFound('vm', ref.slice(0, i), field);
  const vif = await tx.findVifByDevice(vm.uuid, device);
  if (!vif) throw new IpvisorError('NOT_FOUND', `${field}: VM '${vm.name}' has no VIF with device ${device}`, { field });
  return { vif, vm };
}

/** vifRef with the VIF's network: a VM:DEVICE reference by VM name (the common case) is one read
 * (findVifInContext); anything else, or a miss (for vifRef's exact error), goes through vifRef. */
export async function vifInContextRef(tx: StoreTx, ref: string, field = 'vif'): Promise<VifInContext> {
  const i = ref.lastIndexOf(':');
  const vmPart = ref.slice(0, i);
  if (i > 0 && !isUuid(ref) && !isUuid(vmPart) && /^\d+$/.test(ref.slice(i + 1))) {
    const device = Number(ref.slice(i + 1));
    if (device <= 65535) {
      const hit = await tx.findVifInContext(vmPart, device);
      if (hit) return hit;
    }
  }
  const { vif, vm } = await vifRef(tx, ref, field);
  return { vif, vm, network: (await tx.getNetwork(vif.networkUuid))! };
}

export function vifLabel(vm: Pick<Vm, 'name'>, vif: Pick<Vif, 'device'>): string {
  return `${vm.name}:${vif.device}`;
}

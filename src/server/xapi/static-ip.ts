// Static IP into the guest through XAPI: VIF.configure_ipv4/6, for guests whose agent advertises
// feature-static-ip-setting. The VIF's allow list is enforced first, so a locked VIF never rejects
// its own address (ADDRESS_VIOLATES_LOCKING_CONSTRAINT).
import { IpvisorError } from '../../core/model/errors.js';
import { cidrContains, parseCidr, parseAddress } from '../../core/ipam/addr.js';
import type { Store } from '../../core/store/store.js';
import { vmRef } from '../../core/service/resolve.js';
import { audit } from '../../core/service/context.js';
import { XapiError } from './client.js';
import { XapiCache } from './cache.js';
import { connectionClient, getConnection } from './connections.js';
import { applyConnectionPlan, planConnection } from './enforcer.js';
import { xapiExtra } from './sync.js';

export interface StaticIpResult {
  vm: string;
  configured: Array<{ vif: string; family: 4 | 6; address: string; gateway: string }>;
}

/** Pushes each VIF's primary addresses (with the subnet's prefix and gateway) into the guest. */
export async function pushStaticIpViaXapi(store: Store, vmUuidOrName: string, opts: { actor?: string; dryRun?: boolean } = {}): Promise<StaticIpResult> {
  const actor = opts.actor ?? 'guest-push';
  const vm = await vmRef(store, vmUuidOrName);
  const x = xapiExtra(vm);
  if (!x) throw new IpvisorError('VALIDATION', `vm: '${vm.name}' is not an XAPI VM (no XAPI connection recorded)`, { field: 'vm' });
  const conn = await getConnection(store, x.connection);
  const vifs = await store.listVifs(vm.uuid);
  const work: Array<{ vifUuid: string; label: string; family: 4 | 6; cidr: string; gateway: string }> = [];
  for (const vif of vifs) {
    const net = await store.getNetwork(vif.networkUuid);
    for (const a of await store.listAssignments({ vifUuid: vif.uuid })) {
      if (a.kind !== 'primary') continue;
      const value = parseAddress(a.address).value;
      const subnet = net?.subnets.find((s) => s.family === a.family && cidrContains(parseCidr(s.cidr), a.family, value));
      if (!subnet) throw new IpvisorError('VALIDATION', `network: ${a.address} of ${vm.name}:${vif.device} lies in no subnet of network '${net?.name}'; add one with \`network set --subnet\``, { field: 'network' });
      const len = subnet.cidr.split('/')[1];
      work.push({ vifUuid: vif.uuid, label: `${vm.name}:${vif.device}`, family: a.family, cidr: `${a.address}/${len}`, gateway: subnet.gateway ?? '' });
    }
  }
  const result: StaticIpResult = { vm: vm.name, configured: [] };
  // Nothing to set: say so instead of reporting a push that did nothing.
  if (work.length === 0) throw new IpvisorError('VALIDATION', `vm: no VIF of '${vm.name}' holds a primary address; allocate one first (\`ipvisor ip allocate --vif ${vm.name}:DEVICE\`)`, { field: 'vm' });
  const client = connectionClient(conn);
  try {
    const cache = new XapiCache(['pool', 'VM', 'VM_guest_metrics', 'VIF', 'network']);
    for (const cls of cache.classes) cache.replaceAll(cls, await client.call(`${cls}.get_all_records`));
    if (cache.pool?.[1].restrictions?.restrict_guest_ip_setting === 'true') {
      throw new IpvisorError('DRIVER', `pool ${conn.name}: setting guest IPs is restricted by the licence (restrict_guest_ip_setting)`);
    }
    const vmEntry = cache.all('VM').find(([, r]) => r.uuid === vm.uuid);
    if (!vmEntry) throw new IpvisorError('NOT_FOUND', `vm: '${vm.name}' no longer exists in XAPI; run \`ipvisor xapi sync\``, { field: 'vm' });
    const gm = cache.get('VM_guest_metrics', vmEntry[1].guest_metrics);
    if (gm?.other?.['feature-static-ip-setting'] !== '1') {
      throw new IpvisorError('DRIVER', `vm: the guest of '${vm.name}' does not advertise feature-static-ip-setting (its agent cannot take a static IP from XAPI); use a config drive or the guest's own configuration`, { field: 'vm' });
    }
    if (opts.dryRun) {
      result.configured = work.map((w) => ({ vif: w.label, family: w.family, address: w.cidr, gateway: w.gateway }));
      return result;
    }
    // Allow lists first (a locked VIF would refuse an address it does not allow).
    const cp = await planConnection(store, conn, { client, cache, close: async () => undefined }, new Set(work.map((w) => w.vifUuid)));
    await applyConnectionPlan(store, cp, { client, cache }, actor, () => undefined);
    const refOf = new Map(cache.all('VIF').map(([ref, r]) => [r.uuid as string, ref]));
    for (const w of work) {
      const ref = refOf.get(w.vifUuid);
      if (!ref) continue;
      try {
        await client.call(w.family === 4 ? 'VIF.configure_ipv4' : 'VIF.configure_ipv6', ref, 'Static', w.cidr, w.gateway);
      } catch (err) {
        if (err instanceof XapiError && err.xapiCode === 'VM_LACKS_FEATURE') throw new IpvisorError('DRIVER', `vm: the guest of '${vm.name}' lacks feature-static-ip-setting (VM_LACKS_FEATURE)`, { field: 'vm', cause: err });
        if (err instanceof XapiError && err.xapiCode === 'ADDRESS_VIOLATES_LOCKING_CONSTRAINT') throw new IpvisorError('DRIVER', `${w.label}: XAPI refuses ${w.cidr}: the VIF is locked without that address (foreign locking change? see \`ipvisor status\`)`, { cause: err });
        throw err;
      }
      result.configured.push({ vif: w.label, family: w.family, address: w.cidr, gateway: w.gateway });
    }
    await store.transaction(async (tx) => audit(tx, { actor, action: 'xapi.static-ip', kind: 'vm', uuid: vm.uuid, name: vm.name, after: result.configured }), { write: true });
    return result;
  } finally {
    await client.logout();
  }
}

// `ipvisor libvirt sync`: discover libvirt networks, domains, interfaces and MACs into the store
// through virsh XML. Never called from a hook (virsh from a hook deadlocks libvirtd).
import { IpvisorError } from '../../core/model/errors.js';
import type { NetworkMode } from '../../core/model/types.js';
import type { Store } from '../../core/store/store.js';
import { createNetwork } from '../../core/service/networks.js';
import { formatAddress, parseCidr } from '../../core/ipam/addr.js';
import { findStoreNetwork, recordDomain, recordNetworkFacts } from '../../core/service/libvirt-facts.js';
import { createVirsh, listDomainUuids, listNetworkNames, type Virsh } from './virsh.js';
import { parseDomainXml, parseNetworkXml, type LibvirtNetworkInfo } from './xml.js';
import { factLabel } from '../../core/model/validate.js';

const FORWARD_TO_MODE: Record<string, NetworkMode> = { nat: 'nat', route: 'routed', open: 'open', none: 'isolated', bridge: 'bridged' };

export interface SyncResult {
  networks: Array<{ name: string; uuid: string; action: 'created' | 'updated' | 'unchanged' | 'skipped'; note?: string }>;
  domains: Array<{ name: string; uuid: string; running: boolean; vifs: Array<{ mac: string; network: string; ifname: string | null }> }>;
  /** Facts that failed validation (escaped, one line each): not stored as given. */
  problems: string[];
}

function subnetsOf(info: LibvirtNetworkInfo): string[] {
  const out: string[] = [];
  for (const ip of info.ips) {
    try {
      const c = parseCidr(`${ip.address}/${ip.prefix}`, 'ip', { allowBare: true });
      const cidr = `${formatAddress(c.family, c.network)}/${c.prefixLength}`;
      out.push(c.address !== c.network ? `${cidr},gateway=${ip.address}` : cidr);
    } catch {
      /* skip what we cannot read */
    }
  }
  return out;
}

export async function syncLibvirt(store: Store, actor: string, deps: { virsh?: Virsh } = {}): Promise<SyncResult> {
  const virsh = deps.virsh ?? createVirsh();
  const res: SyncResult = { networks: [], domains: [], problems: [] };
  const active = new Set((await virsh.run(['net-list', '--name'])).stdout.split('\n').map((s) => s.trim()).filter(Boolean));
  for (const name of await listNetworkNames(virsh)) {
    const dump = await virsh.run(['net-dumpxml', name], { allowFail: true });
    if (dump.code !== 0) continue;
    const info = parseNetworkXml(dump.stdout);
    const known = await findStoreNetwork(store, info);
    if (known) {
      const after = await store.transaction((tx) => recordNetworkFacts(tx, info, actor, active.has(name), res.problems), { write: true });
      res.networks.push({ name, uuid: known.uuid, action: after && JSON.stringify(after) !== JSON.stringify(known) ? 'updated' : 'unchanged' });
      continue;
    }
    const storeName = (await store.findNetworkByName(name)) ? `${name}-libvirt` : name;
    try {
      const n = await createNetwork(store, {
        name: storeName, uuid: info.uuid, driver: 'libvirt', bridge: info.bridge, mode: FORWARD_TO_MODE[info.forwardMode] ?? 'bridged',
        subnets: subnetsOf(info), mtu: info.mtu,
        extra: { libvirtName: name, libvirtUuid: info.uuid, managed: false, libvirtActive: active.has(name) },
      }, actor);
      res.networks.push({ name, uuid: n.uuid, action: 'created', ...(storeName !== name ? { note: `stored as '${storeName}'` } : {}) });
    } catch (err) {
      if (!(err instanceof IpvisorError)) throw err;
      res.networks.push({ name, uuid: info.uuid, action: 'skipped', note: err.message });
    }
  }
  for (const uuid of await listDomainUuids(virsh)) {
    const dump = await virsh.run(['dumpxml', uuid], { allowFail: true });
    if (dump.code !== 0) continue; // undefined meanwhile
    const dom = parseDomainXml(dump.stdout);
    const running = dom.id !== null;
    const r = await store.transaction((tx) => recordDomain(tx, dom, running ? 'running' : 'stopped', actor), { write: true });
    res.problems.push(...r.problems);
    const nets = new Map((await store.listNetworks()).map((n) => [n.uuid, n.name]));
    res.domains.push({ name: r.vm?.name ?? factLabel(dom.name, 128), uuid: factLabel(dom.uuid, 64), running, vifs: r.vifs.map(({ vif }) => ({ mac: vif.mac, network: nets.get(vif.networkUuid) ?? vif.networkUuid, ifname: vif.ifname })) });
  }
  return res;
}

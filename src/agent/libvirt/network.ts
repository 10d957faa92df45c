// Managed libvirt networks: clash-free subnets, define/start with DHCP and RA, one `vif` pool per
// family outside the DHCP range, and DHCP host reservations following ipvisor's assignments.
import { IpvisorError, invalid } from '../../core/model/errors.js';
import type { Network, NetworkMode, Subnet } from '../../core/model/types.js';
import { validateName } from '../../core/model/validate.js';
import { formatAddress, parseAddress, parseCidr } from '../../core/ipam/addr.js';
import type { Store } from '../../core/store/store.js';
import type { CreateNetworkInput } from '../../core/driver.js';
import type { HostDesired } from '../../core/compile/host-desired.js';
import type { HostRecords } from '../../core/watcher.js';
import { createNetwork, deleteNetwork, parseSubnet, updateNetworkFacts, validateIfname } from '../../core/service/networks.js';
import { createPool } from '../../core/service/pools.js';
import { newUuid } from '../../core/service/context.js';
import { createHostRunner, type HostRunner } from '../host/exec.js';
import { DOC_DHCP } from '../../core/service/libvirt-facts.js';
import { findClash, observeHostPrefixes, pickFreeIpv4Subnet, pickUla64, splitIpv4Subnet, type UsedPrefix } from './subnets.js';
import { createVirsh, listNetworkNames, networkIsActive, type Virsh } from './virsh.js';
import { buildNetworkXml, dhcpHostXml, parseNetworkXml, type ManagedNetworkSpec } from './xml.js';

/** libvirt's default DHCP lease time (1 h): released addresses are held this long before reuse. */
export const DHCP_LEASE_SECONDS = 3600;

const MODE_TO_FORWARD: Partial<Record<NetworkMode, ManagedNetworkSpec['forwardMode']>> = { nat: 'nat', routed: 'route', open: 'open', isolated: 'none' };

export interface LibvirtDeps {
  virsh?: Virsh;
  runner?: HostRunner;
  random?: (n: number) => number;
}

/** Prefixes used by libvirt's own networks (defined or running), from their XML. */
async function libvirtUsed(v: Virsh): Promise<{ used: UsedPrefix[]; names: Set<string>; bridges: Set<string> }> {
  const used: UsedPrefix[] = [];
  const names = new Set<string>();
  const bridges = new Set<string>();
  for (const name of await listNetworkNames(v)) {
    names.add(name);
    const r = await v.run(['net-dumpxml', name], { allowFail: true });
    if (r.code !== 0) continue;
    const info = parseNetworkXml(r.stdout);
    if (info.bridge) bridges.add(info.bridge);
    for (const ip of info.ips) {
      try {
        const c = parseCidr(`${ip.address}/${ip.prefix}`, 'ip', { allowBare: true });
        used.push({ cidr: `${formatAddress(c.family, c.network)}/${c.prefixLength}`, what: `libvirt network ${name}` });
      } catch {
        /* malformed libvirt XML: ignore */
      }
    }
  }
  return { used, names, bridges };
}

export async function createManagedNetwork(store: Store, input: CreateNetworkInput, actor: string, deps: LibvirtDeps = {}): Promise<Network> {
  const name = validateName(input.name, 'name');
  if (!/^[A-Za-z0-9_.+-]{1,64}$/.test(name)) throw invalid('name', `'${name}' is not usable as a libvirt network name here (letters, digits, '_', '.', '+', '-'; at most 64)`);
  const mode = (input.mode ?? 'nat') as NetworkMode;
  const forwardMode = MODE_TO_FORWARD[mode];
  if (!forwardMode) throw invalid('mode', `'${input.mode}' is not a managed libvirt network mode (nat, routed, open, isolated)`);
  const bridge = input.bridge ? validateIfname(input.bridge, 'bridge') : null;
  if (await store.findNetworkByName(name)) throw new IpvisorError('ALREADY_EXISTS', `name: a network named '${name}' already exists`, { field: 'name' });

  // Subnets: "auto" or CIDR[,gateway=IP]; --ipv6 likewise. Their syntax and shape are checked before
  // anything talks to libvirt or the host, so bad input is a validation error (exit 2) everywhere.
  type Wanted = 'auto' | 'auto6' | { field: 'subnet' | 'ipv6'; s: Subnet };
  const wanted: Wanted[] = (input.subnets.length ? input.subnets : ['auto']).map((w) => (w === 'auto' ? 'auto' : { field: 'subnet', s: parseSubnet(w, 'subnet') }));
  if (input.ipv6) {
    if (input.ipv6 === 'auto') wanted.push('auto6');
    else {
      const s = parseSubnet(input.ipv6, 'ipv6');
      if (s.family !== 6) throw invalid('ipv6', `'${input.ipv6}' is not an IPv6 subnet`);
      wanted.push({ field: 'ipv6', s });
    }
  }
  let count4 = 0;
  let count6 = 0;
  for (const w of wanted) {
    const family = w === 'auto' ? 4 : w === 'auto6' ? 6 : w.s.family;
    if (family === 4 && ++count4 > 1) throw invalid('subnet', 'a managed libvirt network takes one IPv4 subnet');
    if (family === 6 && ++count6 > 1) throw invalid('ipv6', 'a managed libvirt network takes one IPv6 subnet');
    if (typeof w === 'string') continue;
    if (family === 6 && parseCidr(w.s.cidr).prefixLength !== 64) throw invalid(w.field, `${w.s.cidr}: router advertisements (SLAAC) need a /64`);
    if (family === 4) {
      try {
        splitIpv4Subnet(w.s.cidr, w.s.gateway);
      } catch (e) {
        throw invalid('subnet', (e as Error).message.replace(/^subnet: /, ''));
      }
    }
  }

  const virsh = deps.virsh ?? createVirsh();
  const runner = deps.runner ?? createHostRunner();
  const lv = await libvirtUsed(virsh);
  if (lv.names.has(name)) throw new IpvisorError('ALREADY_EXISTS', `name: libvirt already has a network named '${name}' (adopt it with 'ipvisor libvirt sync')`, { field: 'name' });
  if (bridge) {
    const link = await runner.run(['ip', '-j', 'link', 'show', 'dev', bridge], { allowFail: true });
    if (link.code === 0 || lv.bridges.has(bridge)) throw new IpvisorError('ALREADY_EXISTS', `bridge: ${bridge} already exists on this host or in another libvirt network`, { field: 'bridge' });
  }
  const storeUsed: UsedPrefix[] = (await store.listNetworks()).flatMap((n) => n.subnets.map((s) => ({ cidr: s.cidr, what: `network ${n.name}` })));
  const used = [...(await observeHostPrefixes(runner)), ...lv.used, ...storeUsed];

  let v4: { cidr: string; gateway: string | null } | undefined;
  let v6: { cidr: string; gateway: string | null } | undefined;
  for (const w of wanted) {
    let s: { cidr: string; family: 4 | 6; gateway: string | null };
    if (w === 'auto') {
      const cidr = pickFreeIpv4Subnet(used, { random: deps.random });
      if (!cidr) throw new IpvisorError('OVERLAP', 'subnet: no free private /24 is left on this host', { field: 'subnet' });
      s = { cidr, family: 4, gateway: null };
    } else if (w === 'auto6') {
      s = { cidr: pickUla64(used), family: 6, gateway: null };
    } else {
      s = w.s;
      const clash = findClash(s.cidr, used);
      if (clash) throw new IpvisorError('OVERLAP', `${w.field}: ${s.cidr} overlaps ${clash.what}`, { field: w.field });
    }
    if (s.family === 4) v4 = s;
    else v6 = s;
    used.push({ cidr: s.cidr, what: `this network's other subnet` });
  }
  const split4 = v4 ? (() => { try { return splitIpv4Subnet(v4.cidr, v4.gateway); } catch (e) { throw invalid('subnet', (e as Error).message.replace(/^subnet: /, '')); } })() : undefined;
  const gw6 = v6 ? v6.gateway ?? formatAddress(6, parseCidr(v6.cidr).network + 1n) : undefined;

  const uuid = newUuid();
  const spec: ManagedNetworkSpec = {
    name, uuid, forwardMode, bridge, mtu: input.mtu ?? null,
    ipv4: split4 ? { gateway: split4.gateway, prefix: split4.prefix, dhcpStart: split4.dhcp.start, dhcpEnd: split4.dhcp.end } : null,
    ipv6: v6 && gw6 ? { gateway: gw6, prefix: 64 } : null,
    dns: input.dns,
  };

  // Store first (so the start hook's clash check and the started hook see an ipvisor network),
  // then libvirt; any failure undoes both.
  const subnets = [...(v4 && split4 ? [`${v4.cidr},gateway=${split4.gateway}`] : []), ...(v6 ? [`${v6.cidr},gateway=${gw6}`] : [])];
  let network = await createNetwork(store, {
    name, uuid, driver: 'libvirt', bridge, mode, subnets, defaultLocking: input.defaultLocking, mtu: input.mtu ?? null, dns: input.dns, routes: input.routes,
    extra: { libvirtName: name, libvirtUuid: uuid, managed: true, ipv6Slaac: !!v6, dhcpRange: split4 ? `${split4.dhcp.start}-${split4.dhcp.end}` : null },
  }, actor);
  let defined = false;
  try {
    if (split4) await createPool(store, { name: `${name}-v4`, network: uuid, ranges: [`${split4.pool.first}-${split4.pool.last}`], purpose: 'vif', hold: DHCP_LEASE_SECONDS }, actor);
    // SLAAC addresses follow the MAC, so there is nothing to wait out before reuse.
    if (v6) await createPool(store, { name: `${name}-v6`, network: uuid, cidrs: [v6.cidr], purpose: 'vif', hold: 0 }, actor);
    await virsh.withXmlFile((f) => ['net-define', f], buildNetworkXml(spec));
    defined = true;
    const info = parseNetworkXml((await virsh.run(['net-dumpxml', '--inactive', name])).stdout);
    if (info.bridge && info.bridge !== network.bridge) network = await updateNetworkFacts(store, uuid, { bridge: info.bridge }, actor);
    await virsh.run(['net-autostart', name]);
    await virsh.run(['net-start', name]);
    return (await store.getNetwork(uuid)) ?? network;
  } catch (err) {
    if (defined) {
      await virsh.run(['net-destroy', name], { allowFail: true });
      await virsh.run(['net-undefine', name], { allowFail: true });
    }
    await deleteNetwork(store, uuid, { force: true }, actor).catch(() => undefined);
    throw err;
  }
}

export interface DhcpHost {
  mac: string;
  ip: string;
  name?: string;
}

/** Pure: the DHCP reservations a network should carry (one per VIF: its primary IPv4 address). */
export function desiredDhcpHosts(network: Network, vifs: Array<{ uuid: string; mac: string; name: string }>, assignments: Array<{ vifUuid: string | null; family: number; address: string; kind: string; createdAt: string }>): DhcpHost[] {
  const v4 = network.subnets.find((s) => s.family === 4);
  if (!v4) return [];
  const c = parseCidr(v4.cidr);
  const out: DhcpHost[] = [];
  for (const vif of vifs) {
    const mine = assignments
      .filter((a) => a.vifUuid === vif.uuid && a.family === 4 && (a.kind === 'primary' || a.kind === 'additional'))
      .filter((a) => { const v = parseAddress(a.address).value; return v >= c.network && v < c.network + (1n << BigInt(32 - c.prefixLength)); })
      .sort((a, b) => (a.kind === b.kind ? a.createdAt.localeCompare(b.createdAt) : a.kind === 'primary' ? -1 : 1));
    if (mine[0]) out.push({ mac: vif.mac, ip: mine[0].address, name: vif.name });
  }
  out.sort((a, b) => a.mac.localeCompare(b.mac));
  // libvirt refuses a second <host> with the same name: a VM with two NICs here names one of them.
  const named = new Set<string>();
  for (const h of out) {
    if (!h.name || named.has(h.name)) delete h.name;
    else named.add(h.name);
  }
  return out;
}

/** Pure: which net-update calls turn `current` into `desired`, touching only reservations ipvisor
 * made (`owned` MACs) or MACs it now wants. */
export function diffDhcpHosts(current: DhcpHost[], desired: DhcpHost[], owned: string[]): { remove: DhcpHost[]; add: DhcpHost[] } {
  const want = new Map(desired.map((h) => [h.mac, h]));
  const remove: DhcpHost[] = [];
  const keep = new Set<string>();
  for (const h of current) {
    if (!h.mac) continue;
    const w = want.get(h.mac);
    if (w && w.ip === h.ip) keep.add(h.mac);
    else if (w || owned.includes(h.mac)) remove.push(h);
  }
  // dnsmasq refuses two hosts with one IP: drop any other holder of an IP we now hand out.
  for (const h of current) {
    if (h.mac && !keep.has(h.mac) && !remove.includes(h) && desired.some((d) => d.ip === h.ip && d.mac !== h.mac) && owned.includes(h.mac)) remove.push(h);
  }
  const add = desired.filter((d) => !keep.has(d.mac));
  return { remove, add };
}

/** The reservations ipvisor made in one libvirt network (so it removes only its own). */
export interface OwnedDhcpHosts {
  get(): Promise<string[]>;
  put(macs: string[]): Promise<void>;
}

/** What a network's reservations follow: its VIFs (with their VM's name) and their assignments. */
export interface DhcpInputs {
  vms: Array<{ uuid: string; name: string }>;
  vifs: Array<{ uuid: string; vmUuid: string; mac: string; networkUuid: string }>;
  assignments: Array<{ vifUuid: string | null; family: number; address: string; kind: string; createdAt: string; networkUuid: string }>;
}

/** Keeps `<host mac= ip=>` reservations in the libvirt network in step with ipvisor's IPv4
 * assignments (net-update, live and persistent). A network that is not in this host's libvirt
 * changes nothing. */
export async function applyDhcpReservations(network: Network, inputs: DhcpInputs, owned: OwnedDhcpHosts, deps: LibvirtDeps = {}): Promise<{ added: DhcpHost[]; removed: DhcpHost[] }> {
  const lvName = (network.extra.libvirtName as string | undefined) ?? network.name;
  const virsh = deps.virsh ?? createVirsh();
  const dump = await virsh.run(['net-dumpxml', '--inactive', lvName], { allowFail: true });
  if (dump.code !== 0) return { added: [], removed: [] }; // not a libvirt network on this host
  const info = parseNetworkXml(dump.stdout);
  const ip4 = info.ips.find((i) => i.family === 4 && i.dhcpRanges.length > 0) ?? info.ips.find((i) => i.family === 4);
  if (!ip4) return { added: [], removed: [] };
  const vms = new Map(inputs.vms.map((v) => [v.uuid, v.name]));
  const vifs = inputs.vifs.filter((v) => v.networkUuid === network.uuid).map((v) => ({ uuid: v.uuid, mac: v.mac, name: vms.get(v.vmUuid) ?? '' }));
  const desired = desiredDhcpHosts(network, vifs, inputs.assignments.filter((a) => a.networkUuid === network.uuid));
  const ownedBefore = await owned.get();
  const current = ip4.hosts.filter((h) => h.mac).map((h) => ({ mac: h.mac!, ip: h.ip, name: h.name }));
  const { remove, add } = diffDhcpHosts(current, desired, ownedBefore);
  // what ipvisor wants is ipvisor's, whoever added it (the CLI on a one-box host, or this host's agent)
  const nowOwned = [...new Set([...ownedBefore.filter((m) => !remove.some((r) => r.mac === m)), ...desired.map((d) => d.mac)])].sort();
  if (!remove.length && !add.length) {
    if (JSON.stringify(nowOwned) !== JSON.stringify(ownedBefore)) await owned.put(nowOwned);
    return { added: [], removed: [] };
  }
  const active = await networkIsActive(virsh, lvName);
  const scope = active ? ['--live', '--config'] : ['--config'];
  for (const h of remove) await virsh.run(['net-update', lvName, 'delete', 'ip-dhcp-host', `<host mac='${h.mac}'/>`, ...scope]);
  for (const h of add) await virsh.run(['net-update', lvName, 'add-last', 'ip-dhcp-host', dhcpHostXml(h), ...scope]);
  await owned.put(nowOwned);
  return { added: add, removed: remove };
}

/** assignmentsChanged (the CLI on a one-box host): the reservations of one network, from the store. */
export async function syncDhcpReservations(store: Store, network: Network, actor: string, deps: LibvirtDeps = {}): Promise<{ added: DhcpHost[]; removed: DhcpHost[] }> {
  void actor;
  const inputs: DhcpInputs = { vms: await store.listVms(), vifs: await store.listVifs(), assignments: await store.listAssignments({ networkUuid: network.uuid }) };
  return applyDhcpReservations(network, inputs, {
    get: async () => (await store.getDoc<string[]>(DOC_DHCP, network.uuid))?.value ?? [],
    put: (macs) => store.putDoc(DOC_DHCP, network.uuid, macs),
  }, deps);
}

/** The reservations of every libvirt network of this host, from its desired copy (agent and serve:
 * an allocation made anywhere reaches the host whose network it is). The VIFs in the copy are the
 * ones running here; reservations ipvisor made are remembered in the host's local state. */
export async function syncHostDhcp(desired: HostDesired, local: HostRecords, deps: LibvirtDeps = {}): Promise<Array<{ network: string; added: DhcpHost[]; removed: DhcpHost[] }>> {
  const s = desired.snapshot;
  const out: Array<{ network: string; added: DhcpHost[]; removed: DhcpHost[] }> = [];
  for (const n of s.networks) {
    if (n.driver !== 'libvirt') continue;
    const r = await applyDhcpReservations(n, { vms: s.vms, vifs: s.vifs, assignments: s.assignments }, {
      get: async () => local.get<string[]>(DOC_DHCP, n.uuid) ?? [],
      put: async (macs) => local.put(DOC_DHCP, n.uuid, macs),
    }, deps);
    if (r.added.length || r.removed.length) out.push({ network: n.name, ...r });
  }
  return out;
}

/** networkDeleted: a network ipvisor created in libvirt goes away with it. */
export async function deleteManagedNetwork(network: Network, deps: LibvirtDeps = {}): Promise<void> {
  if (!network.extra.managed) return;
  const virsh = deps.virsh ?? createVirsh();
  const lvName = (network.extra.libvirtName as string | undefined) ?? network.name;
  await virsh.run(['net-destroy', lvName], { allowFail: true });
  await virsh.run(['net-undefine', lvName], { allowFail: true });
}

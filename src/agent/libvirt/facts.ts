// Recording what libvirt tells us (hooks, `libvirt sync`, the event watcher) into the store: which
// store network a libvirt network is, the VM and VIF records of domains on those networks, and the
// runtime facts hooks must remember (a tap's name is only in the XML of start/started/reconnect,
// not at stopped/release; a port's owner and MAC only at port-created).
import { thisHost } from '../../core/host-identity.js';
import type { Network, Vif, Vm } from '../../core/model/types.js';
import type { StoreTx } from '../../core/store/store.js';
import { audit, newUuid, now } from '../../core/service/context.js';
import type { LibvirtDomainInfo, LibvirtInterfaceInfo, LibvirtNetworkInfo, LibvirtPortInfo } from './xml.js';

/** Doc kinds in the store's document table. */
export const DOC_PORT = 'libvirt-port';
export const DOC_TAP = 'libvirt-tap';
export const DOC_SETTINGS = 'libvirt-settings';
export const DOC_DHCP = 'libvirt-dhcp-hosts';

export interface PortDoc {
  portUuid: string;
  network: string;
  networkUuid: string;
  domainUuid: string | null;
  domainName: string | null;
  mac: string | null;
  bridge: string | null;
  createdAt: string;
}

export interface TapDoc {
  domainUuid: string;
  domainName: string;
  mac: string;
  ifname: string | null;
  network: string | null;
  bridge: string | null;
  portid: string | null;
  running: boolean;
  updatedAt: string;
}

export interface LibvirtSettings {
  /** Refuse to start (qemu `prepare`) a domain with a VIF whose effective locking is disabled. */
  refuseDisabledVifs?: boolean;
}

export const tapKey = (domainUuid: string, mac: string): string => `${domainUuid}/${mac.toLowerCase()}`;

/** The store network a libvirt network is: same UUID (ipvisor-managed), recorded libvirt UUID or
 * name, or a libvirt-driver network of the same name. */
export async function findStoreNetwork(tx: StoreTx, ref: { uuid?: string | null; name?: string | null }): Promise<Network | undefined> {
  const nets = await tx.listNetworks();
  const uuid = ref.uuid?.toLowerCase();
  if (uuid) {
    const hit = nets.find((n) => n.uuid === uuid || n.extra.libvirtUuid === uuid);
    if (hit) return hit;
  }
  if (ref.name) {
    return (
      nets.find((n) => n.driver === 'libvirt' && n.extra.libvirtName === ref.name) ??
      nets.find((n) => n.driver === 'libvirt' && n.name === ref.name && n.extra.libvirtName === undefined)
    );
  }
  return undefined;
}

/** Store networks by the libvirt network name they correspond to (one listNetworks call). */
async function networkResolver(tx: StoreTx): Promise<(name: string | null, bridge: string | null) => Network | undefined> {
  const nets = await tx.listNetworks();
  return (name, bridge) => {
    if (name) {
      const hit = nets.find((n) => n.driver === 'libvirt' && (n.extra.libvirtName ?? n.name) === name);
      if (hit) return hit;
    }
    // <interface type='bridge'> onto a bridge ipvisor knows (any driver except xapi).
    if (bridge) return nets.find((n) => n.bridge === bridge && n.driver !== 'xapi');
    return undefined;
  };
}

/** Records bridge, libvirt name and UUID of a network ipvisor knows; returns it (or undefined). */
export async function recordNetworkFacts(tx: StoreTx, info: LibvirtNetworkInfo, actor: string, active?: boolean): Promise<Network | undefined> {
  const n = await findStoreNetwork(tx, info);
  if (!n) return undefined;
  const extra = { ...n.extra, libvirtName: info.name, libvirtUuid: info.uuid, ...(active === undefined ? {} : { libvirtActive: active }) };
  const bridge = info.bridge ?? n.bridge;
  if (bridge === n.bridge && JSON.stringify(extra) === JSON.stringify(n.extra)) return n;
  const after: Network = { ...n, bridge, extra, updatedAt: now() };
  await tx.updateNetwork(after);
  // Activity flips are facts, not changes of intent: audit only when the bridge or names change.
  if (bridge !== n.bridge || n.extra.libvirtName !== info.name || n.extra.libvirtUuid !== info.uuid) {
    await audit(tx, { actor, action: 'set', kind: 'network', uuid: n.uuid, name: n.name, before: n, after });
  }
  return after;
}

/** The VM record of a domain. `runningHere`: the domain runs on this host now (start, reconnect),
 * so a VM that moved (migration, a store shared by several hosts) is recorded on this host. */
async function ensureVm(tx: StoreTx, uuid: string, name: string, actor: string, runningHere = false): Promise<Vm> {
  const existing = await tx.getVm(uuid);
  if (existing) {
    const host = runningHere ? thisHost() : existing.host;
    // libvirt allows renaming a domain: follow it when the name came from libvirt in the first
    // place (a name the user gave stays), unless the new name belongs to another VM.
    const fromLibvirt = existing.extra.libvirtDomain === existing.name;
    const newName = fromLibvirt && existing.name !== name && !(await tx.findVmByName(name)) ? name : existing.name;
    const extra = fromLibvirt || existing.extra.libvirtDomain === undefined ? { ...existing.extra, libvirtDomain: newName === name ? name : existing.extra.libvirtDomain ?? name } : existing.extra;
    if (newName === existing.name && host === existing.host && JSON.stringify(extra) === JSON.stringify(existing.extra)) return existing;
    const after = { ...existing, name: newName, host, extra, updatedAt: now() };
    await tx.updateVm(after);
    await audit(tx, { actor, action: 'set', kind: 'vm', uuid, name: newName, before: existing, after });
    return after;
  }
  const t = now();
  // A VM of the same name but another UUID (e.g. created by hand): keep names unique.
  const finalName = (await tx.findVmByName(name)) ? `${name}-${uuid.slice(0, 8)}` : name;
  const vm: Vm = { uuid, name: finalName, host: thisHost(), owner: null, extra: { libvirtDomain: name }, createdAt: t, updatedAt: t };
  await tx.insertVm(vm);
  await audit(tx, { actor, action: 'create', kind: 'vm', uuid, name: finalName, after: vm });
  return vm;
}

/** A VM the user recorded by hand (another UUID) whose VIF has this MAC on this network: the MAC
 * identifies the NIC, so that VM is the domain; no second record is made. */
async function adoptedVm(tx: StoreTx, domainUuid: string, network: Network, mac: string): Promise<Vm | undefined> {
  if (await tx.getVm(domainUuid)) return undefined;
  const vif = await tx.findVifByMac(network.uuid, mac);
  return vif ? tx.getVm(vif.vmUuid) : undefined;
}

async function ensureVif(tx: StoreTx, vm: Vm, network: Network, mac: string, device: number | null, actor: string): Promise<Vif> {
  const existing = await tx.findVifByMac(network.uuid, mac);
  if (existing) return existing;
  const vifs = await tx.listVifs(vm.uuid);
  let dev = device ?? 0;
  const used = new Set(vifs.map((v) => v.device));
  if (device === null || used.has(dev)) {
    dev = device ?? 0;
    while (used.has(dev)) dev++;
  }
  const t = now();
  const vif: Vif = { uuid: newUuid(), vmUuid: vm.uuid, device: dev, mac, networkUuid: network.uuid, locking: 'network_default', ifname: null, extra: {}, createdAt: t, updatedAt: t };
  await tx.insertVif(vif);
  await audit(tx, { actor, action: 'create', kind: 'vif', uuid: vif.uuid, name: `${vm.name}:${dev}`, after: vif });
  return vif;
}

async function setIfname(tx: StoreTx, vif: Vif, vmName: string, ifname: string | null, actor: string): Promise<Vif> {
  if (vif.ifname === ifname) return vif;
  const t = now();
  const after = { ...vif, ifname, boundAt: ifname ? t : null, updatedAt: t };
  await tx.updateVif(after);
  await audit(tx, { actor, action: ifname ? 'bind' : 'unbind', kind: 'vif', uuid: vif.uuid, name: `${vmName}:${vif.device}`, before: vif, after });
  return after;
}

export interface DomainRecordResult {
  vm: Vm | undefined;
  /** VIFs of this domain on networks ipvisor knows, with their (possibly changed) ifname. */
  vifs: Array<{ vif: Vif; changed: boolean; iface: LibvirtInterfaceInfo }>;
}

/**
 * Records a domain and its interfaces. `state` says what the XML is: 'running' (live XML with tap
 * names: start/started/reconnect/sync of a running domain), 'defined' (prepare: no tap yet) or
 * 'stopped' (stopped/release: runtime data already stripped, taps come from the tap docs).
 * VM and VIF records are created only for interfaces on networks ipvisor knows.
 */
export async function recordDomain(tx: StoreTx, dom: LibvirtDomainInfo, state: 'running' | 'defined' | 'stopped', actor: string): Promise<DomainRecordResult> {
  const resolve = await networkResolver(tx);
  const out: DomainRecordResult = { vm: undefined, vifs: [] };
  for (let i = 0; i < dom.interfaces.length; i++) {
    const iface = dom.interfaces[i];
    if (!iface.mac) continue;
    const key = tapKey(dom.uuid, iface.mac);
    const prevTap = (await tx.getDoc<TapDoc>(DOC_TAP, key))?.value;
    if (state === 'running') {
      const tap: TapDoc = { domainUuid: dom.uuid, domainName: dom.name, mac: iface.mac, ifname: iface.target, network: iface.network, bridge: iface.bridge, portid: iface.portid, running: true, updatedAt: now() };
      if (!prevTap || prevTap.ifname !== tap.ifname || !prevTap.running || prevTap.bridge !== tap.bridge || prevTap.portid !== tap.portid) await tx.putDoc(DOC_TAP, key, tap);
    } else if (state === 'stopped' && prevTap && prevTap.running) {
      await tx.putDoc(DOC_TAP, key, { ...prevTap, running: false, updatedAt: now() });
    }
    const network = resolve(iface.network, iface.bridge ?? prevTap?.bridge ?? null);
    if (!network) continue;
    out.vm ??= await adoptedVm(tx, dom.uuid, network, iface.mac);
    out.vm ??= await ensureVm(tx, dom.uuid, dom.name, actor, state === 'running');
    let vif = await ensureVif(tx, out.vm, network, iface.mac, i, actor);
    const before = vif.ifname;
    if (state === 'running' && iface.target) vif = await setIfname(tx, vif, out.vm.name, iface.target, actor);
    if (state === 'stopped') vif = await setIfname(tx, vif, out.vm.name, null, actor);
    out.vifs.push({ vif, changed: before !== vif.ifname, iface });
  }
  return out;
}

/** Records a network port (port-created); returns the VIF it belongs to if ipvisor knows it.
 * A known tap name (from an earlier started/reconnect) is bound again: after a libvirtd restart,
 * port-created is replayed for every port. */
export async function recordPort(tx: StoreTx, net: LibvirtNetworkInfo, port: LibvirtPortInfo, actor: string): Promise<{ vif: Vif | undefined; ifname: string | null }> {
  const doc: PortDoc = { portUuid: port.uuid, network: net.name, networkUuid: net.uuid, domainUuid: port.ownerUuid, domainName: port.ownerName, mac: port.mac, bridge: port.bridge, createdAt: now() };
  const prev = (await tx.getDoc<PortDoc>(DOC_PORT, port.uuid))?.value;
  if (!prev || JSON.stringify({ ...prev, createdAt: '' }) !== JSON.stringify({ ...doc, createdAt: '' })) await tx.putDoc(DOC_PORT, port.uuid, doc);
  if (!port.mac || !port.ownerUuid) return { vif: undefined, ifname: null };
  const network = await findStoreNetwork(tx, net);
  const tap = (await tx.getDoc<TapDoc>(DOC_TAP, tapKey(port.ownerUuid, port.mac)))?.value;
  const ifname = tap?.running && tap.portid === port.uuid ? tap.ifname : null;
  if (!network) return { vif: undefined, ifname };
  const vm = (await adoptedVm(tx, port.ownerUuid, network, port.mac)) ?? (await ensureVm(tx, port.ownerUuid, port.ownerName ?? port.ownerUuid, actor));
  let vif = await ensureVif(tx, vm, network, port.mac, null, actor);
  if (ifname) vif = await setIfname(tx, vif, vm.name, ifname, actor);
  return { vif, ifname };
}

/** Forgets a port (port-deleted); the VIF loses its tap (hot-unplug, or the domain stopped). */
export async function forgetPort(tx: StoreTx, net: LibvirtNetworkInfo, port: LibvirtPortInfo, actor: string): Promise<Vif | undefined> {
  const prev = (await tx.getDoc<PortDoc>(DOC_PORT, port.uuid))?.value;
  await tx.deleteDoc(DOC_PORT, port.uuid);
  const mac = port.mac ?? prev?.mac;
  const owner = port.ownerUuid ?? prev?.domainUuid;
  if (!mac || !owner) return undefined;
  const tapK = tapKey(owner, mac);
  const tap = (await tx.getDoc<TapDoc>(DOC_TAP, tapK))?.value;
  if (tap && (tap.portid === port.uuid || tap.portid === null)) await tx.putDoc(DOC_TAP, tapK, { ...tap, running: false, updatedAt: now() });
  const network = await findStoreNetwork(tx, net);
  if (!network) return undefined;
  const vif = await tx.findVifByMac(network.uuid, mac);
  if (!vif || vif.vmUuid !== owner) return vif;
  const vm = await tx.getVm(vif.vmUuid);
  return setIfname(tx, vif, vm?.name ?? owner, null, actor);
}

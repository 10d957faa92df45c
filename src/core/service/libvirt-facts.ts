// Recording what libvirt tells us (hooks, `libvirt sync`, the event watcher) into the store: which
// store network a libvirt network is, the VM and VIF records of domains on those networks, and the
// runtime facts hooks must remember (a tap's name is only in the XML of start/started/reconnect,
// not at stopped/release; a port's owner and MAC only at port-created).
import { thisHost } from '../host-identity.js';
import type { Network, Vif, Vm } from '../model/types.js';
import { DOC_QUARANTINE, quarantineKey, type QuarantinedTap } from '../model/snapshot.js';
import { factLabel, hypervisorName, isUuid, isValidIfname, normalizeMac, validateName } from '../model/validate.js';
import type { StoreTx } from '../store/store.js';
import { audit, newUuid, now } from './context.js';
import type { LibvirtDomainInfo, LibvirtInterfaceInfo, LibvirtNetworkInfo, LibvirtPortInfo } from '../model/libvirt.js';

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

/** Records bridge, libvirt name and UUID of a network ipvisor knows; returns it (or undefined).
 * A fact that fails validation is not stored (the recorded value stays) and is reported in `problems`. */
export async function recordNetworkFacts(tx: StoreTx, info: LibvirtNetworkInfo, actor: string, active?: boolean, problems: string[] = []): Promise<Network | undefined> {
  const n = await findStoreNetwork(tx, info);
  if (!n) return undefined;
  const what = `libvirt network '${factLabel(info.name, 64)}'`;
  let name: string | undefined = info.name;
  try {
    validateName(info.name, 'name');
  } catch (err) {
    problems.push(`${what}: name not recorded: ${(err as Error).message}`);
    name = n.extra.libvirtName as string | undefined;
  }
  const uuid = isUuid(info.uuid) ? info.uuid.toLowerCase() : (n.extra.libvirtUuid as string | undefined);
  if (!isUuid(info.uuid)) problems.push(`${what}: uuid '${factLabel(info.uuid, 64)}' is not a UUID; not recorded`);
  let bridge = info.bridge ?? n.bridge;
  if (info.bridge !== null && !isValidIfname(info.bridge)) {
    problems.push(`${what}: bridge '${factLabel(info.bridge, 64)}' is not a valid interface name; not recorded`);
    bridge = n.bridge;
  }
  const extra = { ...n.extra, libvirtName: name, libvirtUuid: uuid, ...(active === undefined ? {} : { libvirtActive: active }) };
  if (bridge === n.bridge && JSON.stringify(extra) === JSON.stringify(n.extra)) return n;
  const after: Network = { ...n, bridge, extra, updatedAt: now() };
  await tx.updateNetwork(after);
  // Activity flips are facts, not changes of intent: audit only when the bridge or names change.
  if (bridge !== n.bridge || n.extra.libvirtName !== name || n.extra.libvirtUuid !== uuid) {
    await audit(tx, { actor, action: 'set', kind: 'network', uuid: n.uuid, name: n.name, before: n, after });
  }
  return after;
}

/** The VM record of a domain. `runningHere`: the domain runs on this host now (start, reconnect),
 * so a VM that moved (migration, a store shared by several hosts) is recorded on this host.
 * `hv`: the domain's name as validated (hypervisorName): a name that breaks the naming rules is
 * recorded as vm-<uuid>, with libvirt's name kept escaped in extra.libvirtDomain. */
async function ensureVm(tx: StoreTx, uuid: string, hv: { name: string; label: string | null }, actor: string, runningHere = false, here = thisHost()): Promise<Vm> {
  const existing = await tx.getVm(uuid);
  const name = hv.name;
  const libvirtDomain = hv.label ?? hv.name;
  if (existing) {
    const host = runningHere ? here : existing.host;
    // libvirt allows renaming a domain: follow it when the name came from libvirt in the first
    // place (a name the user gave stays), unless the new name belongs to another VM.
    const fromLibvirt = existing.extra.libvirtDomain === existing.name || existing.name === `vm-${uuid}`;
    const newName = fromLibvirt && existing.name !== name && !(await tx.findVmByName(name)) ? name : existing.name;
    const extra = fromLibvirt || existing.extra.libvirtDomain === undefined ? { ...existing.extra, libvirtDomain: newName === name ? libvirtDomain : existing.extra.libvirtDomain ?? libvirtDomain } : existing.extra;
    if (newName === existing.name && host === existing.host && JSON.stringify(extra) === JSON.stringify(existing.extra)) return existing;
    const after = { ...existing, name: newName, host, extra, updatedAt: now() };
    await tx.updateVm(after);
    await audit(tx, { actor, action: 'set', kind: 'vm', uuid, name: newName, before: existing, after });
    return after;
  }
  const t = now();
  // A VM of the same name but another UUID (e.g. created by hand): keep names unique.
  const finalName = (await tx.findVmByName(name)) ? `${name.slice(0, 119)}-${uuid.slice(0, 8)}` : name;
  const vm: Vm = { uuid, name: finalName, host: here, owner: null, extra: { libvirtDomain }, createdAt: t, updatedAt: t };
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
  /** Facts that failed validation, one escaped line each (for the log). */
  problems: string[];
  /** Networks whose quarantined taps changed (a tap disabled or let go): they need a full apply. */
  quarantineChanged: string[];
}

/** Validated facts of one interface; null fields are absent or invalid (then named in `problems`). */
function checkInterface(iface: LibvirtInterfaceInfo, where: string, problems: string[]): { mac: string | null; macError: string | null; bridge: string | null; target: string | null; portid: string | null } {
  let mac: string | null = null;
  let macError: string | null = null;
  if (iface.mac !== null) {
    try {
      mac = normalizeMac(iface.mac, 'mac');
    } catch (err) {
      macError = (err as Error).message;
    }
  }
  const ifnameOrNull = (v: string | null, field: string): string | null => {
    if (v === null || isValidIfname(v)) return v;
    problems.push(`${where}: ${field} '${factLabel(v, 64)}' is not a valid interface name; ignored`);
    return null;
  };
  return {
    mac,
    macError,
    bridge: ifnameOrNull(iface.bridge, 'bridge'),
    target: ifnameOrNull(iface.target, 'target dev'),
    portid: iface.portid !== null && isUuid(iface.portid) ? iface.portid.toLowerCase() : null,
  };
}

/**
 * Records a domain and its interfaces. `state` says what the XML is: 'running' (live XML with tap
 * names: start/started/reconnect/sync of a running domain), 'defined' (prepare: no tap yet) or
 * 'stopped' (stopped/release: runtime data already stripped, taps come from the tap docs).
 * Nothing is recorded for interfaces on networks ipvisor does not know (no VM, no VIF, no tap doc).
 * Every fact is validated first: a name that breaks the rules records the VM as vm-<uuid>; a tap
 * on a managed network whose facts cannot be recorded (invalid MAC, invalid domain UUID) is
 * quarantined, enforced as `disabled`, until they can be. `host`: where the domain runs (this
 * machine for a hook; the reporting agent's host when the control plane records an agent's fact).
 */
export async function recordDomain(tx: StoreTx, dom: LibvirtDomainInfo, state: 'running' | 'defined' | 'stopped', actor: string, host = thisHost()): Promise<DomainRecordResult> {
  const resolve = await networkResolver(tx);
  const out: DomainRecordResult = { vm: undefined, vifs: [], problems: [], quarantineChanged: [] };
  const domUuid = isUuid(dom.uuid) ? dom.uuid.toLowerCase() : null;
  const owner = `domain ${factLabel(dom.uuid, 64)}`;
  const where = `domain '${factLabel(dom.name, 64)}' (${factLabel(dom.uuid, 64)})`;
  if (!domUuid) out.problems.push(`${where}: uuid is not a UUID; its interfaces are not recorded`);
  const hv = domUuid ? hypervisorName(dom.name, domUuid, 'vm') : null;
  if (hv?.reason && dom.interfaces.length) out.problems.push(`${where}: name not usable (${hv.reason}); recorded as ${hv.name}`);
  // A domain that stopped lets go of its quarantined taps (the taps are gone with it).
  if (state === 'stopped') {
    for (const d of await tx.listDocs<QuarantinedTap>(DOC_QUARANTINE)) {
      if (d.value.owner !== owner || d.value.host !== host) continue;
      await tx.deleteDoc(DOC_QUARANTINE, d.key);
      out.quarantineChanged.push(d.value.networkUuid);
    }
  }
  for (let i = 0; i < dom.interfaces.length; i++) {
    const iface = dom.interfaces[i];
    const f = checkInterface(iface, `${where} interface ${i}`, out.problems);
    if (iface.mac === null) continue;
    const key = f.mac && domUuid ? tapKey(domUuid, f.mac) : null;
    // Only interfaces on networks ipvisor knows are recorded (a domain with 100,000 interfaces
    // elsewhere writes nothing, and reads nothing when their XML names the bridge).
    let prevTap: TapDoc | undefined;
    let network = resolve(iface.network, f.bridge);
    if (!network && f.bridge === null && key) {
      // stopped/release XML has lost the bridge of a type='bridge' interface: the tap we remembered has it
      prevTap = (await tx.getDoc<TapDoc>(DOC_TAP, key))?.value;
      network = resolve(iface.network, prevTap?.bridge ?? null);
    }
    if (!network) continue;
    if (key && prevTap === undefined) prevTap = (await tx.getDoc<TapDoc>(DOC_TAP, key))?.value;
    if (!key || !f.mac || !domUuid) {
      const reason = f.macError ? `its MAC cannot be recorded (${f.macError})` : 'its domain UUID is not a UUID';
      if (state === 'running' && f.target) {
        const q: QuarantinedTap = { host, ifname: f.target, networkUuid: network.uuid, owner, reason: factLabel(reason, 200), since: now() };
        const qKey = quarantineKey(q.host, f.target);
        const prev = (await tx.getDoc<QuarantinedTap>(DOC_QUARANTINE, qKey))?.value;
        if (!prev || prev.owner !== q.owner || prev.reason !== q.reason || prev.networkUuid !== q.networkUuid) {
          await tx.putDoc(DOC_QUARANTINE, qKey, q);
          out.quarantineChanged.push(network.uuid);
        }
        out.problems.push(`${where} interface ${i}: tap ${f.target} on network ${network.name} is enforced as disabled until its facts can be recorded: ${reason}`);
      } else {
        out.problems.push(`${where} interface ${i} on network ${network.name}: not recorded: ${reason}`);
      }
      continue;
    }
    if (state === 'running') {
      const tap: TapDoc = { domainUuid: domUuid, domainName: hv!.label ?? hv!.name, mac: f.mac, ifname: f.target, network: network.name, bridge: f.bridge, portid: f.portid, running: true, updatedAt: now() };
      if (!prevTap || prevTap.ifname !== tap.ifname || !prevTap.running || prevTap.bridge !== tap.bridge || prevTap.portid !== tap.portid) await tx.putDoc(DOC_TAP, key, tap);
      // valid facts for a tap that was quarantined: it is enforced through its VIF from now on
      if (f.target && (await tx.getDoc<QuarantinedTap>(DOC_QUARANTINE, quarantineKey(host, f.target)))) {
        await tx.deleteDoc(DOC_QUARANTINE, quarantineKey(host, f.target));
        out.quarantineChanged.push(network.uuid);
      }
    } else if (state === 'stopped' && prevTap && prevTap.running) {
      await tx.putDoc(DOC_TAP, key, { ...prevTap, running: false, updatedAt: now() });
    }
    out.vm ??= await adoptedVm(tx, domUuid, network, f.mac);
    out.vm ??= await ensureVm(tx, domUuid, hv!, actor, state === 'running', host);
    let vif = await ensureVif(tx, out.vm, network, f.mac, i, actor);
    const before = vif.ifname;
    if (state === 'running' && f.target) vif = await setIfname(tx, vif, out.vm.name, f.target, actor);
    if (state === 'stopped') vif = await setIfname(tx, vif, out.vm.name, null, actor);
    out.vifs.push({ vif, changed: before !== vif.ifname, iface });
  }
  out.quarantineChanged = [...new Set(out.quarantineChanged)];
  return out;
}

/** Records a network port (port-created) of a network ipvisor knows; returns the VIF it belongs to.
 * A known tap name (from an earlier started/reconnect) is bound again: after a libvirtd restart,
 * port-created is replayed for every port. Ports of other networks and ports whose facts fail
 * validation are not recorded (`problems` says why). */
export async function recordPort(tx: StoreTx, net: LibvirtNetworkInfo, port: LibvirtPortInfo, actor: string, problems: string[] = []): Promise<{ vif: Vif | undefined; ifname: string | null }> {
  const network = await findStoreNetwork(tx, net);
  if (!network) return { vif: undefined, ifname: null };
  const where = `port ${factLabel(port.uuid, 64)} of network ${network.name}`;
  if (!isUuid(port.uuid)) {
    problems.push(`${where}: port uuid is not a UUID; not recorded`);
    return { vif: undefined, ifname: null };
  }
  let mac: string | null = null;
  if (port.mac !== null) {
    try {
      mac = normalizeMac(port.mac, 'mac');
    } catch (err) {
      problems.push(`${where}: not recorded: ${(err as Error).message}`);
      return { vif: undefined, ifname: null };
    }
  }
  const ownerUuid = port.ownerUuid !== null && isUuid(port.ownerUuid) ? port.ownerUuid.toLowerCase() : null;
  if (port.ownerUuid !== null && !ownerUuid) problems.push(`${where}: owner uuid '${factLabel(port.ownerUuid, 64)}' is not a UUID; ignored`);
  const bridge = port.bridge !== null && isValidIfname(port.bridge) ? port.bridge : null;
  if (port.bridge !== null && !bridge) problems.push(`${where}: bridge '${factLabel(port.bridge, 64)}' is not a valid interface name; ignored`);
  const hv = ownerUuid ? hypervisorName(port.ownerName ?? ownerUuid, ownerUuid, 'vm') : null;
  const doc: PortDoc = { portUuid: port.uuid, network: network.name, networkUuid: network.uuid, domainUuid: ownerUuid, domainName: hv ? hv.label ?? hv.name : null, mac, bridge, createdAt: now() };
  const prev = (await tx.getDoc<PortDoc>(DOC_PORT, port.uuid))?.value;
  if (!prev || JSON.stringify({ ...prev, createdAt: '' }) !== JSON.stringify({ ...doc, createdAt: '' })) await tx.putDoc(DOC_PORT, port.uuid, doc);
  if (!mac || !ownerUuid || !hv) return { vif: undefined, ifname: null };
  const tap = (await tx.getDoc<TapDoc>(DOC_TAP, tapKey(ownerUuid, mac)))?.value;
  const ifname = tap?.running && tap.portid === port.uuid ? tap.ifname : null;
  const vm = (await adoptedVm(tx, ownerUuid, network, mac)) ?? (await ensureVm(tx, ownerUuid, hv, actor));
  let vif = await ensureVif(tx, vm, network, mac, null, actor);
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

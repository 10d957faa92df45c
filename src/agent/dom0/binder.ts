// The dom0 binder: vif-ip-binder's job, done right. For each configured (VM, private network)
// binding, when the VM runs, its network's bridge (recreated by XAPI at every VM start) gets dom0's
// addresses back, the management address is narrowed to /32 (/128), ipvisor's default route goes
// through the binding's gateway, and once the network storage answers ping its unplugged PBDs are
// plugged again. Every event.from batch (and every idle timeout) re-checks the bindings, so a bridge
// recreated without a VM event is repaired too. Unexpected records are logged, never fatal.
import { mkdirSync, readFileSync, renameSync, writeFileSync } from 'node:fs';
import { readSecretLine } from '../../core/model/secret-file.js';
import { factLabel, isValidIfname } from '../../core/model/validate.js';
import { dirname } from 'node:path';
import { isIP } from 'node:net';
import { XapiClient, XapiError, NULL_REF } from '../../server/xapi/client.js';
import { XapiCache, isGuestVm, xint, type XRecord } from '../../server/xapi/cache.js';
import type { Dom0Binding, Dom0Config } from './config.js';
import { Dom0Ip } from './ip.js';
import type { HostRunner } from '../host/exec.js';

const UUID_RE = /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/i;
const BINDER_CLASSES = ['pool', 'host', 'VM', 'VIF', 'network', 'PBD', 'SR'] as const;

export interface Dom0BinderDeps {
  runner: HostRunner;
  /** Password when the config names a file (read once at start). */
  password?: string;
  log?: (line: string) => void;
  /** Read /etc/xensource-inventory for this host's UUID. */
  inventoryPath?: string;
  originator?: string;
}

export interface BindingStatus {
  vm: string;
  network: string;
  state: 'waiting-vm' | 'no-vif' | 'no-bridge' | 'bound' | 'ambiguous' | 'not-found';
  bridge?: string;
}

const familyOf = (cidr: string): 4 | 6 => (isIP(cidr.split('/')[0]!) === 6 ? 6 : 4);
const hostPart = (cidr: string): string => cidr.split('/')[0]!;
const sleep = (ms: number, signal?: AbortSignal): Promise<void> =>
  new Promise((resolve) => {
    if (signal?.aborted) return resolve();
    const t = setTimeout(done, ms);
    function done(): void {
      clearTimeout(t);
      signal?.removeEventListener('abort', done);
      resolve();
    }
    signal?.addEventListener('abort', done, { once: true });
  });

/** What the binder changed on dom0, the same shape as host/iproute2.ts OwnedHostState's parts. */
export interface Dom0State {
  addresses: Array<{ dev: string; cidr: string }>;
  narrowed: Array<{ dev: string; from: string; to: string }>;
}

/** The XAPI password file: private, regular, not a link (core/model/secret-file.ts). */
export function readPasswordFile(path: string): string {
  return readSecretLine(path, 'xapi.passwordFile');
}

export class Dom0Binder {
  readonly cache = new XapiCache(BINDER_CLASSES);
  readonly ip: Dom0Ip;
  readonly status = new Map<number, BindingStatus>();
  private client: XapiClient | null = null;
  private readonly log: (line: string) => void;
  private readonly said = new Set<string>();
  /** PBD recovery runs after an address was (re)added, and once at start. */
  private recoveryWanted = true;
  private recovery: Promise<void> | null = null;
  private hostRef: string | null = null;
  /** Resolves each time a reconcile pass finishes (tests wait on it). */
  passes = 0;
  state: Dom0State = { addresses: [], narrowed: [] };

  constructor(
    readonly config: Dom0Config,
    private readonly deps: Dom0BinderDeps,
  ) {
    this.ip = new Dom0Ip(deps.runner, config.ipBinary, config.pingBinary);
    this.log = deps.log ?? ((l) => process.stderr.write(`${new Date().toISOString()} ipvisor-dom0: ${l}\n`));
    if (config.stateFile) {
      try {
        const s = JSON.parse(readFileSync(config.stateFile, 'utf8')) as Partial<Dom0State>;
        this.state = { addresses: Array.isArray(s.addresses) ? s.addresses : [], narrowed: Array.isArray(s.narrowed) ? s.narrowed : [] };
      } catch {
        // no state yet
      }
    }
  }

  private saveState(): void {
    const path = this.config.stateFile;
    if (!path) return;
    mkdirSync(dirname(path), { recursive: true, mode: 0o700 });
    writeFileSync(`${path}.tmp`, JSON.stringify(this.state, null, 2) + '\n', { mode: 0o600 });
    renameSync(`${path}.tmp`, path);
  }

  /** Undoes what the state file records: ipvisor's default routes, added addresses, narrowings. */
  async teardown(): Promise<string[]> {
    const done: string[] = [];
    for (const fam of [4, 6] as const) {
      for (const r of await this.ip.defaultRoutes(fam)) {
        if (r.proto !== '250') continue;
        await this.ip.delRoute(fam, r);
        done.push(`- route ${r.text}`);
      }
    }
    for (const a of this.state.addresses) {
      const have = await this.ip.addresses(a.dev);
      if (!have?.includes(a.cidr)) continue;
      await this.ip.delAddress(a.dev, a.cidr);
      done.push(`- address ${a.cidr} dev ${a.dev}`);
    }
    for (const n of this.state.narrowed) {
      const have = await this.ip.addresses(n.dev);
      if (have === null) continue;
      if (familyOf(n.from) === 4) {
        if (!have.includes(n.from)) await this.ip.addAddress(n.dev, n.from);
        if (have.includes(n.to)) await this.ip.delAddress(n.dev, n.to);
      } else {
        if (have.includes(n.to)) await this.ip.delAddress(n.dev, n.to);
        if (!have.includes(n.from)) await this.ip.addAddress(n.dev, n.from);
      }
      done.push(`~ address ${n.to} dev ${n.dev} restored to ${n.from}`);
    }
    this.state = { addresses: [], narrowed: [] };
    this.saveState();
    return done;
  }

  /** Logs a message once until `forget(key)` (so a waiting state does not flood the log). */
  private once(key: string, line: string): void {
    if (this.said.has(key)) return;
    this.said.add(key);
    this.log(line);
  }

  private forget(prefix: string): void {
    for (const k of this.said) if (k.startsWith(prefix)) this.said.delete(k);
  }

  private newClient(): XapiClient {
    const x = this.config.xapi;
    const password = x.password ?? this.deps.password ?? (x.passwordFile ? readPasswordFile(x.passwordFile) : '');
    return new XapiClient({ url: x.url, user: x.user, password, insecure: x.insecure, originator: this.deps.originator ?? 'ipvisor-dom0' });
  }

  /** Runs until the signal aborts: (re)connects, resyncs, and follows events. */
  async run(signal: AbortSignal): Promise<void> {
    while (!signal.aborted) {
      this.client = this.newClient();
      try {
        await this.session(signal);
      } catch (err) {
        if (signal.aborted) break;
        const fatal = err instanceof XapiError && err.xapiCode === 'SESSION_AUTHENTICATION_FAILED';
        this.log(`${fatal ? 'login refused' : 'connection lost'}: ${(err as Error).message}; retrying in ${this.config.retryDelayMs} ms`);
      } finally {
        await this.client.logout();
      }
      await sleep(this.config.retryDelayMs, signal);
    }
    await this.recovery?.catch(() => undefined);
  }

  private async session(signal: AbortSignal): Promise<void> {
    const client = this.client!;
    await client.login();
    this.log(`connected to ${client.url.startsWith('unix:') ? 'local XAPI' : client.url}`);
    const classes = BINDER_CLASSES.map((c) => c.toLowerCase());
    // An empty token returns every object as `add`: the first batch is the full state.
    let token = '';
    let first = true;
    while (!signal.aborted) {
      let batch;
      try {
        // A bridge XAPI has not created yet is polled every second; otherwise events wake us.
        const waitingBridge = [...this.status.values()].some((st) => st.state === 'no-bridge');
        batch = await client.eventFrom(classes, token, first ? 1 : waitingBridge ? Math.min(1, this.config.eventTimeout) : this.config.eventTimeout);
      } catch (err) {
        if (err instanceof XapiError && ['EVENTS_LOST', 'EVENT_FROM_TOKEN_PARSE_FAILURE', 'SESSION_INVALID'].includes(err.xapiCode)) {
          this.log(`${err.xapiCode}: resyncing`);
          token = '';
          first = true;
          if (err.xapiCode === 'SESSION_INVALID') await client.login();
          continue;
        }
        throw err;
      }
      if (first) for (const c of BINDER_CLASSES) this.cache.table(c).clear();
      token = batch.token;
      this.cache.applyEvents(Array.isArray(batch.events) ? batch.events : []);
      if (first) {
        first = false;
        this.resolveHost();
        if (this.config.recoverHost) await this.recoverHost(signal);
      }
      await this.reconcile();
    }
  }

  private resolveHost(): void {
    const hosts = this.cache.all('host');
    let uuid = this.config.hostUuid;
    if (!uuid) {
      try {
        const inv = readFileSync(this.deps.inventoryPath ?? '/etc/xensource-inventory', 'utf8');
        uuid = /^INSTALLATION_UUID=['"]?([0-9a-f-]+)/m.exec(inv)?.[1];
      } catch {
        // not in a real dom0 (tests): fall back to the only host
      }
    }
    const found = uuid ? hosts.find(([, h]) => h.uuid === uuid) : hosts.length === 1 ? hosts[0] : undefined;
    this.hostRef = found?.[0] ?? null;
    if (!this.hostRef) this.once('host', `cannot tell which host this is (${hosts.length} hosts; set hostUuid)`);
  }

  /** Opt-in: enable a host that came up disabled (not one an admin put in maintenance) and start
   * its auto_poweron VMs in `order`, waiting each VM's start_delay. */
  private async recoverHost(signal: AbortSignal): Promise<void> {
    const host = this.cache.get('host', this.hostRef);
    if (!host || host.enabled !== false) return;
    if (host.other_config?.['xo:maintenanceState'] !== undefined) {
      this.log(`host ${host.name_label} is in maintenance (Xen Orchestra): left disabled`);
      return;
    }
    try {
      await this.client!.call('host.enable', this.hostRef);
      this.log(`host ${host.name_label} was disabled: enabled`);
    } catch (err) {
      this.log(`host.enable failed: ${(err as Error).message}`);
      return;
    }
    const vms = this.cache
      .all('VM')
      .filter(([, vm]) => isGuestVm(vm) && vm.power_state === 'Halted' && String(vm.other_config?.auto_poweron ?? '').toLowerCase() === 'true')
      .sort(([, a], [, b]) => xint(a.order, 0) - xint(b.order, 0) || String(a.name_label).localeCompare(String(b.name_label)));
    for (const [ref, vm] of vms) {
      if (signal.aborted) return;
      try {
        await this.client!.call('VM.start', ref, false, false);
        this.log(`started auto_poweron VM ${vm.name_label}`);
      } catch (err) {
        this.log(`VM.start ${vm.name_label} failed: ${(err as Error).message}`);
      }
      const delay = Number(vm.start_delay ?? 0);
      if (delay > 0) await sleep(Math.min(delay, 3600) * 1000, signal);
    }
  }

  private resolve(cls: 'VM' | 'network', key: string): { ref: string; rec: XRecord } | 'ambiguous' | undefined {
    const all = this.cache.all(cls).filter(([, r]) => (cls === 'VM' ? isGuestVm(r) : true));
    const hits = UUID_RE.test(key) ? all.filter(([, r]) => r.uuid === key) : all.filter(([, r]) => r.name_label === key);
    if (hits.length > 1) return 'ambiguous';
    return hits[0] ? { ref: hits[0][0], rec: hits[0][1] } : undefined;
  }

  /** One pass over every binding; safe to call any time. */
  async reconcile(): Promise<void> {
    await this.narrowManagement();
    let added = false;
    for (const [i, b] of this.config.bindings.entries()) {
      try {
        added = (await this.reconcileBinding(i, b)) || added;
      } catch (err) {
        this.log(`binding ${b.vm}/${b.network}: ${(err as Error).message}`);
      }
    }
    if (added) this.recoveryWanted = true;
    if (this.recoveryWanted && this.config.netSRs.length > 0 && !this.recovery && this.anyBound()) {
      this.recoveryWanted = false;
      this.recovery = this.recoverStorage()
        .catch((err) => this.log(`storage recovery: ${(err as Error).message}`))
        .finally(() => {
          this.recovery = null;
        });
    }
    this.passes += 1;
  }

  private anyBound(): boolean {
    return [...this.status.values()].some((s) => s.state === 'bound');
  }

  /** Waits for the background storage recovery (tests). */
  async settled(): Promise<void> {
    while (this.recovery) await this.recovery;
  }

  private async narrowManagement(): Promise<void> {
    for (const m of this.config.management) {
      const fam = familyOf(m.address);
      const narrow = `${hostPart(m.address)}/${fam === 4 ? 32 : 128}`;
      if (narrow === m.address) continue;
      const have = await this.ip.addresses(m.bridge);
      if (have === null) {
        this.once(`mgmt:${m.bridge}`, `management bridge ${m.bridge} does not exist`);
        continue;
      }
      if (!have.includes(m.address)) {
        if (!have.includes(narrow)) this.once(`mgmt-missing:${m.address}`, `management address ${m.address} is not on ${m.bridge}; nothing to narrow`);
        continue;
      }
      // Recorded before the change (the only address ipvisor changes without owning it); --teardown restores it.
      this.log(`narrowing management address ${m.address} on ${m.bridge} to ${narrow}`);
      if (!this.state.narrowed.some((n) => n.dev === m.bridge && n.from === m.address)) {
        this.state.narrowed.push({ dev: m.bridge, from: m.address, to: narrow });
        this.saveState();
      }
      if (fam === 4) {
        // IPv4 allows the same address with two prefix lengths: add first so dom0 never loses it.
        if (!have.includes(narrow)) await this.ip.addAddress(m.bridge, narrow);
        await this.ip.delAddress(m.bridge, m.address);
      } else {
        await this.ip.delAddress(m.bridge, m.address);
        await this.ip.addAddress(m.bridge, narrow);
      }
    }
  }

  /** Returns true when it added an address. */
  private async reconcileBinding(i: number, b: Dom0Binding): Promise<boolean> {
    const key = `b${i}:`;
    const set = (state: BindingStatus['state'], bridge?: string): void => {
      const prev = this.status.get(i)?.state;
      this.status.set(i, { vm: b.vm, network: b.network, state, bridge });
      if (prev !== state) this.forget(key);
    };
    const vm = this.resolve('VM', b.vm);
    const net = this.resolve('network', b.network);
    if (vm === 'ambiguous' || net === 'ambiguous') {
      set('ambiguous');
      this.once(`${key}amb`, `binding ${b.vm}/${b.network}: several ${vm === 'ambiguous' ? 'VMs' : 'networks'} have that name; use the UUID`);
      return false;
    }
    if (!vm || !net) {
      set('not-found');
      this.once(`${key}nf`, `binding ${b.vm}/${b.network}: no ${!vm ? 'VM' : 'network'} with that name or UUID`);
      return false;
    }
    if (vm.rec.power_state !== 'Running' || (this.hostRef && vm.rec.resident_on !== NULL_REF && vm.rec.resident_on !== this.hostRef)) {
      set('waiting-vm');
      this.once(`${key}wait`, `binding ${b.vm}/${b.network}: waiting for the VM to run on this host`);
      return false;
    }
    const vifs = (Array.isArray(vm.rec.VIFs) ? vm.rec.VIFs : []).map((r: string) => this.cache.get('VIF', r)).filter((v: XRecord | undefined): v is XRecord => !!v && v.network === net.ref);
    if (vifs.length === 0) {
      set('no-vif');
      this.once(`${key}novif`, `binding ${b.vm}/${b.network}: the VM has no VIF on that network`);
      return false;
    }
    // a fact from XAPI: used only when it is a valid interface name (model/validate.ts)
    const bridge = isValidIfname(net.rec.bridge) ? net.rec.bridge : '';
    if (!bridge && typeof net.rec.bridge === 'string' && net.rec.bridge !== '') this.once(`${key}badbr`, `binding ${b.vm}/${b.network}: XAPI's bridge name '${factLabel(net.rec.bridge, 64)}' is not a valid interface name; ignored`);
    const have = bridge ? await this.ip.addresses(bridge) : null;
    if (have === null) {
      set('no-bridge', bridge);
      this.once(`${key}nobr`, `binding ${b.vm}/${b.network}: bridge ${bridge || '(none)'} is not up yet`);
      return false;
    }
    let added = false;
    for (const a of b.addresses) {
      if (have.includes(a)) continue;
      await this.ip.addAddress(bridge, a);
      if (!this.state.addresses.some((x) => x.dev === bridge && x.cidr === a)) {
        this.state.addresses.push({ dev: bridge, cidr: a });
        this.saveState();
      }
      this.log(`added ${a} to ${bridge} (VM ${vm.rec.name_label} domid ${xint(vm.rec.domid)})`);
      added = true;
    }
    for (const [fam, gw] of [[4, b.gateway4], [6, b.gateway6]] as const) {
      if (gw) await this.ensureDefaultRoute(fam, gw, bridge);
    }
    set('bound', bridge);
    return added;
  }

  private async ensureDefaultRoute(fam: 4 | 6, via: string, dev: string): Promise<void> {
    const routes = await this.ip.defaultRoutes(fam);
    const metric = this.config.routeMetric;
    const ours = routes.find((r) => r.via === via && r.dev === dev && r.metric === metric);
    for (const r of routes) {
      if (r === ours) continue;
      const mine = r.proto === '250';
      // A stale route of ours (other gateway/bridge/metric), or a foreign one that would win.
      if (mine || (this.config.replaceForeignDefault && r.metric <= metric)) {
        this.log(`removing default route "${r.text}"${mine ? '' : ' (foreign; replaceForeignDefault)'}`);
        await this.ip.delRoute(fam, r);
      } else if (r.metric <= metric) {
        this.once(`route:${r.text}`, `a foreign default route wins over ipvisor's: "${r.text}"`);
      }
    }
    if (!ours) {
      await this.ip.replaceDefault(fam, via, dev, metric);
      this.log(`default route via ${via} dev ${dev} metric ${metric}`);
    }
  }

  /** Pings each network SR's target, then plugs that SR's unplugged PBDs on this host. */
  private async recoverStorage(): Promise<void> {
    for (const { sr, target } of this.config.netSRs) {
      const { tries, timeoutSeconds } = this.config.reachability;
      let up = false;
      for (let t = 0; t < tries && !up; t++) up = await this.ip.pingOnce(target, timeoutSeconds);
      if (!up) {
        this.log(`SR ${sr}: ${target} did not answer after ${tries} tries; PBDs left unplugged`);
        this.recoveryWanted = true;
        continue;
      }
      await this.plugPbds(sr);
    }
  }

  private async plugPbds(srUuid: string): Promise<void> {
    const srEntry = this.cache.all('SR').find(([, s]) => s.uuid === srUuid);
    if (!srEntry) {
      this.log(`SR ${srUuid} not found`);
      return;
    }
    const [srRef, srRec] = srEntry;
    const pbds = this.cache.all('PBD').filter(([, p]) => p.SR === srRef && (!this.hostRef || p.host === this.hostRef));
    for (const [ref, pbd] of pbds) {
      if (pbd.currently_attached === true) continue;
      // Describe the device whatever its shape (NFS has server/serverpath, CIFS/ISO location/type).
      const dc = pbd.device_config && typeof pbd.device_config === 'object' ? (pbd.device_config as Record<string, unknown>) : {};
      const where = dc.location ?? (dc.server !== undefined ? `${String(dc.server)}:${String(dc.serverpath ?? '')}` : Object.keys(dc).join(','));
      try {
        await this.client!.call('PBD.plug', ref);
        this.log(`plugged PBD ${pbd.uuid} of SR ${srRec.name_label ?? srUuid} (${srRec.type ?? '?'} ${String(where)})`);
      } catch (err) {
        this.log(`PBD.plug ${pbd.uuid} failed: ${(err as Error).message}`);
        this.recoveryWanted = true;
      }
    }
  }
}

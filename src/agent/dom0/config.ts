// The dom0 binder's configuration: its own multi-binding form, and the vif-ip-binder.json it replaces
// (converted on load or by `ipvisor import vif-ip-binder`). Store-free and pure.
import { isIP } from 'node:net';
import { invalid } from '../../core/model/errors.js';
import { validateIfname, validateName } from '../../core/model/validate.js';

export interface Dom0Binding {
  /** VM name_label or UUID (a UUID is never ambiguous). */
  vm: string;
  /** Network name_label or UUID; its bridge gets the addresses. */
  network: string;
  /** "ADDR/LEN", IPv4 and/or IPv6. */
  addresses: string[];
  /** Default route through this binding, per family. */
  gateway4?: string;
  gateway6?: string;
}

export interface Dom0Config {
  xapi: { url: string; user: string; password?: string; passwordFile?: string; insecure?: boolean; insecureHttp?: boolean };
  /** Management addresses to narrow to /32 (/128) so their subnet routes through a binding's bridge. */
  management: Array<{ bridge: string; address: string }>;
  bindings: Dom0Binding[];
  /** Network SRs to re-plug once `target` answers ping. */
  netSRs: Array<{ sr: string; target: string }>;
  reachability: { tries: number; timeoutSeconds: number };
  /** Opt-in: enable a host that came up disabled and start its auto_poweron VMs in order. */
  recoverHost: boolean;
  hostUuid?: string;
  /** event.from timeout, seconds. */
  eventTimeout: number;
  ipBinary: string;
  pingBinary: string;
  routeMetric: number;
  /** Delete a foreign default route that would win over ours (what vif-ip-binder always did). */
  replaceForeignDefault: boolean;
  retryDelayMs: number;
  /** What the binder added or narrowed, kept for `--teardown` (null: not kept). */
  stateFile: string | null;
}

export const DOM0_DEFAULT_STATE_PATH = '/var/lib/ipvisor/dom0-state.json';
export const DOM0_DEFAULT_CONFIG_PATH = '/etc/ipvisor/dom0.json';
export const DOM0_LOCAL_XAPI = 'unix:/var/lib/xcp/xapi';

type Obj = Record<string, unknown>;

function isObj(v: unknown): v is Obj {
  return typeof v === 'object' && v !== null && !Array.isArray(v);
}

export function checkCidr(field: string, v: unknown): string {
  if (typeof v !== 'string') throw invalid(field, 'must be a string "ADDR/LEN"');
  const m = /^([^/]+)\/(\d{1,3})$/.exec(v.trim());
  const fam = m ? isIP(m[1]!) : 0;
  if (!m || fam === 0 || Number(m[2]) > (fam === 4 ? 32 : 128)) throw invalid(field, `'${v}' is not an address with a prefix length (ADDR/LEN)`);
  return `${m[1]}/${Number(m[2])}`;
}

function checkIp(field: string, v: unknown, family?: 4 | 6): string {
  if (typeof v !== 'string' || isIP(v) === 0 || (family && isIP(v) !== family)) throw invalid(field, `'${String(v)}' is not an IPv${family ?? '4/6'} address`);
  return v;
}

function str(field: string, v: unknown): string {
  if (typeof v !== 'string' || v.trim() === '') throw invalid(field, 'must be a non-empty string');
  return v.trim();
}

function num(field: string, v: unknown, def: number, min: number): number {
  if (v === undefined) return def;
  const n = typeof v === 'string' ? Number(v) : v;
  if (typeof n !== 'number' || !Number.isFinite(n) || n < min) throw invalid(field, `must be a number >= ${min}`);
  return n;
}

/** True for the original vif-ip-binder.json shape. */
export function isVifIpBinderConfig(raw: unknown): boolean {
  return isObj(raw) && ('vmName' in raw || 'sspnName' in raw || 'brName' in raw);
}

/** vif-ip-binder.json -> the multi-binding form (one binding; the same address is narrowed on the
 * management bridge and added with its prefix on the private network's bridge, as the original did). */
export function convertVifIpBinderConfig(raw: unknown): Obj {
  if (!isObj(raw)) throw invalid('config', 'must be a JSON object');
  for (const k of ['user', 'password', 'vmName', 'sspnName', 'brName', 'address']) {
    if (typeof raw[k] !== 'string' || raw[k] === '') throw invalid(k, 'is required by vif-ip-binder.json');
  }
  const address = checkCidr('address', raw.address);
  const fam = isIP(address.split('/')[0]!);
  const netSRs: Array<{ sr: string; target: string }> = [];
  if (raw.netSRs !== undefined) {
    if (!Array.isArray(raw.netSRs)) throw invalid('netSRs', 'must be a list of {"<SR uuid>": "<IP to ping>"}');
    raw.netSRs.forEach((entry, i) => {
      if (!isObj(entry)) throw invalid(`netSRs[${i}]`, 'must be {"<SR uuid>": "<IP to ping>"}');
      for (const [sr, target] of Object.entries(entry)) netSRs.push({ sr, target: checkIp(`netSRs[${i}].${sr}`, target) });
    });
  }
  const binding: Obj = { vm: raw.vmName, network: raw.sspnName, addresses: [address] };
  if (raw.gateway !== undefined && raw.gateway !== '') binding[fam === 6 ? 'gateway6' : 'gateway4'] = checkIp('gateway', raw.gateway, fam as 4 | 6);
  const out: Obj = {
    xapi: { url: DOM0_LOCAL_XAPI, user: raw.user, password: raw.password },
    management: [{ bridge: raw.brName, address }],
    bindings: [binding],
    netSRs,
    // vif-ip-binder pinged 30 times with a 5 s timeout
    reachability: { tries: 30, timeoutSeconds: 5 },
    recoverHost: true,
    replaceForeignDefault: true,
  };
  if (raw.timeout !== undefined) out.eventTimeout = num('timeout', raw.timeout, 30, 0.1);
  if (raw.ipBinary !== undefined) out.ipBinary = str('ipBinary', raw.ipBinary);
  return out;
}

/** Validates either form; returns the normalised configuration. */
export function parseDom0Config(raw: unknown): Dom0Config {
  if (isVifIpBinderConfig(raw)) raw = convertVifIpBinderConfig(raw);
  if (!isObj(raw)) throw invalid('config', 'must be a JSON object');
  const x = raw.xapi ?? {};
  if (!isObj(x)) throw invalid('xapi', 'must be an object {url, user, passwordFile}');
  const xapi: Dom0Config['xapi'] = {
    url: x.url === undefined ? DOM0_LOCAL_XAPI : str('xapi.url', x.url),
    user: x.user === undefined ? 'root' : str('xapi.user', x.user),
  };
  if (!/^(https?:\/\/|unix:\/)/.test(xapi.url)) throw invalid('xapi.url', 'must start with https://, http:// or unix:/');
  // as for `xapi connect`: over plain http the password crosses the network in clear
  if (xapi.url.startsWith('http://') && x.insecureHttp !== true) throw invalid('xapi.url', `'${xapi.url}' is plain http: the password would cross the network in clear; use https://, the local unix:/ socket, or set "insecureHttp": true`);
  if (x.insecureHttp === true) xapi.insecureHttp = true;
  if (x.password !== undefined) xapi.password = String(x.password);
  if (x.passwordFile !== undefined) xapi.passwordFile = str('xapi.passwordFile', x.passwordFile);
  if (xapi.password === undefined && xapi.passwordFile === undefined) throw invalid('xapi.passwordFile', 'is required (or xapi.password)');
  if (x.insecure === true) xapi.insecure = true;

  const list = (field: string, v: unknown): unknown[] => {
    if (v === undefined) return [];
    if (!Array.isArray(v)) throw invalid(field, 'must be a list');
    return v;
  };
  const management = list('management', raw.management).map((m, i) => {
    if (!isObj(m)) throw invalid(`management[${i}]`, 'must be {bridge, address}');
    return { bridge: validateIfname(str(`management[${i}].bridge`, m.bridge), `management[${i}].bridge`), address: checkCidr(`management[${i}].address`, m.address) };
  });
  const bindings = list('bindings', raw.bindings).map((b, i): Dom0Binding => {
    if (!isObj(b)) throw invalid(`bindings[${i}]`, 'must be {vm, network, addresses}');
    const addresses = list(`bindings[${i}].addresses`, b.addresses).map((a, j) => checkCidr(`bindings[${i}].addresses[${j}]`, a));
    if (addresses.length === 0) throw invalid(`bindings[${i}].addresses`, 'needs at least one ADDR/LEN');
    // names (or UUIDs) as every entry point takes them: no control characters, at most 128
    const vm = validateName(str(`bindings[${i}].vm`, b.vm), `bindings[${i}].vm`);
    const network = validateName(str(`bindings[${i}].network`, b.network), `bindings[${i}].network`);
    const out: Dom0Binding = { vm, network, addresses };
    if (b.gateway4 !== undefined) out.gateway4 = checkIp(`bindings[${i}].gateway4`, b.gateway4, 4);
    if (b.gateway6 !== undefined) out.gateway6 = checkIp(`bindings[${i}].gateway6`, b.gateway6, 6);
    return out;
  });
  if (bindings.length === 0) throw invalid('bindings', 'needs at least one binding');
  const netSRs = list('netSRs', raw.netSRs).map((s, i) => {
    if (!isObj(s)) throw invalid(`netSRs[${i}]`, 'must be {sr, target}');
    return { sr: str(`netSRs[${i}].sr`, s.sr), target: checkIp(`netSRs[${i}].target`, s.target) };
  });
  const r = isObj(raw.reachability) ? raw.reachability : {};
  return {
    xapi,
    management,
    bindings,
    netSRs,
    reachability: { tries: Math.floor(num('reachability.tries', r.tries, 30, 1)), timeoutSeconds: num('reachability.timeoutSeconds', r.timeoutSeconds, 5, 1) },
    recoverHost: raw.recoverHost === true,
    hostUuid: raw.hostUuid === undefined ? undefined : str('hostUuid', raw.hostUuid),
    eventTimeout: num('eventTimeout', raw.eventTimeout, 30, 0.1),
    ipBinary: raw.ipBinary === undefined ? 'ip' : str('ipBinary', raw.ipBinary),
    pingBinary: raw.pingBinary === undefined ? 'ping' : str('pingBinary', raw.pingBinary),
    routeMetric: Math.floor(num('routeMetric', raw.routeMetric, 1, 0)),
    replaceForeignDefault: raw.replaceForeignDefault === true,
    retryDelayMs: Math.floor(num('retryDelayMs', raw.retryDelayMs, 3000, 10)),
    stateFile: raw.stateFile === null ? null : raw.stateFile === undefined ? DOM0_DEFAULT_STATE_PATH : str('stateFile', raw.stateFile),
  };
}

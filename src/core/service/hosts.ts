// Hypervisor hosts: the ones registered with the control plane (each with its own agent token,
// shown once and stored as a SHA-256 hash: tokens are 32 random bytes, so a slow hash adds nothing;
// the record carries what the agent last reported), and each host's own default route (`host
// gateway`). The CLI, the API and the agent routes all change them here: one transaction, audited.
import { createHash, randomBytes } from 'node:crypto';
import type { AppliedReport } from '../control-plane.js';
import { DEFAULT_GATEWAY_METRIC, type HostGatewaySetting } from '../compile/host-plan.js';
import { DOC_HOST_SETTING, hostSettingKey } from '../compile/host-desired.js';
import { parseAddress } from '../ipam/addr.js';
import { IpvisorError, invalid, notFound } from '../model/errors.js';
import { validateName } from '../model/validate.js';
import type { Store } from '../store/store.js';
import { audit, now } from './context.js';
import { networkRef } from './resolve.js';

export const DOC_AGENT_HOST = 'agent-host';

export interface HostRecord {
  name: string;
  tokenHash: string;
  createdAt: string;
  tokenRotatedAt?: string;
  lastSeen?: string;
  agentVersion?: string;
  applied?: AppliedReport;
}

/** What `host list|show` prints: never the hash. */
export type HostView = Omit<HostRecord, 'tokenHash'>;

export function hashToken(token: string): string {
  return createHash('sha256').update(token).digest('hex');
}

function newToken(host: string): string {
  // the prefix names the host for the operator; authority comes from the hash alone
  return `ipva_${host}_${randomBytes(32).toString('base64url')}`;
}

function view(r: HostRecord): HostView {
  const { tokenHash: _h, ...rest } = r;
  return rest;
}

export async function addHost(store: Store, nameIn: string, actor: string): Promise<{ host: HostView; token: string }> {
  const name = validateName(nameIn, 'name');
  const token = newToken(name);
  const rec: HostRecord = { name, tokenHash: hashToken(token), createdAt: now() };
  await store.transaction(async (tx) => {
    if (await tx.getDoc(DOC_AGENT_HOST, name)) throw new IpvisorError('ALREADY_EXISTS', `name: a host named '${name}' is already registered`, { field: 'name' });
    await tx.putDoc(DOC_AGENT_HOST, name, rec);
    await audit(tx, { actor, action: 'host.add', kind: 'host', uuid: null, name, before: null, after: view(rec) });
  }, { write: true });
  return { host: view(rec), token };
}

export async function getHost(store: Store, name: string): Promise<HostRecord> {
  const d = await store.getDoc<HostRecord>(DOC_AGENT_HOST, validateName(name, 'name'));
  if (!d) throw notFound('host', name);
  return d.value;
}

export async function listHosts(store: Store): Promise<HostView[]> {
  return (await store.listDocs<HostRecord>(DOC_AGENT_HOST)).map((d) => view(d.value)).sort((a, b) => a.name.localeCompare(b.name));
}

export async function showHost(store: Store, name: string): Promise<HostView> {
  return view(await getHost(store, name));
}

export async function removeHost(store: Store, name: string, actor: string): Promise<HostView> {
  const host = validateName(name, 'name');
  return store.transaction(async (tx) => {
    const d = await tx.getDoc<HostRecord>(DOC_AGENT_HOST, host);
    if (!d) throw notFound('host', name);
    await tx.deleteDoc(DOC_AGENT_HOST, host);
    await audit(tx, { actor, action: 'host.remove', kind: 'host', uuid: null, name: host, before: view(d.value), after: null });
    return view(d.value);
  }, { write: true });
}

export async function rotateHostToken(store: Store, name: string, actor: string): Promise<{ host: HostView; token: string }> {
  const host = validateName(name, 'name');
  const token = newToken(host);
  // the new hash and its audit row in one transaction (a token that works is always logged)
  const after = await store.transaction(async (tx) => {
    const d = await tx.getDoc<HostRecord>(DOC_AGENT_HOST, host);
    if (!d) throw notFound('host', name);
    const rec: HostRecord = { ...d.value, tokenHash: hashToken(token), tokenRotatedAt: now() };
    await tx.putDoc(DOC_AGENT_HOST, host, rec);
    await audit(tx, { actor, action: 'host.rotate-token', kind: 'host', uuid: null, name: host, before: null, after: { tokenRotatedAt: rec.tokenRotatedAt } });
    return rec;
  }, { write: true });
  return { host: view(after), token };
}

/** Records what the host's agent reported (no audit event: this is a heartbeat, not a change). */
export async function recordAgentReport(store: Store, name: string, report: AppliedReport): Promise<void> {
  await store.transaction(async (tx) => {
    const d = await tx.getDoc<HostRecord>(DOC_AGENT_HOST, name);
    if (!d) return;
    await tx.putDoc(DOC_AGENT_HOST, name, { ...d.value, lastSeen: report.at, agentVersion: report.agentVersion, applied: report });
  }, { write: true });
}

// ---------------------------------------------------------------------------------------------
// A host's own default route (ipvisor's, proto ipvisor, never the user's), one setting per host.

export interface GatewayInput {
  host: string;
  via: string;
  /** Network name or UUID: add the route once its bridge is up with a same-family address. */
  whenUp?: string | null;
  /** Route metric (default DEFAULT_GATEWAY_METRIC); a string from a command line is checked too. */
  metric?: number | string;
}

export interface HostGateway {
  host: string;
  gateway: HostGatewaySetting | null;
}

/** The setting of a host, falling back to a store's one setting from before per-host settings. */
export async function getHostGateway(store: Store, hostIn: string): Promise<HostGateway> {
  const host = validateName(hostIn, 'host');
  const d = (await store.getDoc<HostGatewaySetting>(DOC_HOST_SETTING, hostSettingKey('gateway', host))) ?? (await store.getDoc<HostGatewaySetting>(DOC_HOST_SETTING, 'gateway'));
  return { host, gateway: d?.value ?? null };
}

/** A route metric from a command line or a body (0 .. 2^32-1). */
export function gatewayMetric(input: number | string | undefined): number {
  const m = input ?? DEFAULT_GATEWAY_METRIC;
  const metric = typeof m === 'number' ? m : /^\d+$/.test(m) ? Number(m) : NaN;
  if (!Number.isInteger(metric) || metric < 0 || metric > 0xffffffff) throw invalid('metric', `'${m}' is not a route metric`);
  return metric;
}

export async function setHostGateway(store: Store, input: GatewayInput, actor: string): Promise<HostGateway & { gateway: HostGatewaySetting }> {
  const host = validateName(input.host, 'host');
  const via = parseAddress(input.via, 'via');
  const metric = gatewayMetric(input.metric);
  if (via.family === 6 && via.value >> 118n === 0x3fan && !input.whenUp) throw invalid('via', `${input.via} is link-local: say on which network's bridge with --when-up NET`);
  return store.transaction(async (tx) => {
    let whenUp: string | null = null;
    if (input.whenUp) {
      const n = await networkRef(tx, input.whenUp, 'when-up');
      const families = new Set([...n.subnets.map((s) => s.family), ...n.hostAddresses.map((h) => (h.includes(':') ? 6 : 4))]);
      if (families.size && !families.has(via.family)) throw invalid('via', `IPv${via.family} next hop but network ${n.name} has no IPv${via.family} subnet or host address`);
      whenUp = n.uuid;
    }
    const value: HostGatewaySetting = { via: input.via, whenUp, metric };
    const prev = (await tx.getDoc(DOC_HOST_SETTING, hostSettingKey('gateway', host))) ?? (await tx.getDoc(DOC_HOST_SETTING, 'gateway'));
    await tx.putDoc(DOC_HOST_SETTING, hostSettingKey('gateway', host), value);
    await tx.deleteDoc(DOC_HOST_SETTING, 'gateway'); // the setting of a store from before per-host settings
    await audit(tx, { actor, action: 'host.gateway.set', kind: 'host', uuid: null, name: host, before: prev?.value ?? null, after: value });
    return { host, gateway: value };
  }, { write: true });
}

/** Removes the setting; `unset` says whether there was one. */
export async function unsetHostGateway(store: Store, hostIn: string, actor: string): Promise<{ host: string; unset: boolean }> {
  const host = validateName(hostIn, 'host');
  return store.transaction(async (tx) => {
    const prev = (await tx.getDoc(DOC_HOST_SETTING, hostSettingKey('gateway', host))) ?? (await tx.getDoc(DOC_HOST_SETTING, 'gateway'));
    await tx.deleteDoc(DOC_HOST_SETTING, hostSettingKey('gateway', host));
    await tx.deleteDoc(DOC_HOST_SETTING, 'gateway');
    if (prev) await audit(tx, { actor, action: 'host.gateway.unset', kind: 'host', uuid: null, name: host, before: prev.value, after: null });
    return { host, unset: !!prev };
  }, { write: true });
}

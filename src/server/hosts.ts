// Hypervisor hosts registered with the control plane, each with its own agent token. The token is
// shown once and stored as a SHA-256 hash (tokens are 32 random bytes, so a slow hash adds nothing).
// The record also carries what the agent last reported (host list/show).
import { createHash, randomBytes, timingSafeEqual } from 'node:crypto';
import type { AppliedReport } from '../core/control-plane.js';
import { IpvisorError, notFound } from '../core/model/errors.js';
import { validateName } from '../core/model/validate.js';
import type { Store } from '../core/store/store.js';

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

async function audit(store: Store, actor: string, action: string, name: string, before: unknown, after: unknown): Promise<void> {
  await store.insertEvent({ time: new Date().toISOString(), actor, action, objectKind: 'host', objectUuid: null, objectName: name, before, after });
}

export async function addHost(store: Store, nameIn: string, actor: string): Promise<{ host: HostView; token: string }> {
  const name = validateName(nameIn, 'name');
  const token = newToken(name);
  const rec: HostRecord = { name, tokenHash: hashToken(token), createdAt: new Date().toISOString() };
  await store.transaction(async (tx) => {
    if (await tx.getDoc(DOC_AGENT_HOST, name)) throw new IpvisorError('ALREADY_EXISTS', `name: a host named '${name}' is already registered`, { field: 'name' });
    await tx.putDoc(DOC_AGENT_HOST, name, rec);
    await tx.insertEvent({ time: rec.createdAt, actor, action: 'host.add', objectKind: 'host', objectUuid: null, objectName: name, before: null, after: view(rec) });
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
  const rec = await getHost(store, name);
  await store.transaction(async (tx) => {
    await tx.deleteDoc(DOC_AGENT_HOST, rec.name);
    await tx.insertEvent({ time: new Date().toISOString(), actor, action: 'host.remove', objectKind: 'host', objectUuid: null, objectName: rec.name, before: view(rec), after: null });
  }, { write: true });
  return view(rec);
}

export async function rotateHostToken(store: Store, name: string, actor: string): Promise<{ host: HostView; token: string }> {
  const rec = await getHost(store, name);
  const token = newToken(rec.name);
  const after: HostRecord = { ...rec, tokenHash: hashToken(token), tokenRotatedAt: new Date().toISOString() };
  await store.putDoc(DOC_AGENT_HOST, rec.name, after);
  await audit(store, actor, 'host.rotate-token', rec.name, null, { tokenRotatedAt: after.tokenRotatedAt });
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

/**
 * Which host a bearer token belongs to, or undefined. Hashes are cached and re-read when a token
 * is not found (a host added or rotated since).
 */
export class HostTokens {
  private byHash = new Map<string, string>();
  private loadedAt = 0;
  constructor(private readonly store: Store) {}

  private async reload(): Promise<void> {
    const m = new Map<string, string>();
    for (const d of await this.store.listDocs<HostRecord>(DOC_AGENT_HOST)) m.set(d.value.tokenHash, d.value.name);
    this.byHash = m;
    this.loadedAt = Date.now();
  }

  async hostOf(token: string): Promise<string | undefined> {
    const h = hashToken(token);
    const find = () => {
      for (const [hash, name] of this.byHash) {
        if (timingSafeEqual(Buffer.from(hash, 'hex'), Buffer.from(h, 'hex'))) return name;
      }
      return undefined;
    };
    // a removed or rotated host must stop working within a second
    if (Date.now() - this.loadedAt > 1000) await this.reload();
    return find() ?? (await this.reload(), find());
  }

  /** Whether the host is still registered (removed hosts get 'removed' answers). */
  async registered(name: string): Promise<boolean> {
    return !!(await this.store.getDoc(DOC_AGENT_HOST, name));
  }
}

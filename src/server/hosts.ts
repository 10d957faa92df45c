// The control plane's side of agent tokens: which registered host a bearer token belongs to. The
// hosts themselves (register, remove, rotate a token, the agents' reports) are core/service/hosts.ts.
import { timingSafeEqual } from 'node:crypto';
import type { Store } from '../core/store/store.js';
import { DOC_AGENT_HOST, hashToken, type HostRecord } from '../core/service/hosts.js';

// registering, listing, removing hosts and their tokens are service operations (audited there)
export { DOC_AGENT_HOST, addHost, getHost, hashToken, listHosts, recordAgentReport, removeHost, rotateHostToken, showHost } from '../core/service/hosts.js';
export type { HostRecord, HostView } from '../core/service/hosts.js';

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

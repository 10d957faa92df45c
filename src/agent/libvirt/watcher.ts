// The libvirt watcher of every hypervisor host (`ipvisor agent`, and serve's in-process agent): a
// hot-plugged interface fires only the network hook's port-created, which carries no tap name, so
// the agent follows libvirt's domain event stream (`virsh event --all --loop`) and re-reads the
// live XML of a domain that started, stopped or got or lost a device. What it sees goes to the
// control plane as a `domain` fact (queued on disk while the control plane is unreachable), which
// records it like a hook would (facts.ts recordDomain) and hands the host its new desired state.
// The stream ends whenever libvirtd restarts; it is restarted, and every (re)connect and a slow poll
// rescan all running domains, so a tap missed while disconnected is still reported. DHCP
// reservations of this host's libvirt networks follow its desired copy (network.ts syncHostDhcp).
import { spawn, type ChildProcess } from 'node:child_process';
import { createHash } from 'node:crypto';
import { createInterface } from 'node:readline';
import type { HostFact } from '../../core/control-plane.js';
import { needHost, type DaemonContext, type DaemonWatcher, type HostPort } from '../../core/watcher.js';
import { requestGuestPush } from '../guest/watcher.js';
import { createVirsh, type Virsh } from './virsh.js';
import { parseDomainXml, type LibvirtDomainInfo } from './xml.js';

/** Local records: the last domain fact sent per domain (a poll re-sends only what changed). */
const DOMAIN_SEEN = 'libvirt-domain-seen';

/** Pure: the domain an event line is about, when it may have brought a new tap. */
export function domainNeedingScan(line: string): string | undefined {
  const m = /event '([a-z-]+)' for domain '([^']+)'(?::\s*(.*))?$/.exec(line.trim());
  if (!m) return undefined;
  const [, event, domain, detail] = m;
  if (event === 'device-added') return domain;
  if (event === 'lifecycle' && /^(Started|Resumed)/.test(detail ?? '')) return domain;
  return undefined;
}

/** Pure: the domain whose NIC set changed (device-added, device-removed): its guest gets a push now. */
export function hotplugDomain(line: string): string | undefined {
  const m = /event '(device-added|device-removed)' for domain '([^']+)'/.exec(line.trim());
  return m?.[2];
}

/** Pure: the domain that stopped here (its taps are gone). A domain that migrated away is not: its
 * VIFs are the target's now, and the source's release hook lets go of them. */
export function stoppedDomain(line: string): string | undefined {
  const m = /event 'lifecycle' for domain '([^']+)': (Stopped|Shutdown Finished|Crashed)(.*)$/.exec(line.trim());
  if (!m || /^Stopped Migrated/.test(`${m[2]}${m[3]}`)) return undefined;
  return m[1];
}

/** Pure: the fact a domain's XML makes. */
export function domainFact(host: string, dom: LibvirtDomainInfo, state: 'running' | 'stopped', time = new Date().toISOString()): Extract<HostFact, { kind: 'domain' }> {
  return { kind: 'domain', host, time, state, domain: { uuid: dom.uuid, name: dom.name, interfaces: dom.interfaces.map((i) => ({ type: i.type, mac: i.mac, network: i.network, bridge: i.bridge, portid: i.portid, target: i.target, alias: i.alias })) } };
}

/** Re-reads domains (all running ones, or one by name) and reports those whose facts changed since
 * the last report (or all of them with `all`); returns how many were reported. */
export async function scanDomains(host: HostPort, virsh: Virsh, opts: { name?: string; state?: 'running' | 'stopped'; all?: boolean } = {}): Promise<number> {
  const refs = opts.name ? [opts.name] : (await virsh.run(['list', '--uuid'], { allowFail: true })).stdout.split('\n').map((s) => s.trim()).filter(Boolean);
  const facts: HostFact[] = [];
  for (const ref of refs) {
    const dump = await virsh.run(['dumpxml', ref], { allowFail: true });
    if (dump.code !== 0) continue; // a transient domain gone meanwhile
    const dom = parseDomainXml(dump.stdout);
    const state = opts.state ?? (dom.id === null ? 'stopped' : 'running');
    if (state === 'running' && dom.id === null) continue;
    const fact = domainFact(host.name, dom, state);
    const digest = createHash('sha256').update(JSON.stringify({ state, domain: fact.domain })).digest('hex');
    const key = dom.uuid.toLowerCase().slice(0, 64);
    if (!opts.all && host.local.get<string>(DOMAIN_SEEN, key) === digest) continue;
    host.local.put(DOMAIN_SEEN, key, digest);
    facts.push(fact);
  }
  if (facts.length) host.reportFacts(facts);
  return facts.length;
}

/** DHCP reservations of this host's libvirt networks, from its desired copy: re-checked on
 * (re)connect, poll and every new desired copy (an allocation on the server reaches it that way). */
async function syncDhcp(ctx: DaemonContext, host: HostPort, virsh: Virsh): Promise<void> {
  const { syncHostDhcp } = await import('./network.js');
  for (const r of await syncHostDhcp(host.desired(), host.local, { virsh })) ctx.log(`libvirt watcher: ${r.network}: DHCP reservations +${r.added.length} -${r.removed.length}`);
}

export function createLibvirtWatcher(opts: { virsh?: Virsh; pollMs?: number; retryMs?: number } = {}): DaemonWatcher {
  let child: ChildProcess | undefined;
  let timer: NodeJS.Timeout | undefined;
  let stopped = false;
  let scanning: Promise<void> = Promise.resolve();
  let idle = false;
  let unsubscribe: (() => void) | undefined;
  return {
    name: 'libvirt-events',
    async start(ctx: DaemonContext) {
      const host = needHost(ctx, 'the libvirt watcher');
      const virsh = opts.virsh ?? createVirsh();
      const pollMs = opts.pollMs ?? 60_000;
      const retryMs = opts.retryMs ?? 2_000;
      // Scans run one after another: order keeps the facts and the logs readable.
      const queue = (what: string, fn: () => Promise<void>) => {
        scanning = scanning.then(async () => {
          if (stopped || idle) return;
          try {
            await fn();
          } catch (err) {
            ctx.log(`libvirt watcher: ${what} failed: ${(err as Error).message}`);
          }
        });
        return scanning;
      };
      const scan = (o: { name?: string; state?: 'running' | 'stopped'; all?: boolean } = {}) =>
        queue('scan', async () => {
          const n = await scanDomains(host, virsh, o);
          if (n) ctx.log(`libvirt watcher: ${n} domain(s) reported${o.name ? ` (${o.name})` : ''}`);
          if (!o.name) await syncDhcp(ctx, host, virsh);
        });
      unsubscribe = host.onDesired(() => void queue('DHCP reservations', () => syncDhcp(ctx, host, virsh)));
      let backoff = retryMs;
      const retry = () => {
        if (!stopped && !ctx.signal.aborted) setTimeout(() => void launch(), backoff).unref();
        backoff = Math.min(backoff * 2, 30_000);
      };
      const launch = async (): Promise<void> => {
        if (stopped || ctx.signal.aborted) return;
        // libvirtd down (or restarting): wait quietly until it answers.
        let up = false;
        try {
          up = (await virsh.run(['version'], { allowFail: true, timeoutMs: 10_000 })).code === 0;
        } catch (err) {
          // No libvirt client on this host (an XCP-ng dom0, a plain-bridge host): stay idle.
          ctx.log(`libvirt watcher: ${(err as Error).message}; idle`);
          idle = true;
          return;
        }
        if (!up) return retry();
        if (stopped || ctx.signal.aborted) return;
        const argv = ['-q', ...(virsh.uri ? ['-c', virsh.uri] : []), 'event', '--all', '--loop'];
        const c = spawn('virsh', argv, { stdio: ['ignore', 'pipe', 'pipe'] });
        child = c;
        const startedAt = Date.now();
        c.on('error', (e) => ctx.log(`libvirt watcher: ${e.message}`));
        createInterface({ input: c.stdout! }).on('line', (line) => {
          const d = domainNeedingScan(line) ?? hotplugDomain(line);
          const hot = hotplugDomain(line);
          const gone = stoppedDomain(line);
          // the tap is reported first, then the guest auto-push (when opted in) pushes the document now
          if (d) void scan({ name: d, state: 'running' }).then(() => (hot ? requestGuestPush(hot) : undefined));
          else if (gone) void scan({ name: gone, state: 'stopped' });
        });
        createInterface({ input: c.stderr! }).on('line', () => undefined);
        void scan({ all: true }); // taps missed while disconnected (libvirtd restarted: everything again)
        c.on('exit', () => {
          if (child === c) child = undefined;
          if (stopped || ctx.signal.aborted) return;
          ctx.log('libvirt watcher: event stream ended (libvirtd restarted?); reconnecting');
          if (Date.now() - startedAt > 10_000) backoff = retryMs;
          retry();
        });
      };
      void launch();
      timer = setInterval(() => void scan(), pollMs);
      timer.unref();
    },
    async stop() {
      stopped = true;
      unsubscribe?.();
      if (timer) clearInterval(timer);
      const c = child;
      if (c && c.exitCode === null) {
        await new Promise<void>((resolve) => {
          c.once('exit', () => resolve());
          c.kill('SIGTERM');
        });
      }
      await scanning.catch(() => undefined);
    },
  };
}

// `ipvisor serve` watcher for libvirt: a hot-plugged interface fires only the network hook's
// port-created, which carries no tap name, so serve follows libvirt's domain event stream
// (`virsh event --all --loop`) and re-reads the live XML of a domain that got a device or started.
// The stream ends whenever libvirtd restarts; it is restarted, and every (re)connect and a slow
// poll rescan all running domains, so a tap missed while disconnected is still bound.
import { spawn, type ChildProcess } from 'node:child_process';
import { createInterface } from 'node:readline';
import type { DaemonContext, DaemonWatcher } from '../../core/watcher.js';
import { requestGuestPush } from '../guest/watcher.js';
import { recordDomain } from './facts.js';
import { createVirsh, type Virsh } from './virsh.js';
import { parseDomainXml } from './xml.js';

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

/** Re-reads running domains (all, or one by name) and binds their taps; returns how many VIFs changed. */
export async function scanDomains(ctx: Pick<DaemonContext, 'store' | 'actor'> & { log?: (line: string) => void }, virsh: Virsh, name?: string): Promise<number> {
  const refs = name ? [name] : (await virsh.run(['list', '--uuid'], { allowFail: true })).stdout.split('\n').map((s) => s.trim()).filter(Boolean);
  let changed = 0;
  for (const ref of refs) {
    const dump = await virsh.run(['dumpxml', ref], { allowFail: true });
    if (dump.code !== 0) continue;
    const dom = parseDomainXml(dump.stdout);
    if (dom.id === null) continue;
    const r = await ctx.store.transaction((tx) => recordDomain(tx, dom, 'running', ctx.actor), { write: true });
    changed += r.vifs.filter((v) => v.changed).length;
    // a tap disabled or let go (facts that cannot be recorded): reconcile, and say why once
    if (r.quarantineChanged.length) {
      changed += r.quarantineChanged.length;
      for (const p of r.problems) ctx.log?.(`libvirt watcher: invalid fact: ${p}`);
    }
  }
  return changed;
}

/** DHCP reservations of every libvirt network ipvisor knows, re-checked on (re)connect and poll:
 * changes made without the CLI (REST, `vm delete`) or while libvirtd was down catch up here. */
async function syncAllDhcp(ctx: Pick<DaemonContext, 'store' | 'actor' | 'log'>, virsh: Virsh): Promise<void> {
  const { syncDhcpReservations } = await import('./network.js');
  for (const n of await ctx.store.listNetworks()) {
    if (n.driver !== 'libvirt') continue;
    const r = await syncDhcpReservations(ctx.store, n, ctx.actor, { virsh });
    if (r.added.length || r.removed.length) ctx.log(`libvirt watcher: ${n.name}: DHCP reservations +${r.added.length} -${r.removed.length}`);
  }
}

export function createLibvirtWatcher(opts: { virsh?: Virsh; pollMs?: number; retryMs?: number } = {}): DaemonWatcher {
  let child: ChildProcess | undefined;
  let timer: NodeJS.Timeout | undefined;
  let stopped = false;
  let scanning: Promise<void> = Promise.resolve();
  let idle = false;
  return {
    name: 'libvirt-events',
    async start(ctx: DaemonContext) {
      const virsh = opts.virsh ?? createVirsh();
      const pollMs = opts.pollMs ?? 60_000;
      const retryMs = opts.retryMs ?? 2_000;
      // Scans run one after another: the store transaction serialises anyway, and order keeps logs readable.
      const scan = (domain?: string) => {
        scanning = scanning.then(async () => {
          if (stopped || idle) return;
          try {
            const n = await scanDomains(ctx, virsh, domain);
            if (n) ctx.requestReconcile(`libvirt: ${n} tap(s) bound${domain ? ` on ${domain}` : ''}`);
            if (!domain) await syncAllDhcp(ctx, virsh);
          } catch (err) {
            ctx.log(`libvirt watcher: scan failed: ${(err as Error).message}`);
          }
        });
        return scanning;
      };
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
          const d = domainNeedingScan(line);
          const hot = hotplugDomain(line);
          // the tap is bound first, then the guest auto-push (when opted in) pushes the document now
          if (d || hot) void scan(d ?? hot).then(() => (hot ? requestGuestPush(hot) : undefined));
        });
        createInterface({ input: c.stderr! }).on('line', () => undefined);
        void scan(); // taps missed while disconnected
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

// `ipvisor doctor`: what on this host keeps ipvisor from enforcing, or VM traffic from flowing, and how
// to fix it. Every check reads through the host runner (so a test points it at a network namespace,
// where sysctls, links and nftables are per namespace) and changes nothing.
import { existsSync, readFileSync } from 'node:fs';
import type { HostRunner } from './host/exec.js';
import type { Store } from '../core/store/store.js';

/** error: blocks enforcement (doctor exits 1); warn: VM traffic or a feature is affected; info: context. */
export type Severity = 'ok' | 'info' | 'warn' | 'error';

export interface Finding {
  check: string;
  severity: Severity;
  message: string;
  /** How to fix it (absent when nothing needs doing). */
  fix?: string;
}

export interface DoctorContext {
  runner: HostRunner;
  /** The store path or URL doctor reports on. */
  storePath: string;
  /** Opens the store; called only once the store is known to exist with the current schema. */
  openStore(): Promise<Store>;
  /** libvirt's network.conf (firewall_backend); a test points it elsewhere. */
  libvirtNetworkConf?: string;
  /** The store's schema version this ipvisor knows (sqlite migrations). */
  schemaVersion: number;
}

/** One check: a name and the findings it makes. Agent checks (server reachable, certificate valid,
 * clock skew) plug in through registerDoctorCheck. */
export interface DoctorCheck {
  name: string;
  run(ctx: DoctorContext, state: DoctorState): Promise<Finding[]>;
}

/** What earlier checks learnt that later ones use. */
export interface DoctorState {
  store?: Store;
  brNetfilterIptables?: boolean;
  needsForwarding?: boolean;
}

const MIN_NFT = [1, 0, 0];
const MIN_IPROUTE2 = [5, 10, 0];

function versionAtLeast(v: number[], min: number[]): boolean {
  for (let i = 0; i < min.length; i++) {
    if ((v[i] ?? 0) !== min[i]) return (v[i] ?? 0) > min[i];
  }
  return true;
}

async function tryRun(ctx: DoctorContext, argv: string[]): Promise<{ code: number; stdout: string; stderr: string } | null> {
  try {
    return await ctx.runner.run(argv, { allowFail: true });
  } catch {
    return null; // not installed
  }
}

async function sysctl(ctx: DoctorContext, key: string): Promise<string | null> {
  const r = await tryRun(ctx, ['sysctl', '-n', key]);
  return r && r.code === 0 ? r.stdout.trim() : null;
}

/** Pure: `nft --version` → [major, minor, patch]. */
export function parseNftVersion(out: string): number[] | null {
  const m = /v?(\d+)\.(\d+)(?:\.(\d+))?/.exec(out);
  return m ? [Number(m[1]), Number(m[2]), Number(m[3] ?? 0)] : null;
}

/** Pure: `ip -V` → [major, minor, patch]; the old snapshot form iproute2-ss200127 maps to its date's release. */
export function parseIproute2Version(out: string): number[] | null {
  const ss = /iproute2-ss(\d{2})(\d{2})(\d{2})/.exec(out);
  if (ss) return [Number(ss[1]) >= 20 && Number(ss[2]) >= 12 ? 5 : 4, 0, 0]; // releases before 5.10 (Dec 2020) used ssYYMMDD
  const m = /iproute2-(\d+)\.(\d+)(?:\.(\d+))?/.exec(out) ?? /version (\d+)\.(\d+)(?:\.(\d+))?/.exec(out);
  return m ? [Number(m[1]), Number(m[2]), Number(m[3] ?? 0)] : null;
}

const toolsCheck: DoctorCheck = {
  name: 'tools',
  async run(ctx) {
    const out: Finding[] = [];
    const nft = await tryRun(ctx, ['nft', '--version']);
    if (!nft || nft.code !== 0) out.push({ check: 'nft', severity: 'error', message: 'nft is not installed: ipvisor enforces anti-spoofing with nftables', fix: 'apt-get install nftables' });
    else {
      const v = parseNftVersion(nft.stdout);
      if (!v || !versionAtLeast(v, MIN_NFT)) out.push({ check: 'nft', severity: 'error', message: `nft ${v?.join('.') ?? nft.stdout.trim()} is older than ${MIN_NFT.join('.')}`, fix: 'install nftables 1.0 or later (Debian 12 ships 1.0.6)' });
      else out.push({ check: 'nft', severity: 'ok', message: `nft ${v.join('.')}` });
    }
    const ip = await tryRun(ctx, ['ip', '-V']);
    if (!ip || ip.code !== 0) out.push({ check: 'iproute2', severity: 'error', message: 'ip (iproute2) is not installed: ipvisor puts addresses and routes on the host with it', fix: 'apt-get install iproute2' });
    else {
      const v = parseIproute2Version(ip.stdout + ip.stderr);
      if (!v || !versionAtLeast(v, MIN_IPROUTE2)) out.push({ check: 'iproute2', severity: 'error', message: `iproute2 ${v?.join('.') ?? (ip.stdout + ip.stderr).trim()} is older than ${MIN_IPROUTE2.join('.')} (JSON output, proto numbers)`, fix: 'install iproute2 5.10 or later (Debian 12 ships 6.1)' });
      else out.push({ check: 'iproute2', severity: 'ok', message: `iproute2 ${v.join('.')}` });
    }
    return out;
  },
};

const brNetfilterCheck: DoctorCheck = {
  name: 'br_netfilter',
  async run(ctx, state) {
    const v4 = await sysctl(ctx, 'net.bridge.bridge-nf-call-iptables');
    const v6 = await sysctl(ctx, 'net.bridge.bridge-nf-call-ip6tables');
    if (v4 === null) {
      return [{ check: 'br_netfilter', severity: 'ok', message: "br_netfilter is not loaded: bridged VM traffic meets only bridge-family rules (ipvisor's anti-spoofing), not iptables or ip/inet-family nftables chains" }];
    }
    state.brNetfilterIptables = v4 === '1' || v6 === '1';
    if (!state.brNetfilterIptables) return [{ check: 'br_netfilter', severity: 'ok', message: 'br_netfilter is loaded with bridge-nf-call-iptables=0 and bridge-nf-call-ip6tables=0: bridged frames skip iptables' }];
    return [{
      check: 'br_netfilter',
      severity: 'info',
      message: `br_netfilter is loaded with bridge-nf-call-iptables=${v4} bridge-nf-call-ip6tables=${v6 ?? '?'}: bridged VM frames also pass the iptables and ip/inet-family FORWARD chains, so any firewall's drop there drops VM traffic on bridged networks (ipvisor's bridge-family anti-spoofing is unaffected)`,
      fix: 'unless something here needs it (Docker, Kubernetes): sysctl -w net.bridge.bridge-nf-call-iptables=0 net.bridge.bridge-nf-call-ip6tables=0 (persist in /etc/sysctl.d)',
    }];
  },
};

/** Pure: libvirt's network.conf → its firewall backend, or null when the key is not set. */
export function parseLibvirtFirewallBackend(conf: string): string | null {
  const m = /^\s*firewall_backend\s*=\s*"([^"]*)"/m.exec(conf);
  return m ? m[1] : null;
}

const libvirtCheck: DoctorCheck = {
  name: 'libvirt',
  async run(ctx) {
    const conf = ctx.libvirtNetworkConf ?? '/etc/libvirt/network.conf';
    if (!existsSync(conf)) return [{ check: 'libvirt', severity: 'ok', message: `libvirt's ${conf} is absent: no libvirt network firewall to account for` }];
    const backend = parseLibvirtFirewallBackend(readFileSync(conf, 'utf8'));
    if (backend === 'nftables') {
      return [{ check: 'libvirt', severity: 'info', message: "libvirt's firewall backend is nftables (tables ip/ip6 libvirt_network): ipvisor's routed-address accepts for libvirt NAT networks are iptables FORWARD rules, which its chains do not consult" }];
    }
    const ipt = await tryRun(ctx, ['iptables', '--version']);
    if (!ipt) return [{ check: 'libvirt', severity: 'warn', message: `libvirt's firewall backend is ${backend ?? 'iptables (the default)'} but iptables is not installed: ipvisor cannot accept routed addresses through libvirt's FORWARD rules`, fix: 'apt-get install iptables' }];
    return [{ check: 'libvirt', severity: 'ok', message: `libvirt's firewall backend is ${backend ?? 'iptables (the default)'}; ipvisor adds its routed-address accepts to iptables FORWARD` }];
  },
};

const dockerCheck: DoctorCheck = {
  name: 'docker',
  async run(ctx, state) {
    const out: Finding[] = [];
    for (const [tool, fam] of [['iptables', 4], ['ip6tables', 6]] as const) {
      const r = await tryRun(ctx, [tool, '-w', '-S', 'FORWARD']);
      if (!r || r.code !== 0) continue;
      if (!/^-P FORWARD DROP$/m.test(r.stdout)) continue;
      const docker = /DOCKER/.test(r.stdout);
      const who = docker ? "Docker's" : 'a';
      const hurts = [state.needsForwarding && 'forwarded traffic of routed and NAT networks', state.brNetfilterIptables && 'bridged VM traffic (br_netfilter)'].filter(Boolean).join(' and ');
      out.push({
        check: 'forward-policy',
        severity: hurts ? 'warn' : 'info',
        message: `${tool} FORWARD has ${who} DROP policy: it drops ${hurts || 'forwarded IPv' + fam + ' traffic'} that no rule accepts; an accept in ipvisor's own nftables table does not override it`,
        fix: docker ? `accept the VM bridges in DOCKER-USER (${tool} -I DOCKER-USER -i BRIDGE -j ACCEPT; ${tool} -I DOCKER-USER -o BRIDGE -j ACCEPT), or "ip-forward-no-drop": true in /etc/docker/daemon.json` : `${tool} -P FORWARD ACCEPT, or accept the VM bridges in FORWARD`,
      });
    }
    return out;
  },
};

const firewalldCheck: DoctorCheck = {
  name: 'firewalld',
  async run(ctx) {
    const r = await tryRun(ctx, ['nft', 'list', 'tables']);
    if (!r || r.code !== 0) return [];
    if (!/^table inet firewalld$/m.test(r.stdout)) return [];
    return [{
      check: 'firewalld',
      severity: 'warn',
      message: 'firewalld is active (table inet firewalld): its zones reject forwarded traffic of interfaces in no zone, which drops routed and NAT VM traffic ipvisor allows',
      fix: 'firewall-cmd --permanent --zone=trusted --add-interface=BRIDGE for each VM bridge, then firewall-cmd --reload',
    }];
  },
};

/** The store: present, schema this ipvisor's (read without migrating it). */
const storeCheck: DoctorCheck = {
  name: 'store',
  async run(ctx, state) {
    const { parseStoreUrl } = await import('../core/store/open.js');
    const where = parseStoreUrl(ctx.storePath);
    if (where.kind === 'postgres') {
      try {
        state.store = await ctx.openStore();
        return [{ check: 'store', severity: 'ok', message: 'store (PostgreSQL) reachable, schema current' }];
      } catch (e) {
        return [{ check: 'store', severity: 'error', message: `store (PostgreSQL) unreachable or not current: ${(e as Error).message}`, fix: 'check the database URL, the server and its credentials; ipvisor init creates the schema' }];
      }
    }
    const path = where.path;
    if (!existsSync(path)) return [{ check: 'store', severity: 'warn', message: `no store at ${path} yet: nothing to enforce`, fix: `ipvisor init --db ${path} (or any write command, e.g. ipvisor network create)` }];
    let version: number;
    try {
      const { default: Database } = await import('better-sqlite3');
      const db = new Database(path, { readonly: true, fileMustExist: true, timeout: 5000 });
      try {
        const row = db.prepare("SELECT value FROM meta WHERE key = 'schema_version'").get() as { value: string } | undefined;
        version = Number(row?.value ?? 0);
      } finally {
        db.close();
      }
    } catch (e) {
      return [{ check: 'store', severity: 'error', message: `store ${path} cannot be read: ${(e as Error).message}`, fix: 'check the file, its permissions and free space (run doctor as root)' }];
    }
    if (version > ctx.schemaVersion) return [{ check: 'store', severity: 'error', message: `store ${path} has schema version ${version}, this ipvisor knows up to ${ctx.schemaVersion}`, fix: 'upgrade ipvisor to the version that wrote the store' }];
    if (version < ctx.schemaVersion) return [{ check: 'store', severity: 'warn', message: `store ${path} has schema version ${version}, this ipvisor's is ${ctx.schemaVersion}`, fix: 'run ipvisor apply (or restart serve) as root: opening the store migrates it' }];
    state.store = await ctx.openStore();
    return [{ check: 'store', severity: 'ok', message: `store ${path} reachable, schema version ${version}` }];
  },
};

/** ip_forward, forwarding, proxy_ndp and proxy neighbours the store's networks need, against the host. */
const forwardingCheck: DoctorCheck = {
  name: 'forwarding',
  async run(ctx, state) {
    if (!state.store) return [];
    const { compileHostPlan } = await import('../core/compile/host-plan.js');
    const { observeHostFacts } = await import('./host/apply.js');
    const { loadHostDesired } = await import('../core/service/host-desired.js');
    const { thisHost } = await import('../core/host-identity.js');
    const { observeProxyNeighbours } = await import('./host/iproute2.js');
    const host = thisHost();
    const desired = await loadHostDesired(state.store, host);
    const plan = compileHostPlan(desired.snapshot, await observeHostFacts(ctx.runner, host), desired.settings);
    const out: Finding[] = [];
    state.needsForwarding = plan.sysctls.some((s) => /forward/.test(s.key));
    for (const s of plan.sysctls) {
      const have = await sysctl(ctx, s.key);
      if (have === s.value) out.push({ check: 'sysctl', severity: 'ok', message: `${s.key} = ${have}` });
      else {
        const why = /proxy_ndp/.test(s.key) ? 'routed IPv6 addresses are answered on the uplink by proxy NDP' : 'the store has routed addresses or routed/NAT networks, which the host must forward';
        out.push({ check: 'sysctl', severity: 'error', message: `${s.key} is ${have ?? 'missing'}, should be ${s.value}: ${why}`, fix: `ipvisor apply (serve keeps it so); something else turned it off if it comes back: look for ${s.key} in /etc/sysctl.conf, /etc/sysctl.d/, NetworkManager or Docker` });
      }
    }
    if (plan.proxyNeighbours.length) {
      const have = new Set((await observeProxyNeighbours(ctx.runner)).map((p) => `${p.dev} ${p.address}`));
      const missing = plan.proxyNeighbours.filter((p) => !have.has(`${p.dev} ${p.address}`));
      if (missing.length) out.push({ check: 'proxy-neighbour', severity: 'error', message: `${missing.length} routed address(es) without their proxy ARP/NDP entry on the uplink (${missing.slice(0, 3).map((p) => `${p.address} on ${p.dev}`).join(', ')}${missing.length > 3 ? ', ...' : ''}): the upstream router cannot reach them`, fix: 'ipvisor apply' });
      else out.push({ check: 'proxy-neighbour', severity: 'ok', message: `${plan.proxyNeighbours.length} proxy ARP/NDP entries in place (per-address entries: net.ipv4.conf.*.proxy_arp is not needed)` });
    }
    return out;
  },
};

const extraChecks: DoctorCheck[] = [];

/** Adds a check (the agent: server reachable, certificate valid, clock skew). */
export function registerDoctorCheck(check: DoctorCheck): void {
  if (!extraChecks.some((c) => c.name === check.name)) extraChecks.push(check);
}

/** Pure: the clock-skew finding for an agent (server time from its Date header or API). */
export function clockSkewFinding(local: Date, server: Date, maxSkewSeconds = 5): Finding {
  const skew = (local.getTime() - server.getTime()) / 1000;
  if (Math.abs(skew) <= maxSkewSeconds) return { check: 'clock', severity: 'ok', message: `clock within ${Math.abs(skew).toFixed(1)} s of the server's` };
  return { check: 'clock', severity: 'error', message: `clock is ${Math.abs(skew).toFixed(1)} s ${skew > 0 ? 'ahead of' : 'behind'} the server's (more than ${maxSkewSeconds} s): certificates and tokens may be refused`, fix: 'run a time service: apt-get install systemd-timesyncd (or chrony)' };
}

/** Pure: the certificate finding for an agent (the server's, or the agent's own client certificate). */
export function certificateFinding(what: string, validFrom: Date, validTo: Date, now = new Date(), warnDays = 14): Finding {
  if (now < validFrom) return { check: 'certificate', severity: 'error', message: `${what} is not valid before ${validFrom.toISOString()}`, fix: 'check the clock, or issue the certificate again' };
  if (now > validTo) return { check: 'certificate', severity: 'error', message: `${what} expired ${validTo.toISOString()}`, fix: 'renew the certificate' };
  const days = (validTo.getTime() - now.getTime()) / 86400000;
  if (days < warnDays) return { check: 'certificate', severity: 'warn', message: `${what} expires in ${days.toFixed(0)} day(s) (${validTo.toISOString()})`, fix: 'renew the certificate' };
  return { check: 'certificate', severity: 'ok', message: `${what} valid until ${validTo.toISOString()}` };
}

/** The store first (its networks decide what forwarding must be on), then the host. */
export const HOST_CHECKS: DoctorCheck[] = [toolsCheck, storeCheck, forwardingCheck, brNetfilterCheck, dockerCheck, firewalldCheck, libvirtCheck];

export async function runDoctor(ctx: DoctorContext, checks: DoctorCheck[] = [...HOST_CHECKS, ...extraChecks]): Promise<{ findings: Finding[]; blocking: boolean }> {
  const state: DoctorState = {};
  const findings: Finding[] = [];
  for (const c of checks) {
    try {
      findings.push(...(await c.run(ctx, state)));
    } catch (e) {
      findings.push({ check: c.name, severity: 'error', message: `check failed: ${(e as Error).message}` });
    }
  }
  return { findings, blocking: findings.some((f) => f.severity === 'error') };
}

/** One finding a line: severity, check, message, and the fix after an arrow. */
export function formatFinding(f: Finding): string {
  return `${f.severity.toUpperCase().padEnd(5)} ${f.check}: ${f.message}${f.fix ? ` -> ${f.fix}` : ''}`;
}

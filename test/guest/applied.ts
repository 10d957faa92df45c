// Applied state versus the document: what the kernel of a (stand-in or test) guest holds after a
// push or an apply — `ip -j link/addr/route` and the resolver file — compared with what the
// parsed document asks for. Any difference is one line naming the interface and what differs.
import { execFile } from 'node:child_process';
import { promisify } from 'node:util';
import { mergedDns, type GuestNetState } from '../../src/core/guest/ir.js';

const run = promisify(execFile);

export interface KernelLink {
  ifname: string;
  mtu: number;
  address?: string;
  flags?: string[];
}
export interface KernelAddr {
  ifname: string;
  addr_info: { family: 'inet' | 'inet6'; local: string; prefixlen: number; scope: string; dynamic?: boolean }[];
}
export interface KernelRoute {
  dst: string;
  gateway?: string;
  dev?: string;
  metric?: number;
  protocol?: string;
  type?: string;
}
export interface KernelState {
  links: KernelLink[];
  addrs: KernelAddr[];
  routes4: KernelRoute[];
  routes6: KernelRoute[];
  /** Content of the resolver file, when the caller read one. */
  resolv?: string;
}

/** Reads a guest's kernel state through its agent (`ip -j` run in the guest) and its resolver file. */
export async function guestKernelState(agent: { exec(path: string, args: string[]): Promise<{ exitcode: number | null; stdout: string }>; readFile(path: string): Promise<Buffer | null> }): Promise<KernelState> {
  const j = async (...args: string[]) => JSON.parse((await agent.exec('ip', ['-j', ...args])).stdout || '[]');
  return {
    links: await j('link', 'show'),
    addrs: await j('addr', 'show'),
    routes4: await j('-4', 'route', 'show', 'table', 'main'),
    routes6: await j('-6', 'route', 'show', 'table', 'main'),
    resolv: (await agent.readFile('/etc/resolv.conf').catch(() => null))?.toString() ?? '',
  };
}

/** Reads a namespace's kernel state with `ip -n NS -j`. */
export async function kernelState(ns: string): Promise<KernelState> {
  const j = async (...args: string[]) => JSON.parse((await run('ip', ['-n', ns, '-j', ...args])).stdout || '[]');
  return {
    links: await j('link', 'show'),
    addrs: await j('addr', 'show'),
    routes4: await j('-4', 'route', 'show', 'table', 'main'),
    routes6: await j('-6', 'route', 'show', 'table', 'main'),
  };
}

const routeText = (family: 4 | 6, dst: string, gw: string, dev: string, metric: number | null | undefined) =>
  `${dst === 'default' || dst.endsWith('/0') ? 'default' : dst} via ${gw} dev ${dev} metric ${metric ?? (family === 4 ? 0 : 1024)}`;

/** The resolver lines (nameserver/search) a document asks for, in the ip format's order. */
export function expectedResolver(state: GuestNetState): string[] {
  const all = mergedDns(state.dns, ...state.interfaces.filter((i) => !i.bondMaster).map((i) => i.dns));
  return [...all.nameservers.map((n) => `nameserver ${n}`), ...(all.search.length ? [`search ${all.search.join(' ')}`] : [])];
}

export interface CompareOptions {
  /** Compare the resolver file too (formats that write one). */
  resolver?: boolean;
  /** Interfaces whose extra static addresses/routes are not ipvisor's business (default: none). */
  ignoreExtra?: boolean;
}

/**
 * Every static address with its prefix, every route with its gateway, device and metric, every MTU,
 * and (optionally) the resolver: missing ones, and extra static addresses and gateway routes on the
 * document's interfaces, are differences.
 */
export function compareApplied(state: GuestNetState, k: KernelState, opts: CompareOptions = {}): string[] {
  const diffs: string[] = [];
  for (const i of state.interfaces) {
    const link = k.links.find((l) => l.ifname === i.name);
    if (!link) {
      diffs.push(`${i.name}: no such link`);
      continue;
    }
    if (i.mac && i.type === 'physical' && link.address?.toLowerCase() !== i.mac) diffs.push(`${i.name}: MAC ${link.address}, document says ${i.mac}`);
    if (i.mtu !== null && link.mtu !== i.mtu) diffs.push(`${i.name}: MTU ${link.mtu}, document says ${i.mtu}`);
    if (!link.flags?.includes('UP')) diffs.push(`${i.name}: link is down`);
    if (i.bondMaster) continue;
    const have = (k.addrs.find((a) => a.ifname === i.name)?.addr_info ?? [])
      .filter((a) => a.scope === 'global' && !a.dynamic)
      .map((a) => `${a.local}/${a.prefixlen}`);
    const want = i.addresses.map((a) => `${a.address}/${a.prefixLength}`);
    for (const w of want) if (!have.includes(w)) diffs.push(`${i.name}: address ${w} missing`);
    if (!opts.ignoreExtra) for (const h of have) if (!want.includes(h)) diffs.push(`${i.name}: address ${h} not in the document`);
    const kernelRoutes = [...k.routes4.map((r) => [4, r] as const), ...k.routes6.map((r) => [6, r] as const)]
      .filter(([, r]) => r.dev === i.name && r.gateway && (!r.type || r.type === 'unicast') && r.protocol !== 'ra' && r.protocol !== 'dhcp')
      .map(([f, r]) => routeText(f, r.dst, r.gateway!, r.dev!, r.metric));
    const wantRoutes = i.routes.map((r) => routeText(r.family, r.destination, r.gateway, i.name, r.metric));
    for (const w of wantRoutes) if (!kernelRoutes.includes(w)) diffs.push(`${i.name}: route ${w} missing`);
    if (!opts.ignoreExtra) for (const h of kernelRoutes) if (!wantRoutes.includes(h)) diffs.push(`${i.name}: route ${h} not in the document`);
  }
  if (opts.resolver) {
    const want = expectedResolver(state);
    const have = (k.resolv ?? '').split('\n').map((l) => l.trim()).filter((l) => /^(nameserver|search)\s/.test(l));
    if (want.length && JSON.stringify(have) !== JSON.stringify(want)) diffs.push(`resolver: [${have.join(' | ')}], document says [${want.join(' | ')}]`);
  }
  return diffs;
}

// What both placements share about pushing a VM's network configuration into its guest: the shapes
// of a push (options, plan, result), the process-wide hot-plug request signal (libvirt watchers on
// the agent, XAPI watchers on the control plane ask for an immediate push), and the seam through
// which the XAPI driver (src/server/xapi) serves pushes to XCP-ng guests. The qemu-ga transport
// itself is the agent's (src/agent/guest); nothing here talks to a guest.
import type { GuestFormat } from './render.js';

export type PersistFormat = Exclude<GuestFormat, 'ip' | 'windows'> | 'none';

/** An interface as the guest reports it (qemu-ga guest-network-get-interfaces). */
export interface GuestInterface {
  name: string;
  'hardware-address'?: string;
  'ip-addresses'?: { 'ip-address-type': 'ipv4' | 'ipv6'; 'ip-address': string; prefix: number }[];
}

export interface PushOptions {
  /** Persisted config format; detected in the guest when absent. */
  format?: PersistFormat;
  /** MAC -> name, overriding what the guest reports (--nic). */
  nicNames?: Record<string, string>;
  dryRun?: boolean;
  /** How long the new configuration may take to come up. */
  verifyTimeoutMs?: number;
  /** The in-guest guard rolls back after this many seconds without confirmation. */
  guardSeconds?: number;
  /** Work directory inside a Linux guest (scripts, backups). */
  workDir?: string;
  log?: (line: string) => void;
}

export interface PushPlan {
  os: string;
  format: PersistFormat | 'windows' | 'xapi';
  /** Absolute guest path -> content, persisted configuration. */
  files: Record<string, string>;
  /** ipvisor's own files the push removes (a removed NIC's per-interface files). */
  removed?: string[];
  applyScript: string;
  rollbackScript: string | null;
}

export interface PushResult {
  plan: PushPlan;
  applied: boolean;
  /** Other configuration in the guest that also names the pushed interfaces (it may add to or fight ours at the next boot). */
  warnings?: string[];
  /** Interfaces as the guest agent reports them after the push. */
  interfaces: GuestInterface[];
}

/** The last automatic push of a VM (store docs on the control plane, local state on an agent host). */
export const GUEST_PUSH_DOC = 'guest-push';

export interface GuestPushRecord {
  digest: string;
  ok: boolean;
  at: string;
  error?: string;
  via?: string;
  /** Failed attempts in a row for this digest (backs off the quick retry of a NIC not there yet). */
  attempts?: number;
}

/**
 * NIC hot-plug: the hypervisor watchers (libvirt device-added/-removed, XAPI VIF plug/unplug) ask
 * for an immediate push of one VM, by its UUID, name or libvirt domain name. The push then happens
 * even when the document is unchanged: a NIC unplugged and plugged again (same MAC, same document)
 * comes back unconfigured. Process-wide, like the watchers a daemon runs.
 */
const requested = new Set<string>();
const wakers = new Set<() => void>();

export function requestGuestPush(vmRef: string): void {
  requested.add(vmRef);
  for (const w of wakers) w();
}

/** Whether a push was requested under any of these names of one VM (the request is consumed). */
export function takeGuestPushRequest(refs: string[]): boolean {
  const hit = refs.some((r) => requested.has(r));
  for (const r of refs) requested.delete(r);
  return hit;
}

/** Calls wake on every request; returns the unsubscribe. */
export function onGuestPushRequest(wake: () => void): () => void {
  wakers.add(wake);
  return () => void wakers.delete(wake);
}

/** Push through XAPI (VIF.configure_ipv4/6) instead of a guest agent socket; the XAPI driver sets it. */
export type XapiGuestPush = (vmUuid: string, doc: unknown, opts: PushOptions) => Promise<PushResult>;
let xapiGuestPush: XapiGuestPush | null = null;

export function setXapiGuestPush(fn: XapiGuestPush | null): void {
  xapiGuestPush = fn;
}

export function xapiGuestPushOrNull(): XapiGuestPush | null {
  return xapiGuestPush;
}

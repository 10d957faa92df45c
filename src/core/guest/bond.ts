// Linux bonding options: the kernel names (what network_data.json's bond_* keys carry), and how
// netplan and systemd-networkd spell them. One table, so no renderer drops an option silently.
import type { BondMode } from './ir.js';

export interface BondOptionSpec {
  /** Kernel / sysfs name, as in network_data.json `bond_<name>`. */
  kernel: string;
  kind: 'int' | 'ms' | 'word' | 'list';
  netplan: string | null;
  /** networkd [Bond] key; `ms` values get an "ms" suffix. */
  networkd: string | null;
}

export const BOND_OPTIONS: BondOptionSpec[] = [
  { kernel: 'miimon', kind: 'ms', netplan: 'mii-monitor-interval', networkd: 'MIIMonitorSec' },
  { kernel: 'xmit_hash_policy', kind: 'word', netplan: 'transmit-hash-policy', networkd: 'TransmitHashPolicy' },
  { kernel: 'lacp_rate', kind: 'word', netplan: 'lacp-rate', networkd: 'LACPTransmitRate' },
  { kernel: 'updelay', kind: 'ms', netplan: 'up-delay', networkd: 'UpDelaySec' },
  { kernel: 'downdelay', kind: 'ms', netplan: 'down-delay', networkd: 'DownDelaySec' },
  { kernel: 'ad_select', kind: 'word', netplan: 'ad-select', networkd: 'AdSelect' },
  { kernel: 'arp_interval', kind: 'ms', netplan: 'arp-interval', networkd: 'ARPIntervalSec' },
  { kernel: 'arp_ip_target', kind: 'list', netplan: 'arp-ip-targets', networkd: 'ARPIPTargets' },
  { kernel: 'arp_validate', kind: 'word', netplan: 'arp-validate', networkd: 'ARPValidate' },
  { kernel: 'arp_all_targets', kind: 'word', netplan: 'arp-all-targets', networkd: 'ARPAllTargets' },
  { kernel: 'fail_over_mac', kind: 'word', netplan: 'fail-over-mac-policy', networkd: 'FailOverMACPolicy' },
  { kernel: 'primary_reselect', kind: 'word', netplan: 'primary-reselect-policy', networkd: 'PrimaryReselectPolicy' },
  { kernel: 'min_links', kind: 'int', netplan: 'min-links', networkd: 'MinLinks' },
  { kernel: 'all_slaves_active', kind: 'int', netplan: 'all-slaves-active', networkd: 'AllSlavesActive' },
  { kernel: 'num_grat_arp', kind: 'int', netplan: 'gratuitous-arp', networkd: 'GratuitousARP' },
  { kernel: 'packets_per_slave', kind: 'int', netplan: 'packets-per-slave', networkd: 'PacketsPerSlave' },
  { kernel: 'resend_igmp', kind: 'int', netplan: 'resend-igmp', networkd: 'ResendIGMP' },
  { kernel: 'lp_interval', kind: 'int', netplan: 'learn-packet-interval', networkd: 'LearnPacketIntervalSec' },
  // 'primary' names a member interface: netplan `primary`, networkd PrimarySlave= on the member.
  { kernel: 'primary', kind: 'word', netplan: 'primary', networkd: null },
  { kernel: 'ad_actor_sys_prio', kind: 'int', netplan: null, networkd: 'AdActorSystemPriority' },
  { kernel: 'ad_user_port_key', kind: 'int', netplan: null, networkd: 'AdUserPortKey' },
  { kernel: 'tlb_dynamic_lb', kind: 'int', netplan: null, networkd: 'DynamicTransmitLoadBalancing' },
];

export function bondOptionSpec(kernel: string): BondOptionSpec | undefined {
  return BOND_OPTIONS.find((o) => o.kernel === kernel);
}

/** Kernel numbering of bonding modes (Documentation/networking/bonding.rst). */
export const NUMERIC_BOND_MODES: Record<string, BondMode> = {
  '0': 'balance-rr',
  '1': 'active-backup',
  '2': 'balance-xor',
  '3': 'broadcast',
  '4': '802.3ad',
  '5': 'balance-tlb',
  '6': 'balance-alb',
};

export const XMIT_HASH_POLICIES = ['layer2', 'layer2+3', 'layer3+4', 'encap2+3', 'encap3+4', 'vlan+srcmac'];
export const LACP_RATES = ['slow', 'fast'];

/** networkd wants booleans for these integer kernel options. */
export function networkdBondValue(spec: BondOptionSpec, value: string): string {
  if (spec.kind === 'ms') return `${value}ms`;
  if (spec.kernel === 'all_slaves_active' || spec.kernel === 'tlb_dynamic_lb') return value === '0' ? 'no' : 'yes';
  if (spec.kind === 'list') return value.split(/[ ,]+/).filter(Boolean).join(' ');
  return value;
}

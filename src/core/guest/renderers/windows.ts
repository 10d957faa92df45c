// Windows PowerShell script: adapters found by MAC and renamed, MTU, static addresses, routes (the
// gateway is a 0.0.0.0/0 route with its metric), per-interface and global DNS; bonds become LBFO
// teams, VLANs team NICs (Windows has no VLAN sub-interface on a plain NIC).
import { invalid } from '../../model/errors.js';
import type { BondMode, GuestInterface, GuestNetState, RenderedFiles } from '../ir.js';
import { globalDnsCarriers, HEADER } from './common.js';

export const WINDOWS_PATH = 'ipvisor-network.ps1';

function ps(s: string): string {
  return `'${s.replace(/'/g, "''")}'`;
}

const TEAMING: Record<BondMode, string> = {
  'balance-rr': 'Static',
  'balance-xor': 'Static',
  broadcast: 'Static',
  '802.3ad': 'Lacp',
  'active-backup': 'SwitchIndependent',
  'balance-tlb': 'SwitchIndependent',
  'balance-alb': 'SwitchIndependent',
};
const HASH: Record<string, string> = {
  layer2: 'MacAddresses',
  'layer2+3': 'IPAddresses',
  'layer3+4': 'TransportPorts',
  'encap2+3': 'IPAddresses',
  'encap3+4': 'TransportPorts',
  'vlan+srcmac': 'MacAddresses',
};

export function renderWindows(state: GuestNetState): RenderedFiles {
  const L: string[] = [
    `# ${HEADER}`,
    '#Requires -RunAsAdministrator',
    "$ErrorActionPreference = 'Stop'",
    '',
    'function Find-IpvisorAdapter([string]$Mac) {',
    "  $a = Get-NetAdapter | Where-Object { $_.MacAddress -eq $Mac.ToUpper().Replace(':', '-') } | Select-Object -First 1",
    '  if (-not $a) { throw "ipvisor: no network adapter with MAC $Mac" }',
    '  return $a',
    '}',
    'function Reset-IpvisorIp([string]$Alias, [string]$Family) {',
    '  Get-NetIPAddress -InterfaceAlias $Alias -AddressFamily $Family -ErrorAction SilentlyContinue | Where-Object { $_.PrefixOrigin -eq \'Manual\' } | Remove-NetIPAddress -Confirm:$false',
    '  Get-NetRoute -InterfaceAlias $Alias -AddressFamily $Family -ErrorAction SilentlyContinue | Where-Object { $_.Protocol -eq \'NetMgmt\' } | Remove-NetRoute -Confirm:$false',
    '}',
  ];
  const carriers = globalDnsCarriers(state);
  for (const i of state.interfaces) {
    L.push('', `# ${i.type} ${i.name} (link ${i.linkId})`);
    if (i.type === 'physical') {
      if (i.mac) {
        L.push(`$a = Find-IpvisorAdapter ${ps(i.mac)}`, `if ($a.Name -ne ${ps(i.name)}) { Rename-NetAdapter -Name $a.Name -NewName ${ps(i.name)} }`);
      } else {
        L.push(`Get-NetAdapter -Name ${ps(i.name)} | Out-Null`);
      }
    } else if (i.type === 'bond') {
      const b = i.bond!;
      const hash = b.options.find((o) => o.name === 'xmit_hash_policy');
      L.push(
        `if (-not (Get-NetLbfoTeam -Name ${ps(i.name)} -ErrorAction SilentlyContinue)) {`,
        `  New-NetLbfoTeam -Name ${ps(i.name)} -TeamMembers @(${b.members.map(ps).join(', ')}) -TeamingMode ${TEAMING[b.mode]} -LoadBalancingAlgorithm ${hash ? HASH[hash.value] : 'Dynamic'} -Confirm:$false | Out-Null`,
        '}',
      );
      if (b.mode === 'active-backup' && b.members.length > 1) {
        const primary = b.options.find((o) => o.name === 'primary')?.value ?? b.members[0]!;
        for (const m of b.members.filter((x) => x !== primary)) L.push(`Set-NetLbfoTeamMember -Name ${ps(m)} -AdministrativeMode Standby -Confirm:$false`);
      }
      if (i.mac) L.push(`Set-NetAdapter -Name ${ps(i.name)} -MacAddress ${ps(i.mac.toUpperCase().replace(/:/g, '-'))} -Confirm:$false`);
    } else {
      const parent = state.interfaces.find((p) => p.name === i.vlan!.parent)!;
      if (parent.type !== 'bond') throw invalid(`interfaces.${i.name}`, 'Windows supports VLANs only on a bond (an LBFO team NIC)');
      L.push(
        `if (-not (Get-NetLbfoTeamNic -Team ${ps(parent.name)} -Name ${ps(i.name)} -ErrorAction SilentlyContinue)) {`,
        `  Add-NetLbfoTeamNic -Team ${ps(parent.name)} -VlanID ${i.vlan!.id} -Name ${ps(i.name)} -Confirm:$false | Out-Null`,
        '}',
      );
    }
    if (i.bondMaster) continue;
    configureIp(L, state, i, carriers.has(i));
  }
  if (state.dns.search.length) L.push('', `Set-DnsClientGlobalSetting -SuffixSearchList @(${state.dns.search.map(ps).join(', ')})`);
  L.push('', "Write-Output 'ipvisor: network configuration applied'");
  return { [WINDOWS_PATH]: L.join('\r\n') + '\r\n' };
}

function configureIp(L: string[], state: GuestNetState, i: GuestInterface, carrier: boolean): void {
  const alias = ps(i.name);
  if (i.mtu !== null) {
    // netsh sets the IP-layer MTU for both families persistently (what openstack-networkd does)
    L.push(`netsh interface ipv4 set subinterface ${alias} mtu=${i.mtu} store=persistent | Out-Null`);
    if (i.ipv6) L.push(`netsh interface ipv6 set subinterface ${alias} mtu=${i.mtu} store=persistent | Out-Null`);
  }
  const v4 = i.addresses.filter((a) => a.family === 4);
  const v6 = i.addresses.filter((a) => a.family === 6);
  L.push(`Set-NetIPInterface -InterfaceAlias ${alias} -AddressFamily IPv4 -Dhcp ${i.dhcp4 ? 'Enabled' : 'Disabled'}`);
  if (v4.length || !i.dhcp4) L.push(`Reset-IpvisorIp ${alias} IPv4`);
  if (i.ipv6) {
    L.push(`Set-NetIPInterface -InterfaceAlias ${alias} -AddressFamily IPv6 -RouterDiscovery ${i.ipv6.acceptRa ? 'Enabled' : 'Disabled'} -Dhcp ${i.ipv6.dhcp === 'stateful' ? 'Enabled' : 'Disabled'}`);
    L.push(`Reset-IpvisorIp ${alias} IPv6`);
  }
  for (const a of [...v4, ...v6]) L.push(`New-NetIPAddress -InterfaceAlias ${alias} -IPAddress ${ps(a.address)} -PrefixLength ${a.prefixLength} | Out-Null`);
  for (const r of i.routes) {
    L.push(`New-NetRoute -InterfaceAlias ${alias} -DestinationPrefix ${ps(r.destination)} -NextHop ${ps(r.gateway)}${r.metric !== null ? ` -RouteMetric ${r.metric}` : ''} | Out-Null`);
  }
  const servers = [...i.dns.nameservers, ...(carrier ? state.dns.nameservers.filter((n) => !i.dns.nameservers.includes(n)) : [])];
  if (servers.length) L.push(`Set-DnsClientServerAddress -InterfaceAlias ${alias} -ServerAddresses @(${servers.map(ps).join(', ')})`);
  if (i.dns.search.length) L.push(`Set-DnsClient -InterfaceAlias ${alias} -ConnectionSpecificSuffix ${ps(i.dns.search[0]!)}`);
}

// Windows push, data-driven: a read-only PowerShell observation (Get-NetIPConfiguration -Detailed,
// Get-NetRoute, DNS) comes back as JSON; every decision — which adapter is which (by MAC), what to
// rename, which MTU, DHCP, addresses, routes and DNS servers to change — is made here in pure
// TypeScript, as a list of actions; the PowerShell that runs in the guest is that list, one cmdlet
// per action, with no logic of its own. The rollback is the same decision made the other way
// (from the predicted result back to the observation), so both can be evaluated against recorded
// observations without a Windows machine; `simulateWindows` applies an action list to an
// observation the way the cmdlets would.
import { invalid } from '../model/errors.js';
import { canonicalAddress } from '../ipam/addr.js';
import { mergedDns, type GuestNetState } from './ir.js';
import { globalDnsCarriers, interfaceDns } from './renderers/common.js';

export interface WinAddress {
  address: string;
  prefixLength: number;
  family: 4 | 6;
  /** Get-NetIPAddress PrefixOrigin: Manual, Dhcp, WellKnown, RouterAdvertisement, Other. */
  origin: string;
}
export interface WinRoute {
  destination: string;
  nextHop: string;
  metric: number;
  /** Get-NetRoute Protocol: NetMgmt (static), Local, Dhcp, RouterAdvertisement, ... */
  protocol: string;
}
export interface WinAdapter {
  alias: string;
  /** Lower-case, colon-separated. */
  mac: string;
  mtu: number;
  dhcp4: boolean;
  addresses: WinAddress[];
  routes: WinRoute[];
  /** Interface DNS servers, IPv4 then IPv6, as Get-DnsClientServerAddress lists them. */
  dns: string[];
}
export interface WinObserved {
  adapters: WinAdapter[];
  /** Get-DnsClientGlobalSetting SuffixSearchList. */
  search: string[];
}

export type WinAction =
  | { kind: 'rename'; alias: string; to: string }
  | { kind: 'mtu'; alias: string; mtu: number }
  | { kind: 'dhcp4'; alias: string; enabled: boolean }
  | { kind: 'addr-del'; alias: string; address: string; prefixLength: number }
  | { kind: 'addr-add'; alias: string; address: string; prefixLength: number }
  | { kind: 'route-del'; alias: string; destination: string; nextHop: string; metric: number }
  | { kind: 'route-add'; alias: string; destination: string; nextHop: string; metric: number | null }
  | { kind: 'dns'; alias: string; servers: string[] }
  | { kind: 'search'; search: string[] };

/**
 * The observation, run with powershell.exe -File: read-only. Enums become strings and every list an
 * array, so the JSON does not depend on how many items ConvertTo-Json saw.
 */
export const WINDOWS_OBSERVE_SCRIPT = [
  "$ErrorActionPreference = 'Stop'",
  '$config = @(Get-NetIPConfiguration -All -Detailed | Where-Object { $_.NetAdapter } | ForEach-Object {',
  '  [pscustomobject]@{',
  '    InterfaceAlias = $_.InterfaceAlias',
  '    MacAddress = [string]$_.NetAdapter.MacAddress',
  '    NlMtu = [int]$_.NetIPv4Interface.NlMtu',
  '    Dhcp = [string]$_.NetIPv4Interface.Dhcp',
  '    IPAddress = @(@($_.IPv4Address) + @($_.IPv6Address) | Where-Object { $_ } | ForEach-Object { [pscustomobject]@{ IPAddress = [string]$_.IPAddress; PrefixLength = [int]$_.PrefixLength; PrefixOrigin = [string]$_.PrefixOrigin } })',
  '    DNSServer = @(@($_.DNSServer) | Where-Object { $_ } | ForEach-Object { @($_.ServerAddresses) })',
  '  }',
  '})',
  '$routes = @(Get-NetRoute -PolicyStore ActiveStore -ErrorAction SilentlyContinue | ForEach-Object { [pscustomobject]@{ InterfaceAlias = $_.InterfaceAlias; DestinationPrefix = $_.DestinationPrefix; NextHop = $_.NextHop; RouteMetric = [int]$_.RouteMetric; Protocol = [string]$_.Protocol } })',
  '$search = @((Get-DnsClientGlobalSetting).SuffixSearchList)',
  '[pscustomobject]@{ Config = $config; Routes = $routes; Search = $search } | ConvertTo-Json -Depth 6 -Compress',
].join('\r\n') + '\r\n';

const arr = (x: unknown): unknown[] => (Array.isArray(x) ? x : x === undefined || x === null ? [] : [x]);
const str = (x: unknown): string => (typeof x === 'string' ? x : x === undefined || x === null ? '' : String(x));

/** The observation script's JSON -> the adapters ipvisor reasons about (loopback and adapters without a MAC left out). */
export function parseWindowsObservation(json: string): WinObserved {
  const raw = JSON.parse(json) as Record<string, unknown>;
  const routes = arr(raw.Routes) as Record<string, unknown>[];
  const adapters: WinAdapter[] = [];
  for (const c of arr(raw.Config) as Record<string, unknown>[]) {
    const mac = str(c.MacAddress).toLowerCase().replace(/-/g, ':');
    if (!/^([0-9a-f]{2}:){5}[0-9a-f]{2}$/.test(mac)) continue;
    const alias = str(c.InterfaceAlias);
    adapters.push({
      alias,
      mac,
      mtu: Number(c.NlMtu) || 1500,
      dhcp4: str(c.Dhcp) === 'Enabled',
      addresses: (arr(c.IPAddress) as Record<string, unknown>[]).map((a) => {
        const address = str(a.IPAddress).replace(/%\d+$/, '');
        return { address: canonicalAddress(address), prefixLength: Number(a.PrefixLength), family: address.includes(':') ? 6 : 4, origin: str(a.PrefixOrigin) };
      }),
      routes: routes
        .filter((r) => str(r.InterfaceAlias) === alias)
        .map((r) => ({ destination: str(r.DestinationPrefix), nextHop: str(r.NextHop), metric: Number(r.RouteMetric) || 0, protocol: str(r.Protocol) })),
      dns: arr(c.DNSServer).map(str).filter(Boolean),
    });
  }
  return { adapters, search: arr(raw.Search).map(str).filter(Boolean) };
}

/** What one adapter should look like, in the observation's terms. */
export interface WinDesiredAdapter {
  mac: string;
  alias: string;
  mtu: number | null;
  dhcp4: boolean;
  /** Static (Manual) addresses. */
  addresses: { address: string; prefixLength: number }[];
  /** Static (NetMgmt) routes; metric null = any (New-NetRoute's default, 256). */
  routes: { destination: string; nextHop: string; metric: number | null }[];
  /** null = leave the adapter's DNS as it is. */
  dns: string[] | null;
}
export interface WinDesired {
  adapters: WinDesiredAdapter[];
  /** null = leave the search list as it is. */
  search: string[] | null;
}

/** The RouteMetric New-NetRoute gives a route when none is passed. */
const NEW_NETROUTE_METRIC = 256;
const onLinkNextHop = (h: string) => h === '0.0.0.0' || h === '::';
const isLinkLocal = (a: string) => /^fe80:/i.test(a) || /^169\.254\./.test(a);

/** The document as the desired Windows state (physical NICs only; bonds and VLANs are LBFO teams, see push). */
export function windowsDesired(state: GuestNetState): WinDesired {
  const carriers = globalDnsCarriers(state);
  const adapters: WinDesiredAdapter[] = [];
  for (const i of state.interfaces) {
    if (i.type !== 'physical' || i.bondMaster) continue;
    if (!i.mac) throw invalid(`interfaces.${i.name}`, 'a Windows adapter is found by its MAC; the link has none');
    const dns = interfaceDns(state, i, carriers);
    adapters.push({
      mac: i.mac,
      alias: i.name,
      mtu: i.mtu,
      dhcp4: i.dhcp4,
      addresses: i.addresses.map((a) => ({ address: a.address, prefixLength: a.prefixLength })),
      routes: i.routes.map((r) => ({ destination: r.destination, nextHop: r.gateway, metric: r.metric })),
      dns: dns.nameservers.length ? dns.nameservers : null,
    });
  }
  const all = mergedDns(state.dns);
  return { adapters, search: all.search.length ? all.search : null };
}

/** The observation as a desired state: what the rollback restores. */
export function desiredFromObserved(o: WinObserved): WinDesired {
  return {
    adapters: o.adapters.map((a) => ({
      mac: a.mac,
      alias: a.alias,
      mtu: a.mtu,
      dhcp4: a.dhcp4,
      addresses: a.addresses.filter((x) => x.origin === 'Manual' && !isLinkLocal(x.address)).map((x) => ({ address: x.address, prefixLength: x.prefixLength })),
      // on a DHCP adapter the default gateway and the DNS servers are the lease's: DHCP brings them back
      routes: a.routes.filter((r) => r.protocol === 'NetMgmt' && !onLinkNextHop(r.nextHop) && !(a.dhcp4 && /\/0$/.test(r.destination))).map((r) => ({ destination: r.destination, nextHop: r.nextHop, metric: r.metric })),
      dns: a.dhcp4 ? [] : a.dns,
    })),
    search: o.search,
  };
}

/**
 * The decisions: desired vs observed -> the actions that get there, adapter by adapter, found by
 * MAC only. An adapter already as desired gets no action at all. Throws (before anything runs)
 * when a MAC is not in the guest.
 */
export function windowsActions(want: WinDesired, have: WinObserved): WinAction[] {
  const out: WinAction[] = [];
  for (const d of want.adapters) {
    const a = have.adapters.find((x) => x.mac === d.mac);
    if (!a) throw invalid('nic', `guest has no network adapter with MAC ${d.mac}`);
    let alias = a.alias;
    if (alias !== d.alias) {
      out.push({ kind: 'rename', alias, to: d.alias });
      alias = d.alias;
    }
    if (d.mtu !== null && a.mtu !== d.mtu) out.push({ kind: 'mtu', alias, mtu: d.mtu });
    if (a.dhcp4 !== d.dhcp4) out.push({ kind: 'dhcp4', alias, enabled: d.dhcp4 });
    const manual = a.addresses.filter((x) => x.origin === 'Manual' && !isLinkLocal(x.address));
    const same = (x: { address: string; prefixLength: number }, y: { address: string; prefixLength: number }) => x.address === y.address && x.prefixLength === y.prefixLength;
    // new addresses first, then the stale ones: the adapter is never without an address it keeps
    for (const w of d.addresses) if (!manual.some((m) => same(m, w))) out.push({ kind: 'addr-add', alias, ...w });
    for (const m of manual) if (!d.addresses.some((w) => same(m, w))) out.push({ kind: 'addr-del', alias, address: m.address, prefixLength: m.prefixLength });
    // DHCP switched off takes the lease's gateway routes with it: every desired route is (re)added
    const dhcpOff = a.dhcp4 && !d.dhcp4;
    const staticRoutes = a.routes.filter((r) => r.protocol === 'NetMgmt' && !onLinkNextHop(r.nextHop) && !(dhcpOff && r.destination.includes('.')));
    const sameRoute = (x: WinRoute, y: { destination: string; nextHop: string; metric: number | null }) => x.destination === y.destination && x.nextHop === y.nextHop && (y.metric === null || x.metric === y.metric);
    // on an adapter running DHCP, the gateway routes may be the lease's: they go when DHCP is switched off
    if (!a.dhcp4) for (const r of staticRoutes) if (!d.routes.some((w) => sameRoute(r, w))) out.push({ kind: 'route-del', alias, destination: r.destination, nextHop: r.nextHop, metric: r.metric });
    for (const w of d.routes) if (!staticRoutes.some((r) => sameRoute(r, w))) out.push({ kind: 'route-add', alias, ...w });
    if (d.dns !== null && JSON.stringify(a.dns) !== JSON.stringify(d.dns)) out.push({ kind: 'dns', alias, servers: d.dns });
  }
  if (want.search !== null && JSON.stringify(have.search) !== JSON.stringify(want.search)) out.push({ kind: 'search', search: want.search });
  return out;
}

/** Applies actions to an observation the way the cmdlets change the guest (the rollback is computed from this prediction). */
export function simulateWindows(o: WinObserved, actions: WinAction[]): WinObserved {
  const next: WinObserved = structuredClone(o);
  const by = (alias: string): WinAdapter => {
    const a = next.adapters.find((x) => x.alias === alias);
    if (!a) throw new Error(`simulate: no adapter ${alias}`);
    return a;
  };
  for (const x of actions) {
    if (x.kind === 'search') {
      next.search = [...x.search];
      continue;
    }
    const a = by(x.alias);
    switch (x.kind) {
      case 'rename':
        for (const b of next.adapters) if (b.alias === x.alias) b.alias = x.to;
        break;
      case 'mtu':
        a.mtu = x.mtu;
        break;
      case 'dhcp4':
        a.dhcp4 = x.enabled;
        // Windows drops the DHCP-assigned addresses when DHCP is switched off
        if (!x.enabled) {
          a.addresses = a.addresses.filter((y) => !(y.family === 4 && y.origin === 'Dhcp'));
          a.routes = a.routes.filter((r) => !(r.protocol === 'NetMgmt' && !onLinkNextHop(r.nextHop) && r.destination.includes('.')));
        }
        break;
      case 'addr-add':
        a.addresses = a.addresses.filter((y) => y.address !== x.address);
        a.addresses.push({ address: x.address, prefixLength: x.prefixLength, family: x.address.includes(':') ? 6 : 4, origin: 'Manual' });
        break;
      case 'addr-del':
        a.addresses = a.addresses.filter((y) => !(y.address === x.address && y.prefixLength === x.prefixLength));
        break;
      case 'route-add':
        a.routes = a.routes.filter((r) => !(r.destination === x.destination && r.nextHop === x.nextHop));
        a.routes.push({ destination: x.destination, nextHop: x.nextHop, metric: x.metric ?? NEW_NETROUTE_METRIC, protocol: 'NetMgmt' });
        break;
      case 'route-del':
        a.routes = a.routes.filter((r) => !(r.destination === x.destination && r.nextHop === x.nextHop && r.protocol === 'NetMgmt'));
        break;
      case 'dns':
        a.dns = [...x.servers];
        break;
    }
  }
  return next;
}

function ps(s: string): string {
  return `'${s.replace(/'/g, "''")}'`;
}

/** One action as one PowerShell statement (what the step reports name). */
export function actionCommand(x: WinAction): string {
  switch (x.kind) {
    case 'rename':
      return `Rename-NetAdapter -Name ${ps(x.alias)} -NewName ${ps(x.to)} -Confirm:$false`;
    case 'mtu':
      // netsh sets the IP-layer MTU for both families, persistently (what openstack-networkd does)
      return `netsh interface ipv4 set subinterface ${ps(x.alias)} mtu=${x.mtu} store=persistent; netsh interface ipv6 set subinterface ${ps(x.alias)} mtu=${x.mtu} store=persistent`;
    case 'dhcp4':
      return `Set-NetIPInterface -InterfaceAlias ${ps(x.alias)} -AddressFamily IPv4 -Dhcp ${x.enabled ? 'Enabled' : 'Disabled'}`;
    case 'addr-add':
      // replace semantics (like ip addr replace): the same address from DHCP or an earlier push goes first
      return `Get-NetIPAddress -InterfaceAlias ${ps(x.alias)} -IPAddress ${ps(x.address)} -ErrorAction SilentlyContinue | Remove-NetIPAddress -Confirm:$false; New-NetIPAddress -InterfaceAlias ${ps(x.alias)} -IPAddress ${ps(x.address)} -PrefixLength ${x.prefixLength}`;
    case 'addr-del':
      return `Remove-NetIPAddress -InterfaceAlias ${ps(x.alias)} -IPAddress ${ps(x.address)} -Confirm:$false`;
    case 'route-add':
      return `Get-NetRoute -InterfaceAlias ${ps(x.alias)} -DestinationPrefix ${ps(x.destination)} -NextHop ${ps(x.nextHop)} -ErrorAction SilentlyContinue | Remove-NetRoute -Confirm:$false; New-NetRoute -InterfaceAlias ${ps(x.alias)} -DestinationPrefix ${ps(x.destination)} -NextHop ${ps(x.nextHop)}${x.metric !== null ? ` -RouteMetric ${x.metric}` : ''}`;
    case 'route-del':
      return `Remove-NetRoute -InterfaceAlias ${ps(x.alias)} -DestinationPrefix ${ps(x.destination)} -NextHop ${ps(x.nextHop)} -Confirm:$false`;
    case 'dns':
      return x.servers.length ? `Set-DnsClientServerAddress -InterfaceAlias ${ps(x.alias)} -ServerAddresses @(${x.servers.map(ps).join(', ')})` : `Set-DnsClientServerAddress -InterfaceAlias ${ps(x.alias)} -ResetServerAddresses`;
    case 'search':
      return `Set-DnsClientGlobalSetting -SuffixSearchList @(${x.search.map(ps).join(', ')})`;
  }
}

/**
 * The action list as a script: every action runs (a failure is reported as
 * `ipvisor-step-failed: <command>: <message>` and the next one runs), exit 1 at the end if any failed.
 */
export function renderWindowsActions(actions: WinAction[], title: string): string {
  const L = [
    `# Generated by ipvisor: ${title}`,
    "$ErrorActionPreference = 'Stop'",
    '$failed = 0',
    'function Invoke-IpvisorStep([string]$Name, [scriptblock]$Do) {',
    '  try { & $Do | Out-Null } catch { Write-Output "ipvisor-step-failed: ${Name}: $($_.Exception.Message)"; $script:failed++ }',
    '}',
    '',
  ];
  for (const x of actions) {
    const cmd = actionCommand(x);
    L.push(`Invoke-IpvisorStep ${ps(cmd)} { ${cmd} }`);
  }
  L.push('', 'if ($failed -gt 0) { exit 1 }', 'exit 0');
  return L.join('\r\n') + '\r\n';
}

export const WINDOWS_GUARD_TASK = 'ipvisor-network-rollback';

/**
 * Arms the guard: a scheduled task (SYSTEM) that runs the guard script once after `seconds`; the
 * guard rolls back unless the confirm file exists, then removes its task.
 */
export function renderWindowsArm(dir: string, seconds: number): { arm: string; guard: string; disarm: string } {
  const guardPath = `${dir}\\guard.ps1`;
  const confirm = `${dir}\\confirm`;
  const arm = [
    "$ErrorActionPreference = 'Stop'",
    `Remove-Item -Force -ErrorAction SilentlyContinue ${ps(confirm)}`,
    `$action = New-ScheduledTaskAction -Execute 'powershell.exe' -Argument ${ps(`-NoProfile -NonInteractive -ExecutionPolicy Bypass -File "${guardPath}"`)}`,
    `$trigger = New-ScheduledTaskTrigger -Once -At ((Get-Date).AddSeconds(${seconds}))`,
    `Register-ScheduledTask -TaskName ${ps(WINDOWS_GUARD_TASK)} -Action $action -Trigger $trigger -User 'SYSTEM' -RunLevel Highest -Force | Out-Null`,
  ].join('\r\n') + '\r\n';
  const guard = [
    '# Generated by ipvisor: rolls the network back unless the push was confirmed in time.',
    `if (-not (Test-Path ${ps(confirm)})) {`,
    `  New-Item -ItemType File -Force ${ps(confirm)} | Out-Null`,
    `  & powershell.exe -NoProfile -NonInteractive -ExecutionPolicy Bypass -File ${ps(`${dir}\\rollback.ps1`)}`,
    '}',
    `Unregister-ScheduledTask -TaskName ${ps(WINDOWS_GUARD_TASK)} -Confirm:$false -ErrorAction SilentlyContinue`,
  ].join('\r\n') + '\r\n';
  const disarm = [
    `New-Item -ItemType File -Force ${ps(confirm)} | Out-Null`,
    `Unregister-ScheduledTask -TaskName ${ps(WINDOWS_GUARD_TASK)} -Confirm:$false -ErrorAction SilentlyContinue`,
  ].join('\r\n') + '\r\n';
  return { arm, guard, disarm };
}

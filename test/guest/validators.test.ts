// Every valid corpus document, rendered to every format, passes the real validator for that format.
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { networkDataForVm } from '../../src/core/guest/emit.js';
import { parseNetworkData } from '../../src/core/guest/parse.js';
import type { Snapshot } from '../../src/core/model/snapshot.js';
import type { Assignment, Network, Vif } from '../../src/core/model/types.js';
import { render } from '../../src/core/guest/render.js';
import type { RenderedFiles } from '../../src/core/guest/ir.js';
import { loadCorpus, REJECTED } from './corpus.js';
import { validateEni, validateNetplan, validateNetworkd, validateNm, validatePowerShell, validateShellSyntax } from './validators.js';
import { skipTest } from '../support/skip.js';

const phy = (id: string, mac: string, extra: Record<string, unknown> = {}) => ({ id, type: 'phy', ethernet_mac_address: mac, ...extra });
/** Edge cases the corpus lacks, written for these validators. */
const SYNTHETIC: { name: string; nics: Record<string, string>; doc: unknown }[] = [
  {
    name: 'synthetic-v6-only-search-dhcp6-mtu',
    nics: {},
    doc: {
      links: [phy('a', '02:00:00:00:00:01', { mtu: 1400 }), phy('b', '02:00:00:00:00:02')],
      networks: [
        { id: 'x', link: 'a', type: 'ipv6_dhcp' },
        { id: 'y', link: 'b', type: 'ipv6', ip_address: '2001:db8::5/64', routes: [{ network: '::', netmask: '::', gateway: 'fe80::1' }], dns_search: ['v6.example'], services: [{ type: 'dns', address: '2001:db8::53' }] },
      ],
    },
  },
  {
    name: 'synthetic-vlan-on-phy-bond-options',
    nics: { '02:00:00:00:00:03': 'ens5' },
    doc: {
      links: [
        phy('a', '02:00:00:00:00:01'),
        phy('b', '02:00:00:00:00:02'),
        phy('c', '02:00:00:00:00:03'),
        { id: 'bond', type: 'bond', bond_links: ['a', 'b'], bond_mode: '1', bond_miimon: 100, bond_primary: 'eth0', bond_updelay: 200, bond_downdelay: 200, bond_fail_over_mac: 'active' },
        { id: 'v', type: 'vlan', vlan_link: 'c', vlan_id: 42 },
      ],
      networks: [
        { id: 'n0', link: 'bond', type: 'ipv4_dhcp' },
        { id: 'n1', link: 'v', type: 'ipv4', ip_address: '10.42.0.2', netmask: '255.255.255.0', routes: [{ network: '10.0.0.0', netmask: '255.0.0.0', gateway: '10.42.0.1' }] },
      ],
      services: [{ type: 'dns', address: '10.42.0.53', search: ['lan.example'] }],
    },
  },
];

/** What `guest network-data` emits from the store: MTUs, DNS, v4 and v6 static routes, a link-local
 * v6 gateway, an additional address, three VIFs with default routes, routed /32 and /128 addresses
 * and a routed prefix (left out). */
function storeDocument(): unknown {
  const t = '2026-01-01T00:00:00.000Z';
  const net = (uuid: string, over: Partial<Network>): Network => ({
    uuid, name: uuid, driver: 'bridge', bridge: null, mode: 'bridged', subnets: [], mtu: null, dns: [], routes: [], defaultLocking: 'unlocked', uplink: null, hostAddresses: [], extra: {}, createdAt: t, updatedAt: t, ...over,
  });
  const vif = (uuid: string, device: number, networkUuid: string): Vif => ({ uuid, vmUuid: 'vm1', device, mac: `52:54:00:00:00:0${device}`, networkUuid, locking: 'network_default', ifname: null, extra: {}, createdAt: t, updatedAt: t });
  const asg = (vifUuid: string, networkUuid: string, address: string, kind: Assignment['kind'], prefixLength?: number): Assignment => {
    const family = address.includes(':') ? 6 : 4;
    return { uuid: address, networkUuid, poolUuid: 'p', vifUuid, family, address, prefixLength: prefixLength ?? (family === 4 ? 32 : 128), kind, note: null, requestId: null, createdAt: t };
  };
  const snapshot = {
    networks: [
      net('lan', { subnets: [{ cidr: '192.0.2.0/24', family: 4, gateway: '192.0.2.1' }, { cidr: '2001:db8:1::/64', family: 6, gateway: 'fe80::1' }], mtu: 9000, dns: ['192.0.2.53', '2001:db8:1::53'], routes: [{ cidr: '10.10.0.0/16', via: '192.0.2.254' }, { cidr: '2001:db8:99::/48', via: '2001:db8:1::fe' }] }),
      net('dmz', { subnets: [{ cidr: '198.51.100.0/25', family: 4, gateway: '198.51.100.1' }], mtu: 1400, dns: ['198.51.100.53'] }),
      net('rt', { mode: 'routed', subnets: [{ cidr: '203.0.113.0/28', family: 4, gateway: '203.0.113.1' }] }),
    ],
    pools: [],
    vms: [{ uuid: 'vm1', name: 'web1', host: 'hv1', owner: null, extra: {}, createdAt: t, updatedAt: t }],
    vifs: [vif('v0', 0, 'lan'), vif('v1', 1, 'dmz'), vif('v2', 2, 'rt')],
    assignments: [
      asg('v0', 'lan', '192.0.2.2', 'primary'),
      asg('v0', 'lan', '192.0.2.3', 'additional'),
      asg('v0', 'lan', '2001:db8:1::1', 'primary'),
      asg('v1', 'dmz', '198.51.100.10', 'primary'),
      asg('v2', 'rt', '203.0.113.2', 'primary'),
      asg('v2', 'rt', '100.64.0.0', 'routed', 29),
      asg('v2', 'rt', '100.64.0.8', 'routed'),
      asg('v2', 'rt', '2001:db8:64::8', 'routed'),
    ],
  } as unknown as Snapshot;
  return networkDataForVm(snapshot, 'vm1');
}
SYNTHETIC.push({ name: 'store-network-data-3-vifs', nics: {}, doc: storeDocument() });

const docs = [...loadCorpus().filter((c) => !REJECTED[c.name]), ...SYNTHETIC];

const VALIDATORS: [string, 'netplan' | 'eni' | 'nm' | 'networkd' | 'sysconfig' | 'ip' | 'windows', (f: RenderedFiles) => Promise<string[] | null>, string][] = [
  ['netplan generate --root-dir', 'netplan', validateNetplan, 'netplan.io'],
  ['ifup --no-act', 'eni', validateEni, 'ifupdown'],
  ['nmcli --offline', 'nm', validateNm, 'network-manager'],
  ['systemd-networkd in a private namespace', 'networkd', validateNetworkd, 'systemd; needs root for the namespaces'],
  ['bash -n', 'sysconfig', (f) => validateShellSyntax(f, 'bash'), 'bash'],
  ['sh -n', 'ip', (f) => validateShellSyntax(f, 'sh'), 'dash'],
  ['the tree-sitter PowerShell grammar', 'windows', validatePowerShell, 'npm: web-tree-sitter, tree-sitter-powershell'],
];

for (const [label, format, validate, pkg] of VALIDATORS) {
  test(`${format}: every corpus document passes ${label}`, async (t) => {
    const probe = await validate({});
    if (probe === null) {
      skipTest(t, `${label} is not available here (install ${pkg})`);
      return;
    }
    const problems: string[] = [];
    for (const c of docs) {
      const state = parseNetworkData(c.doc, { nicNames: c.nics });
      if (format === 'windows' && state.interfaces.some((i) => i.vlan && state.interfaces.find((p) => p.name === i.vlan!.parent)?.type !== 'bond')) {
        // documented limit: Windows has VLAN interfaces only on LBFO teams
        assert.throws(() => render(state, format), /Windows supports VLANs only on a bond/);
        continue;
      }
      const files = render(state, format);
      const found = await validate(files);
      for (const p of found ?? []) problems.push(`${c.name}: ${p}`);
    }
    assert.deepEqual(problems, []);
  });
}

test('netplan with renderer NetworkManager: every corpus document passes netplan generate and nmcli on its keyfiles', async (t) => {
  if ((await validateNetplan({})) === null || (await validateNm({})) === null) {
    skipTest(t, 'needs netplan.io and network-manager');
    return;
  }
  const problems: string[] = [];
  for (const c of docs) {
    const files = render(parseNetworkData(c.doc, { nicNames: c.nics }), 'netplan', { netplanRenderer: 'NetworkManager' });
    for (const p of (await validateNetplan(files)) ?? []) problems.push(`${c.name}: ${p}`);
  }
  assert.deepEqual(problems, []);
});

test('validators catch broken input (they are not no-ops)', async (t) => {
  // a validator that is not installed here is a skip through the gate, not a silent pass
  const missing: string[] = [];
  const netplan = await validateNetplan({ 'etc/netplan/x.yaml': 'network:\n  version: 2\n  bonds:\n    bond0:\n      interfaces: []\n      parameters: {mode: "4"}\n' });
  if (netplan) assert.ok(netplan.some((p) => /unknown bond mode/.test(p)), String(netplan));
  else missing.push('netplan.io');
  const eni = await validateEni({ 'i': 'iface eth0 inet bogus\n' });
  if (eni) assert.ok(eni.length > 0);
  else missing.push('ifupdown');
  const nm = await validateNm({ 'x.nmconnection': '[connection]\nid=x\ntype=ethernet\n[ipv4]\nmethod=manual\n' });
  if (nm) assert.ok(nm.length > 0);
  else missing.push('network-manager');
  const nd = await validateNetworkd({ 'x.network': '[Match]\nName=x\n[Network]\nBogusKey=1\n' });
  if (nd) assert.ok(nd.some((p) => /BogusKey/.test(p)), String(nd));
  else missing.push('systemd-networkd (and root)');
  assert.ok((await validateShellSyntax({ f: 'A="x\n' })).length > 0);
  const ps = await validatePowerShell({ 'x.ps1': "if ($a -eq 'x' {\n  Write-Output 'y'\n}\n" });
  assert.ok(ps.some((p) => /PowerShell syntax x\.ps1:1:/.test(p)), String(ps));
  if (missing.length) skipTest(t, `not checked here: ${missing.join(', ')}`);
});

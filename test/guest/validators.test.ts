// Every valid corpus document, rendered to every format, passes the real validator for that format.
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { parseNetworkData } from '../../src/guest/parse.js';
import { render } from '../../src/guest/render.js';
import type { RenderedFiles } from '../../src/guest/ir.js';
import { loadCorpus, REJECTED } from './corpus.js';
import { validateEni, validateNetplan, validateNetworkd, validateNm, validatePowerShell, validateShellSyntax } from './validators.js';

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
      t.skip(`${label} is not available here (install ${pkg})`);
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
    t.skip('needs netplan.io and network-manager');
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
  const netplan = await validateNetplan({ 'etc/netplan/x.yaml': 'network:\n  version: 2\n  bonds:\n    bond0:\n      interfaces: []\n      parameters: {mode: "4"}\n' });
  if (netplan) assert.ok(netplan.some((p) => /unknown bond mode/.test(p)), String(netplan));
  const eni = await validateEni({ 'i': 'iface eth0 inet bogus\n' });
  if (eni) assert.ok(eni.length > 0);
  const nm = await validateNm({ 'x.nmconnection': '[connection]\nid=x\ntype=ethernet\n[ipv4]\nmethod=manual\n' });
  if (nm) assert.ok(nm.length > 0);
  const nd = await validateNetworkd({ 'x.network': '[Match]\nName=x\n[Network]\nBogusKey=1\n' });
  if (nd) assert.ok(nd.some((p) => /BogusKey/.test(p)), String(nd));
  else t.diagnostic('networkd check skipped (needs root and systemd-networkd)');
  assert.ok((await validateShellSyntax({ f: 'A="x\n' })).length > 0);
  const ps = await validatePowerShell({ 'x.ps1': "if ($a -eq 'x' {\n  Write-Output 'y'\n}\n" });
  assert.ok(ps.some((p) => /PowerShell syntax x\.ps1:1:/.test(p)), String(ps));
});

// What cloud-init gets wrong (reference/guest/NOTES.md), checked format by format on the corpus.
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { parseNetworkData } from '../../src/core/guest/parse.js';
import { GUEST_FORMATS, render, type GuestFormat } from '../../src/core/guest/render.js';
import { loadCorpus } from './corpus.js';

const corpus = new Map(loadCorpus().map((c) => [c.name.slice(0, 2), c]));
const all = (doc: string, format: GuestFormat): string => {
  const c = corpus.get(doc)!;
  return Object.values(render(parseNetworkData(c.doc, { nicNames: c.nics }), format)).join('\n');
};

test('per-network DNS (08) is kept in every format that has DNS (cloud-init 22.4 drops it)', () => {
  for (const f of GUEST_FORMATS.filter((x) => x !== 'ip')) assert.match(all('08', f), /192\.168\.123\.1/, f);
});

test('bond mode as a name and the hash policy in every format (05: bond_mode "4")', () => {
  const expect: Record<GuestFormat, RegExp[]> = {
    netplan: [/mode: 802\.3ad/, /transmit-hash-policy: layer3\+4/],
    eni: [/bond-mode 802\.3ad/, /bond-xmit-hash-policy layer3\+4/],
    sysconfig: [/BONDING_OPTS="mode=802\.3ad miimon=100 xmit_hash_policy=layer3\+4"/],
    networkd: [/Mode=802\.3ad/, /TransmitHashPolicy=layer3\+4/],
    nm: [/mode=802\.3ad/, /xmit_hash_policy=layer3\+4/],
    windows: [/-TeamingMode Lacp -LoadBalancingAlgorithm TransportPorts/],
    ip: [/type bond mode 802\.3ad miimon 100 xmit_hash_policy layer3\+4/],
  };
  for (const f of GUEST_FORMATS) {
    const text = all('05', f);
    for (const re of expect[f]) assert.match(text, re, f);
    assert.doesNotMatch(text, /mode[=: ]"?4\b/, `${f} must not carry the numeric mode`);
  }
});

test('networkd gets .netdev files for bonds and VLANs, and Bond=/VLAN= (cloud-init 22.4 writes none)', () => {
  const c = corpus.get('05')!;
  const files = render(parseNetworkData(c.doc, { nicNames: c.nics }), 'networkd');
  assert.deepEqual(Object.keys(files).filter((p) => p.endsWith('.netdev')).sort(), [
    'etc/systemd/network/50-ipvisor-bond0.602.netdev',
    'etc/systemd/network/50-ipvisor-bond0.612.netdev',
    'etc/systemd/network/50-ipvisor-bond0.netdev',
  ]);
  assert.match(files['etc/systemd/network/50-ipvisor-oeth0.network']!, /Bond=bond0/);
  assert.match(files['etc/systemd/network/50-ipvisor-bond0.network']!, /VLAN=bond0\.602\nVLAN=bond0\.612/);
});

test('two default routes (15-NEG) become valid routes with metrics in every format', () => {
  const expect: Record<GuestFormat, RegExp> = {
    netplan: /via: 172\.19\.3\.254\n\s+metric: 100\n[\s\S]*via: 172\.20\.3\.254\n\s+metric: 200\n\s+on-link: true/,
    eni: /route replace 0\.0\.0\.0\/0 via 172\.19\.3\.254 dev eth0 metric 100\n[\s\S]*route replace 0\.0\.0\.0\/0 via 172\.20\.3\.254 dev eth0 metric 200 onlink/,
    sysconfig: /default via 172\.19\.3\.254 dev eth0 metric 100\ndefault via 172\.20\.3\.254 dev eth0 metric 200 onlink/,
    networkd: /Gateway=172\.19\.3\.254\nMetric=100\n[\s\S]*Gateway=172\.20\.3\.254\nMetric=200\nGatewayOnLink=yes/,
    nm: /route1=0\.0\.0\.0\/0,172\.19\.3\.254,100\nroute2=0\.0\.0\.0\/0,172\.20\.3\.254,200\nroute2_options=onlink=true/,
    windows: /-NextHop '172\.19\.3\.254' -RouteMetric 100[\s\S]*-NextHop '172\.20\.3\.254' -RouteMetric 200/,
    ip: /default via 172\.19\.3\.254 dev eth0 metric 100\n.*default via 172\.20\.3\.254 dev eth0 metric 200 onlink/,
  };
  for (const f of GUEST_FORMATS) assert.match(all('15', f), expect[f], f);
});

test('a DHCP profile never gets a bare gateway (nmcli rejects it)', () => {
  for (const c of loadCorpus()) {
    if (c.name.startsWith('16') || c.name.startsWith('24')) continue;
    const files = render(parseNetworkData(c.doc, { nicNames: c.nics }), 'nm');
    for (const [p, text] of Object.entries(files)) assert.doesNotMatch(text, /^gateway=/m, `${c.name} ${p}`);
  }
});

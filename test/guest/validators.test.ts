// Every valid corpus document, rendered to every format, passes the real validator for that format.
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { parseNetworkData } from '../../src/guest/parse.js';
import { render } from '../../src/guest/render.js';
import type { RenderedFiles } from '../../src/guest/ir.js';
import { loadCorpus, REJECTED } from './corpus.js';
import { validateEni, validateNetplan, validateNetworkd, validateNm, validateShellSyntax } from './validators.js';

const docs = loadCorpus().filter((c) => !REJECTED[c.name]);

const VALIDATORS: [string, 'netplan' | 'eni' | 'nm' | 'networkd' | 'sysconfig' | 'ip', (f: RenderedFiles) => Promise<string[] | null>, string][] = [
  ['netplan generate --root-dir', 'netplan', validateNetplan, 'netplan.io'],
  ['ifup --no-act', 'eni', validateEni, 'ifupdown'],
  ['nmcli --offline', 'nm', validateNm, 'network-manager'],
  ['systemd-networkd in a private namespace', 'networkd', validateNetworkd, 'systemd; needs root for the namespaces'],
  ['bash -n', 'sysconfig', (f) => validateShellSyntax(f, 'bash'), 'bash'],
  ['sh -n', 'ip', (f) => validateShellSyntax(f, 'sh'), 'dash'],
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
      const files = render(parseNetworkData(c.doc, { nicNames: c.nics }), format);
      const found = await validate(files);
      for (const p of found ?? []) problems.push(`${c.name}: ${p}`);
    }
    assert.deepEqual(problems, []);
  });
}

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
});

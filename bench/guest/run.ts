// Renders every corpus document to every format in-process, and the same documents with
// `cloud-init devel net-convert` (one process per conversion, as cloud-init is used), side by side.
// Also times ipvisor's own CLI as a process (dist/ must be built) for a like-for-like per-process figure.
// usage: node --import tsx bench/guest/run.ts [--iterations N] [--no-cloud-init] [--no-cli]
import { spawnSync } from 'node:child_process';
import { existsSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { performance } from 'node:perf_hooks';
import { parseNetworkData } from '../../src/core/guest/parse.js';
import { GUEST_FORMATS, render, type GuestFormat } from '../../src/core/guest/render.js';
import { loadCorpus, REJECTED } from '../../test/guest/corpus.js';

const args = process.argv.slice(2);
const iterations = Number(args[args.indexOf('--iterations') + 1] || 0) || 200;
const withCloudInit = !args.includes('--no-cloud-init');
const withCli = !args.includes('--no-cli');

/** cloud-init's -O kind and -D distro for our formats (NOTES.md section 2). */
const CLOUD_INIT: Partial<Record<GuestFormat, [string, string]>> = {
  eni: ['eni', 'debian'],
  netplan: ['netplan', 'ubuntu'],
  networkd: ['networkd', 'debian'],
  sysconfig: ['sysconfig', 'rhel'],
  nm: ['network-manager', 'rhel'],
};
const CI_FORMATS = Object.keys(CLOUD_INIT) as GuestFormat[];

const corpus = loadCorpus();
const valid = corpus.filter((c) => !REJECTED[c.name]);
const ms = (x: number) => x.toFixed(3).padStart(10);

// in-process: parse + render, every valid document to every format
for (let i = 0; i < 20; i++) for (const c of valid) for (const f of GUEST_FORMATS) render(parseNetworkData(c.doc, { nicNames: c.nics }), f);
let t0 = performance.now();
for (let i = 0; i < iterations; i++) for (const c of valid) for (const f of GUEST_FORMATS) render(parseNetworkData(c.doc, { nicNames: c.nics }), f);
const allFormatsMs = (performance.now() - t0) / iterations;
t0 = performance.now();
for (let i = 0; i < iterations; i++) for (const c of valid) for (const f of CI_FORMATS) render(parseNetworkData(c.doc, { nicNames: c.nics }), f);
const ciFormatsMs = (performance.now() - t0) / iterations;
const conversions = valid.length * CI_FORMATS.length;

console.log(`corpus: ${corpus.length} documents (${valid.length} valid, ${corpus.length - valid.length} rejected by design)`);
console.log(`ipvisor in-process: ${valid.length} docs x ${GUEST_FORMATS.length} formats = ${valid.length * GUEST_FORMATS.length} renders in ${allFormatsMs.toFixed(3)} ms (mean of ${iterations} runs)`);
console.log(`ipvisor in-process: ${valid.length} docs x ${CI_FORMATS.length} cloud-init formats = ${conversions} renders in ${ciFormatsMs.toFixed(3)} ms (${((ciFormatsMs / conversions) * 1000).toFixed(1)} us each)`);

const tmp = mkdtempSync(join(tmpdir(), 'ipvisor-bench-guest-'));
try {
  const docFiles = valid.map((c) => {
    const p = join(tmp, `${c.name}.json`);
    writeFileSync(p, JSON.stringify(c.doc));
    return { c, p };
  });
  const timeProcesses = (label: string, argv: (c: (typeof docFiles)[number], f: GuestFormat, out: string) => [string, string[]]) => {
    let total = 0;
    let failed = 0;
    const times: number[] = [];
    for (const d of docFiles) {
      for (const f of CI_FORMATS) {
        const out = join(tmp, `${label}-${d.c.name}-${f}`);
        const [cmd, a] = argv(d, f, out);
        const s = performance.now();
        const r = spawnSync(cmd, a, { stdio: 'pipe' });
        const e = performance.now() - s;
        total += e;
        times.push(e);
        if (r.status !== 0) failed++;
      }
    }
    times.sort((x, y) => x - y);
    return { total, failed, median: times[Math.floor(times.length / 2)]! };
  };
  const rows: [string, number, number, number][] = [['ipvisor in-process', ciFormatsMs, ciFormatsMs / conversions, 0]];
  if (withCli && existsSync('dist/ipvisor.js')) {
    const r = timeProcesses('ipvisor', (d, f, out) => [process.execPath, ['dist/ipvisor.js', 'guest', 'render', '--input', d.p, '--format', f, '--out', out, ...Object.entries(d.c.nics).flatMap(([mac, n]) => ['--nic', `${n}=${mac}`])]]);
    rows.push(['ipvisor CLI (1 process each)', r.total, r.median, r.failed]);
  } else if (withCli) console.log('(ipvisor CLI process timing skipped: run `npm run build` first)');
  if (withCloudInit && spawnSync('cloud-init', ['--version']).status === 0) {
    const r = timeProcesses('cloudinit', (d, f, out) => {
      const [kind, distro] = CLOUD_INIT[f]!;
      return ['cloud-init', ['devel', 'net-convert', '-p', d.p, '-k', 'network_data.json', '-d', out, '-D', distro, '-O', kind, ...Object.entries(d.c.nics).flatMap(([mac, n]) => ['-m', `${n},${mac}`])]];
    });
    rows.push(['cloud-init net-convert (1 process each)', r.total, r.median, r.failed]);
  } else if (withCloudInit) console.log('(cloud-init net-convert skipped: install the Debian package cloud-init)');
  console.log(`\n${conversions} conversions (${valid.length} docs x ${CI_FORMATS.join('/')})`);
  console.log(`${'what'.padEnd(42)}${'total ms'.padStart(10)}${'per conv'.padStart(10)}  failed`);
  for (const [name, total, per, failed] of rows) console.log(`${name.padEnd(42)}${ms(total)}${ms(per)}  ${failed}`);
  const ci = rows.find((r) => r[0].startsWith('cloud-init'));
  if (ci) {
    console.log(`\nratio cloud-init / ipvisor in-process: ${(ci[1] / ciFormatsMs).toFixed(0)}x`);
    const cli = rows.find((r) => r[0].startsWith('ipvisor CLI'));
    if (cli) console.log(`ratio cloud-init / ipvisor CLI process: ${(ci[1] / cli[1]).toFixed(1)}x`);
  }
} finally {
  rmSync(tmp, { recursive: true, force: true });
}

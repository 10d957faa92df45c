// Every test file that can reach the host (network namespaces, host enforcement, hooks, serve,
// root-only tools) calls guardRootNamespace() (test/support/root-guard.ts), so a test that applies
// outside its namespace, or writes ipvisor's real run or state directory, fails where it runs
// instead of leaving tables on the CI machine for someone to find later. A static audit of the test
// sources, like skip-audit.test.ts; and the guard's comparison itself, on snapshots made here.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { readdirSync, readFileSync } from 'node:fs';
import { join, relative } from 'node:path';
import { rootChanges, type RootSnapshot } from '../support/root-guard.js';

const ROOT = new URL('../', import.meta.url).pathname;

/** What marks a file as able to touch the host. */
const REACHES_HOST = /netnsSkipReason|libvirtSkipReason|'netns'|IPVISOR_NETNS|createHostRunner|applyHost|teardownHost|hookEvent|\bserve\(|'apply'|'teardown'|'serve'|'agent'|'hook'|\bTopology\b|getuid/;

/** Files left out, each with why. */
const EXEMPT: Record<string, string> = {
  'ops/skip-audit.test.ts': 'names the markers as strings only',
  'ops/root-guard-audit.test.ts': 'this audit',
};

function files(dir: string): string[] {
  return readdirSync(dir, { withFileTypes: true }).flatMap((e) => (e.isDirectory() ? files(join(dir, e.name)) : [join(dir, e.name)]));
}

test('every test file that can reach the host guards the root namespace', () => {
  const missing: string[] = [];
  let checked = 0;
  for (const path of files(ROOT)) {
    const rel = relative(ROOT, path);
    if (!(rel.endsWith('.test.ts') || (rel.startsWith('package/') && rel.endsWith('.ts')))) continue;
    const text = readFileSync(path, 'utf8');
    if (!REACHES_HOST.test(text) || rel in EXEMPT) continue;
    checked++;
    if (!/^guardRootNamespace\(\);$/m.test(text)) missing.push(rel);
  }
  assert.ok(checked >= 25, `the audit found only ${checked} host-reaching test files: is the pattern still right?`);
  assert.deepEqual(missing, [], `call guardRootNamespace() (test/support/root-guard.ts) at the top level of:\n  ${missing.join('\n  ')}`);
  for (const rel of Object.keys(EXEMPT)) assert.ok(files(ROOT).some((p) => relative(ROOT, p) === rel), `exempt file ${rel} no longer exists: drop it from the list`);
});

test('the guard reports tables made, changed or removed, interfaces and files, and nothing else', () => {
  const base: RootSnapshot = {
    tables: { 'inet other': 'x' },
    links: ['eth0', 'lo'],
    files: ['/var/lib/ipvisor/ipvisor.db size=4096 mtime=1'],
  };
  assert.deepEqual(rootChanges(base, structuredClone(base)), []);
  const made = { ...structuredClone(base), tables: { ...base.tables, 'bridge ipvisor': 'table bridge ipvisor { # handle 7\n}' } };
  assert.deepEqual(rootChanges(base, made), ['nft table bridge ipvisor created in the root network namespace']);
  const remade = { ...structuredClone(made), tables: { ...made.tables, 'bridge ipvisor': 'table bridge ipvisor { # handle 9\n}' } };
  assert.deepEqual(rootChanges(made, remade), ['nft table bridge ipvisor changed in the root network namespace']);
  assert.deepEqual(rootChanges(made, base), ['nft table bridge ipvisor removed from the root network namespace']);
  assert.deepEqual(rootChanges(base, { ...structuredClone(base), links: ['eth0', 'iv1a2bbr', 'lo'] }), ['interface iv1a2bbr added to the root network namespace']);
  assert.deepEqual(rootChanges(base, { ...structuredClone(base), links: ['lo'] }), ['interface eth0 removed from the root network namespace']);
  assert.deepEqual(rootChanges(base, { ...structuredClone(base), files: [...base.files, '/run/ipvisor/enforced-store.json size=133 mtime=2'] }), ['written: /run/ipvisor/enforced-store.json size=133 mtime=2']);
  assert.deepEqual(rootChanges(base, { ...structuredClone(base), files: ['/var/lib/ipvisor/ipvisor.db size=8192 mtime=3'] }), ['written: /var/lib/ipvisor/ipvisor.db size=8192 mtime=3']);
  assert.deepEqual(rootChanges(base, { ...structuredClone(base), files: [] }), ['removed: /var/lib/ipvisor/ipvisor.db']);
});

// Bundles the XCP-ng dom0 binder into ONE JavaScript file with no native modules (dom0 has an old
// userland and no build tools): dist/ipvisor-dom0.cjs (.cjs: CommonJS whatever package.json says, in the repo and alone in dom0). Run: node scripts/build-dom0.mjs
import { build } from 'esbuild';
import { fileURLToPath } from 'node:url';
import { dirname, join } from 'node:path';

const root = join(dirname(fileURLToPath(import.meta.url)), '..');
const outfile = join(root, 'dist', 'ipvisor-dom0.cjs');
await build({
  entryPoints: [join(root, 'src/agent/dom0/bundle-entry.ts')],
  outfile,
  bundle: true,
  platform: 'node',
  format: 'cjs',
  target: 'node16',
  banner: { js: '#!/usr/bin/env node' },
  // Fail the build if anything native sneaks in.
  external: [],
  logLevel: 'warning',
});
process.stdout.write(`built ${outfile}\n`);

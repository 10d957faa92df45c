// Bundles the libvirt hook entry (src/agent/libvirt/hook-main.ts) into one CommonJS file,
// dist/libvirt-hook.cjs, which `ipvisor libvirt install` points the hook scripts at. CommonJS and
// minified because libvirt blocks the VM start on every hook call: one CJS file loads in about
// half the time of the ESM bundle (bench/hooks). better-sqlite3 stays external (native module).
//   node scripts/build-libvirt-hook.mjs [OUTFILE]
import { build } from 'esbuild';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';

const root = resolve(dirname(fileURLToPath(import.meta.url)), '..');
const outfile = resolve(process.argv[2] ?? join(root, 'dist', 'libvirt-hook.cjs'));
await build({
  entryPoints: [join(root, 'src', 'agent', 'libvirt', 'hook-main.ts')],
  bundle: true,
  platform: 'node',
  target: 'node20',
  format: 'cjs',
  minify: true,
  outfile,
  external: ['better-sqlite3'],
  logLevel: 'warning',
});

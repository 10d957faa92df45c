// Bundles the libvirt hook into two CommonJS files side by side:
//   - dist/libvirt-hook.cjs (src/agent/libvirt/hook-entry.ts), which `ipvisor libvirt install`
//     points the hook scripts at: Node built-ins only, it hands the call to the local agent;
//   - dist/libvirt-hook-full.cjs (src/agent/libvirt/hook-main.ts), the whole hook, loaded by the
//     first only when this is no agent host or no agent answered.
// CommonJS and minified because libvirt blocks the VM start on every hook call: one CJS file loads
// in about half the time of the ESM bundle (bench/hooks). better-sqlite3 stays external (native module).
//   node scripts/build-libvirt-hook.mjs [OUTFILE]   (the full hook goes beside it, as libvirt-hook-full.cjs)
import { build } from 'esbuild';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';

const root = resolve(dirname(fileURLToPath(import.meta.url)), '..');
const outfile = resolve(process.argv[2] ?? join(root, 'dist', 'libvirt-hook.cjs'));
const common = { bundle: true, platform: 'node', target: 'node20', format: 'cjs', minify: true, logLevel: 'warning' };
await build({ ...common, entryPoints: [join(root, 'src', 'agent', 'libvirt', 'hook-entry.ts')], outfile, external: ['./libvirt-hook-full.cjs'] });
await build({ ...common, entryPoints: [join(root, 'src', 'agent', 'libvirt', 'hook-main.ts')], outfile: join(dirname(outfile), 'libvirt-hook-full.cjs'), external: ['better-sqlite3'] });

// Bundles the hook entry (src/drivers/libvirt/hook-main.ts) with esbuild the way a release build
// does, into node_modules/.cache so that the external better-sqlite3 resolves from the repo's
// node_modules. Tests and bench/hooks use it to run hooks as libvirt would.
import { build } from 'esbuild';
import { mkdirSync } from 'node:fs';
import { join } from 'node:path';
import { packageRoot } from '../../../src/drivers/libvirt/install.js';

export async function buildHookBundle(): Promise<string> {
  const root = packageRoot();
  const outDir = join(root, 'node_modules', '.cache', 'ipvisor-test');
  mkdirSync(outDir, { recursive: true });
  const outfile = join(outDir, 'libvirt-hook.mjs');
  await build({
    entryPoints: [join(root, 'src', 'drivers', 'libvirt', 'hook-main.ts')],
    bundle: true,
    platform: 'node',
    target: 'node20',
    format: 'esm',
    outfile,
    external: ['better-sqlite3'],
    banner: { js: "import { createRequire as __cr } from 'node:module'; const require = __cr(import.meta.url);" },
    minify: true,
    logLevel: 'error',
  });
  return outfile;
}

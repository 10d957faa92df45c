// Bundles the CLI with esbuild: one ESM entry plus lazily loaded chunks, so a hook or a short CLI call
// loads only the code it runs. better-sqlite3 stays external (native module).
import { build } from 'esbuild';
import { existsSync } from 'node:fs';
import { rm } from 'node:fs/promises';
import { spawnSync } from 'node:child_process';

await rm('dist', { recursive: true, force: true });
await build({
  entryPoints: { ipvisor: 'src/cli/entry.ts' },
  bundle: true,
  splitting: true,
  format: 'esm',
  platform: 'node',
  target: 'node20',
  outdir: 'dist',
  chunkNames: 'chunks/[name]-[hash]',
  external: ['better-sqlite3'],
  sourcemap: 'linked',
  banner: { js: "import { createRequire as __ipvisorCreateRequire } from 'node:module'; const require = __ipvisorCreateRequire(import.meta.url);" },
  logLevel: 'warning',
});

// Other bundles (the dom0 binder) build themselves.
for (const extra of ['scripts/build-dom0.mjs', 'scripts/build-libvirt-hook.mjs']) {
  if (existsSync(extra)) {
    const r = spawnSync(process.execPath, [extra], { stdio: 'inherit' });
    if (r.status !== 0) process.exit(r.status ?? 1);
  }
}

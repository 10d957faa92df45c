// Builds the hook bundle exactly as a release does (scripts/build-libvirt-hook.mjs), into
// node_modules/.cache so that the external better-sqlite3 resolves from the repo's node_modules.
// Tests and bench/hooks use it to run hooks as libvirt would.
import { execFileSync } from 'node:child_process';
import { mkdirSync } from 'node:fs';
import { join } from 'node:path';
import { packageRoot } from '../../../src/agent/libvirt/install.js';

export async function buildHookBundle(): Promise<string> {
  const root = packageRoot();
  const outDir = join(root, 'node_modules', '.cache', 'ipvisor-test');
  mkdirSync(outDir, { recursive: true });
  const outfile = join(outDir, 'libvirt-hook.cjs');
  execFileSync(process.execPath, [join(root, 'scripts', 'build-libvirt-hook.mjs'), outfile], { stdio: ['ignore', 'inherit', 'inherit'] });
  return outfile;
}

// Fails a test file that changed this machine itself instead of its own namespaces and temp dirs:
// ipvisor's nftables tables in the ROOT network namespace (created, changed or removed), an
// interface added to or removed from the root namespace, or a file written under ipvisor's real
// run and state directories (/run/ipvisor, /var/lib/ipvisor). Host enforcement tests must run
// everything inside namespaces they make (IPVISOR_NETNS or a runner with `netns`); one that falls
// back to the default runner enforces on the machine running the suite (found after a CI run: empty
// `bridge ipvisor` / `inet ipvisor` tables in the root namespace).
//
// Call guardRootNamespace() at the top level of a test file. It compares the machine when the file
// starts with the machine when its process exits. Only as root (listing nftables needs it; without
// root nothing here can be changed either).
// test/ops/root-guard-audit.test.ts checks that every test file able to reach the host calls it.
import { spawnSync } from 'node:child_process';
import { mkdtempSync, readdirSync, rmSync, statSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';

/** ipvisor's real runtime and state directories (a test's IPVISOR_RUN_DIR/--db point elsewhere). */
export const GUARDED_DIRS = ['/run/ipvisor', '/var/lib/ipvisor'];

export interface RootSnapshot {
  /** `nft -a list table FAMILY ipvisor` of each ipvisor table in the root namespace (handles
   * included, so a table removed and made again, or a chain re-created, differs). */
  tables: Record<string, string>;
  /** Interface names in the root namespace. */
  links: string[];
  /** Entries of GUARDED_DIRS with size and modification time. */
  files: string[];
}

function run(argv: string[]): { code: number; out: string } {
  const r = spawnSync(argv[0]!, argv.slice(1), { encoding: 'utf8', maxBuffer: 64 << 20 });
  return { code: r.status ?? 1, out: r.stdout ?? '' };
}

function listFiles(dir: string, out: string[]): void {
  let names: string[];
  try {
    names = readdirSync(dir);
  } catch {
    return; // absent: nothing to compare
  }
  // the directory itself: made by a test that took the real host lock (its file is gone again)
  out.push(`${dir}/ (directory)`);
  for (const n of names.sort()) {
    const p = join(dir, n);
    try {
      const st = statSync(p);
      if (st.isDirectory()) listFiles(p, out);
      else out.push(`${p} size=${st.size} mtime=${st.mtimeMs}`);
    } catch {
      out.push(`${p} (vanished while listed)`);
    }
  }
}

/** What the root namespace and ipvisor's real directories hold now; null when not root or nft is missing. */
export function rootSnapshot(): RootSnapshot | null {
  if (process.getuid?.() !== 0) return null;
  const tables = run(['nft', 'list', 'tables']);
  if (tables.code !== 0) return null;
  const snap: RootSnapshot = { tables: {}, links: [], files: [] };
  for (const line of tables.out.split('\n')) {
    const m = /^table (\S+) (ipvisor\S*)$/.exec(line.trim());
    if (m) snap.tables[`${m[1]} ${m[2]}`] = run(['nft', '-a', 'list', 'table', m[1]!, m[2]!]).out;
  }
  for (const line of run(['ip', '-o', 'link', 'show']).out.split('\n')) {
    const m = /^\d+: ([^:@\s]+)/.exec(line);
    if (m) snap.links.push(m[1]!);
  }
  snap.links.sort();
  for (const d of GUARDED_DIRS) listFiles(d, snap.files);
  return snap;
}

/** The differences from `before` to `now`, one line each ([] when none). */
export function rootChanges(beforeSnap: RootSnapshot, now: RootSnapshot): string[] {
  const out: string[] = [];
  for (const t of Object.keys(now.tables)) {
    if (!(t in beforeSnap.tables)) out.push(`nft table ${t} created in the root network namespace`);
    else if (beforeSnap.tables[t] !== now.tables[t]) out.push(`nft table ${t} changed in the root network namespace`);
  }
  for (const t of Object.keys(beforeSnap.tables)) if (!(t in now.tables)) out.push(`nft table ${t} removed from the root network namespace`);
  const had = new Set(beforeSnap.links);
  const has = new Set(now.links);
  for (const l of now.links) if (!had.has(l)) out.push(`interface ${l} added to the root network namespace`);
  for (const l of beforeSnap.links) if (!has.has(l)) out.push(`interface ${l} removed from the root network namespace`);
  const fb = new Set(beforeSnap.files);
  const fn = new Set(now.files);
  for (const f of now.files) if (!fb.has(f)) out.push(`written: ${f}`);
  for (const f of beforeSnap.files) if (!fn.has(f) && !now.files.some((x) => x.split(' ')[0] === f.split(' ')[0])) out.push(`removed: ${f.split(' ')[0]}`);
  return out;
}

/** Registers the comparison for the calling test file: the first snapshot now, the second when the
 * process exits, after every hook, cleanup and late timer of the file (a failing `after` hook would
 * skip the file's own cleanup hooks after it, and a reconcile still pending after cleanup is
 * exactly what leaks). A difference is printed and fails the file (exit code 1). */
export function guardRootNamespace(): void {
  const first = rootSnapshot();
  if (!first) return;
  process.once('exit', () => {
    const now = rootSnapshot();
    if (!now) return;
    const changes = rootChanges(first, now);
    if (!changes.length) return;
    process.stderr.write(
      `root-guard: this test file changed the machine outside its namespaces and temp dirs (host enforcement without IPVISOR_NETNS or a runner's netns? a hook without its run dir?):\n  ${changes.join('\n  ')}\n`,
    );
    process.exitCode = 1;
  });
}

/** Points IPVISOR_RUN_DIR (host and guest-push locks, the enforced-store record) at a directory of
 * this test process, removed when it exits, for files whose code takes a lock without a test
 * namespace set-up of its own. Returns the directory. */
export function privateRunDir(): string {
  const dir = mkdtempSync(join(tmpdir(), 'ipv-run-'));
  process.env.IPVISOR_RUN_DIR = dir;
  process.once('exit', () => rmSync(dir, { recursive: true, force: true }));
  return dir;
}

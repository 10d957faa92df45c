// The real offline validators for each rendered format (NOTES.md section 5). Each returns the
// problems found (empty = valid) or null when the tool is not installed here.
import { execFile, spawn } from 'node:child_process';
import { chmodSync, existsSync, mkdirSync, mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { createRequire } from 'node:module';
import { promisify } from 'node:util';
import type { RenderedFiles } from '../../src/core/guest/ir.js';

const run = promisify(execFile);

export function which(tool: string): string | null {
  for (const d of ['/usr/sbin', '/usr/bin', '/sbin', '/bin', '/lib/systemd']) if (existsSync(join(d, tool))) return join(d, tool);
  return null;
}

async function exec(cmd: string, args: string[], opts: { input?: string; env?: NodeJS.ProcessEnv } = {}): Promise<{ code: number; out: string }> {
  return new Promise((resolve, reject) => {
    const child = spawn(cmd, args, { env: opts.env ?? process.env, stdio: [opts.input === undefined ? 'ignore' : 'pipe', 'pipe', 'pipe'] });
    let out = '';
    child.stdout!.on('data', (d) => (out += d));
    child.stderr!.on('data', (d) => (out += d));
    child.on('error', reject);
    child.on('close', (code) => resolve({ code: code ?? -1, out }));
    if (child.stdin) {
      child.stdin.on('error', () => undefined); // the tool may exit before reading everything
      child.stdin.end(opts.input);
    }
  });
}

function writeTree(files: RenderedFiles): string {
  const root = mkdtempSync(join(tmpdir(), 'ipvisor-guest-'));
  for (const [p, c] of Object.entries(files)) {
    mkdirSync(dirname(join(root, p)), { recursive: true });
    writeFileSync(join(root, p), c);
  }
  return root;
}

async function withTree<T>(files: RenderedFiles, fn: (root: string) => Promise<T>): Promise<T> {
  const root = writeTree(files);
  try {
    return await fn(root);
  } finally {
    rmSync(root, { recursive: true, force: true });
  }
}

export async function validateNetplan(files: RenderedFiles): Promise<string[] | null> {
  if (!which('netplan')) return null;
  return withTree(files, async (root) => {
    for (const p of Object.keys(files)) chmodSync(join(root, p), 0o600);
    const r = await exec('netplan', ['generate', '--root-dir', root]);
    // any output is a warning (deprecated keys, permissions) or an error
    if (r.code !== 0 || r.out.trim() !== '') return [`netplan generate rc=${r.code}: ${r.out.trim()}`];
    // with renderer NetworkManager netplan writes keyfiles: they must satisfy nmcli
    const nmDir = join(root, 'run/NetworkManager/system-connections');
    if (existsSync(nmDir)) {
      const keyfiles = Object.fromEntries(readdirSync(nmDir).map((f) => [f, readFileSync(join(nmDir, f), 'utf8')]));
      return ((await validateNm(keyfiles)) ?? []).map((p) => `netplan's NetworkManager output: ${p}`);
    }
    // and what netplan generated for its networkd backend must satisfy networkd itself
    const generated = join(root, 'run/systemd/network');
    if (!existsSync(generated)) return [];
    const units = Object.fromEntries(readdirSync(generated).filter((f) => /\.(network|netdev)$/.test(f)).map((f) => [f, readFileSync(join(generated, f), 'utf8')]));
    return ((await validateNetworkd(units)) ?? []).map((p) => `netplan's networkd output: ${p}`);
  });
}

export async function validateEni(files: RenderedFiles): Promise<string[] | null> {
  if (!which('ifup')) return null;
  return withTree(files, async (root) => {
    const problems: string[] = [];
    for (const p of Object.keys(files)) {
      const r = await exec('ifup', ['--no-act', '-i', join(root, p), '-a']);
      const complaints = r.out.split('\n').filter((l) => l.startsWith('ifup:') && !l.startsWith('ifup: configuring interface'));
      if (r.code !== 0 || complaints.length) problems.push(`ifup --no-act ${p} rc=${r.code}: ${complaints.join(' | ')}`);
    }
    return problems;
  });
}

function keyfile(text: string): Map<string, string> {
  const m = new Map<string, string>();
  let section = '';
  for (const line of text.split('\n')) {
    const s = line.match(/^\[(.+)\]$/);
    if (s) section = s[1]!;
    const kv = line.match(/^([^#=][^=]*)=(.*)$/);
    if (kv) m.set(`${section}.${kv[1]}`, kv[2]!);
  }
  return m;
}

/** nmcli is lenient (drops bad values silently), so the normalised output must keep every key we wrote. */
export async function validateNm(files: RenderedFiles): Promise<string[] | null> {
  if (!which('nmcli')) return null;
  const problems: string[] = [];
  for (const [p, text] of Object.entries(files)) {
    const id = keyfile(text).get('connection.id')!;
    const r = await exec('nmcli', ['--offline', 'connection', 'modify', 'connection.id', id], { input: text });
    if (r.code !== 0) {
      problems.push(`nmcli --offline ${p} rc=${r.code}: ${r.out.trim()}`);
      continue;
    }
    const back = keyfile(r.out);
    const sent = keyfile(text);
    const port = sent.has('connection.master') || sent.has('connection.controller');
    for (const [k, v] of sent) {
      if (k === 'connection.autoconnect' && v === 'true') continue; // the default, so nmcli omits it
      if (port && /^ipv[46]\./.test(k)) continue; // a bond port has no IP settings of its own
      const got = back.get(k);
      const same = /mac-address$/.test(k) ? got?.toLowerCase() === v.toLowerCase() : got === v;
      if (!same) problems.push(`nmcli --offline ${p}: ${k}=${v} came back as ${got ?? '(dropped)'}`);
    }
  }
  return problems;
}

export const NETWORKD_CHECK = new URL('./networkd-check.sh', import.meta.url).pathname;

/** Runs the real systemd-networkd in private mount+net namespaces over the files (root only). */
export async function validateNetworkd(files: RenderedFiles): Promise<string[] | null> {
  if (!which('systemd-networkd') || !which('unshare') || process.getuid?.() !== 0) return null;
  const units = Object.fromEntries(Object.entries(files).filter(([p]) => !p.endsWith('.link')).map(([p, c]) => [p.split('/').pop()!, c]));
  if (Object.keys(units).length === 0) return [];
  return withTree(units, async (root) => {
    const r = await exec('bash', [NETWORKD_CHECK, root, '1']);
    return r.out
      .split('\n')
      .filter((l) => l.startsWith('/etc/systemd/network/') || /ipvisor.*(Failed|Cannot|Invalid|Unknown)/.test(l))
      .map((l) => `systemd-networkd: ${l}`);
  });
}

/** sysconfig has no real parser outside RHEL: shell syntax only; the ip script likewise. */
export async function validateShellSyntax(files: RenderedFiles, shell: 'bash' | 'sh' = 'bash'): Promise<string[]> {
  const problems: string[] = [];
  for (const [p, text] of Object.entries(files)) {
    const r = await exec(shell, ['-n'], { input: text });
    if (r.code !== 0) problems.push(`${shell} -n ${p}: ${r.out.trim()}`);
  }
  return problems;
}

/**
 * PowerShell syntax through tree-sitter's PowerShell grammar (WebAssembly; there is no pwsh in
 * Debian). It catches syntax errors (unbalanced braces, bad quoting), not unknown cmdlets.
 */
let psParser: Promise<{ parse(text: string): { rootNode: TsNode } | null }> | undefined;
interface TsNode {
  type: string;
  isMissing: boolean;
  text: string;
  startPosition: { row: number; column: number };
  children: (TsNode | null)[];
}
export async function validatePowerShell(files: RenderedFiles): Promise<string[]> {
  psParser ??= (async () => {
    const { Parser, Language } = await import('web-tree-sitter');
    await Parser.init();
    const lang = await Language.load(createRequire(import.meta.url).resolve('tree-sitter-powershell/tree-sitter-powershell.wasm'));
    const parser = new Parser();
    parser.setLanguage(lang);
    return parser as unknown as { parse(text: string): { rootNode: TsNode } | null };
  })();
  const parser = await psParser;
  const problems: string[] = [];
  for (const [p, text] of Object.entries(files)) {
    const tree = parser.parse(text);
    const walk = (n: TsNode | null): void => {
      if (!n) return;
      if (n.type === 'ERROR' || n.isMissing) problems.push(`PowerShell syntax ${p}:${n.startPosition.row + 1}:${n.startPosition.column + 1}: ${n.isMissing ? `missing ${n.type}` : `unexpected '${n.text.slice(0, 40)}'`}`);
      n.children.forEach(walk);
    };
    walk(tree?.rootNode ?? null);
  }
  return problems;
}

export { run };

// Runs the CLI in-process against a given store, capturing output (much faster than spawning).
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { runCli } from '../../src/cli/main.js';

export interface CliResult {
  code: number;
  stdout: string;
  stderr: string;
  /** stdout parsed as JSON when --json was given and it parses. */
  json: any;
  /** stderr's {"error": ...} when --json was given. */
  error: { code: string; message: string; field: string | null } | undefined;
}

export async function cli(db: string, ...args: string[]): Promise<CliResult> {
  let stdout = '';
  let stderr = '';
  const code = await runCli(['--db', db, ...args], {
    stdout: (s) => (stdout += s),
    stderr: (s) => (stderr += s),
    env: { ...process.env, IPVISOR_ACTOR: 'tester' },
  });
  let json: any;
  let error: CliResult['error'];
  if (args.includes('--json')) {
    try { json = JSON.parse(stdout); } catch { json = undefined; }
    try { error = JSON.parse(stderr).error; } catch { error = undefined; }
  }
  return { code, stdout, stderr, json, error };
}

/** A fresh store path in a temp dir, removed by the returned cleanup. */
export function tempDb(): { db: string; cleanup: () => void } {
  const dir = mkdtempSync(join(tmpdir(), 'ipvisor-test-'));
  return { db: join(dir, 'ipvisor.db'), cleanup: () => rmSync(dir, { recursive: true, force: true }) };
}

/** Runs the CLI in-process with the environment as the test set it (IPVISOR_DB, IPVISOR_NETNS ...). */
export async function cliInEnv(args: string[]): Promise<{ code: number; out: string; err: string }> {
  let out = '';
  let err = '';
  const code = await runCli(args, { stdout: (s) => (out += s), stderr: (s) => (err += s), env: process.env });
  return { code, out, err };
}

// A real PostgreSQL for tests and benchmarks, from Debian's packages: initdb in a temporary
// directory as user `postgres`, a Unix socket in that directory and no TCP, stopped by PID.
import { spawn, execFileSync, type ChildProcess } from 'node:child_process';
import { chmodSync, existsSync, mkdtempSync, readdirSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import pg from 'pg';
import { skipUnless } from './skip.js';

export interface PostgresServer {
  /** The socket directory (libpq host=). */
  dir: string;
  pid: number;
  /** A URL of a new, empty database on this server. */
  newDatabase(name?: string): Promise<string>;
  stop(): Promise<void>;
}

/** The newest Debian PostgreSQL bin directory, or undefined. */
export function postgresBinDir(): string | undefined {
  const root = '/usr/lib/postgresql';
  if (!existsSync(root)) return undefined;
  const versions = readdirSync(root).filter((v) => existsSync(join(root, v, 'bin', 'initdb'))).sort((a, b) => Number(b) - Number(a));
  return versions.length ? join(root, versions[0], 'bin') : undefined;
}

/** Why PostgreSQL tests cannot run here (through the shared skip gate), or false. */
export function postgresSkip(): string | false {
  if (process.getuid?.() !== 0) return skipUnless('PostgreSQL tests need root (initdb runs as user postgres via runuser)');
  if (!postgresBinDir()) return skipUnless('PostgreSQL is not installed (apt-get install postgresql)');
  try {
    execFileSync('id', ['postgres'], { stdio: 'ignore' });
  } catch {
    return skipUnless('there is no user postgres (apt-get install postgresql)');
  }
  return false;
}

let counter = 0;

/** Starts a PostgreSQL server. `durable: false` (tests) turns fsync off; benchmarks keep it on. */
export async function startPostgres(opts: { durable?: boolean; maxConnections?: number } = {}): Promise<PostgresServer> {
  const bin = postgresBinDir();
  if (!bin) throw new Error('PostgreSQL is not installed');
  const dir = mkdtempSync(join(tmpdir(), 'ipvisor-pg-'));
  chmodSync(dir, 0o755);
  execFileSync('chown', ['postgres:postgres', dir]);
  const data = join(dir, 'data');
  execFileSync('runuser', ['-u', 'postgres', '--', join(bin, 'initdb'), '-D', data, '-U', 'postgres', '-A', 'trust', '-E', 'UTF8', '--locale=C.UTF-8', '--no-sync'], { stdio: 'pipe', cwd: dir });
  const settings = [
    '-c', "listen_addresses=", '-c', `unix_socket_directories=${dir}`, '-c', `max_connections=${opts.maxConnections ?? 100}`,
    '-c', 'shared_buffers=64MB', '-c', 'logging_collector=off',
    ...(opts.durable ? [] : ['-c', 'fsync=off', '-c', 'synchronous_commit=off', '-c', 'full_page_writes=off']),
  ];
  const child: ChildProcess = spawn('runuser', ['-u', 'postgres', '--', join(bin, 'postgres'), '-D', data, ...settings], { stdio: ['ignore', 'ignore', 'pipe'], cwd: dir });
  let log = '';
  child.stderr!.on('data', (d) => (log = (log + d).slice(-4000)));
  const exited = new Promise<void>((resolve) => child.once('exit', () => resolve()));
  const pid = child.pid!;
  const base = `postgresql://postgres@/postgres?host=${encodeURIComponent(dir)}`;
  // Ready when a connection succeeds (the socket appears before it accepts).
  const deadline = Date.now() + 30_000;
  for (;;) {
    const c = new pg.Client({ connectionString: base });
    try {
      await c.connect();
      await c.end();
      break;
    } catch (err) {
      await c.end().catch(() => undefined);
      if (child.exitCode !== null || Date.now() > deadline) {
        rmSync(dir, { recursive: true, force: true });
        throw new Error(`PostgreSQL did not start: ${(err as Error).message}\n${log}`);
      }
      await new Promise((r) => setTimeout(r, 100));
    }
  }
  const postmasterPid = Number(readFileSync(join(data, 'postmaster.pid'), 'utf8').split('\n')[0]) || undefined;
  return {
    dir,
    pid: postmasterPid ?? pid,
    async newDatabase(name?: string) {
      const db = name ?? `t${process.pid}_${++counter}`;
      const c = new pg.Client({ connectionString: base });
      await c.connect();
      try {
        await c.query(`CREATE DATABASE "${db}"`);
      } finally {
        await c.end();
      }
      return `postgresql://postgres@/${db}?host=${encodeURIComponent(dir)}`;
    },
    async stop() {
      // SIGINT to the postmaster (its PID is the first line of postmaster.pid) is the fast shutdown:
      // clients are cut, the server exits, and runuser with it.
      const target = postmasterPid ?? pid;
      try {
        process.kill(target, 'SIGINT');
      } catch {
        // already gone
      }
      const timer = setTimeout(() => {
        try { process.kill(target, 'SIGKILL'); } catch { /* gone */ }
        try { process.kill(pid, 'SIGKILL'); } catch { /* gone */ }
      }, 15_000);
      await exited;
      clearTimeout(timer);
      rmSync(dir, { recursive: true, force: true });
    },
  };
}

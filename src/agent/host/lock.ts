// Host-wide lock serialising every apply on this host (libvirt hooks run in parallel, and serve
// runs too). A lock file created with O_EXCL that holds the owner's pid; a lock whose pid is dead
// is taken over. No child process, so the one-VIF path stays fast.
import { mkdirSync, openSync, closeSync, readFileSync, unlinkSync, writeSync } from 'node:fs';
import { join } from 'node:path';
import { IpvisorError } from '../../core/model/errors.js';

export function runDir(): string {
  return process.env.IPVISOR_RUN_DIR || '/run/ipvisor';
}

function alive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch (e) {
    return (e as NodeJS.ErrnoException).code === 'EPERM';
  }
}

/** In-process queue per lock path: async callers in one process wait for each other first. */
const queues = new Map<string, Promise<unknown>>();

/** Runs fn while holding the host lock (not re-entrant). */
export async function withHostLock<T>(fn: () => Promise<T>, opts: { timeoutMs?: number; name?: string } = {}): Promise<T> {
  const path = join(runDir(), opts.name ?? 'host.lock');
  const prev = queues.get(path) ?? Promise.resolve();
  const run = prev.catch(() => undefined).then(() => withFileLock(path, fn, opts.timeoutMs ?? 60_000));
  queues.set(path, run);
  try {
    return await run;
  } finally {
    if (queues.get(path) === run) queues.delete(path);
  }
}

async function withFileLock<T>(path: string, fn: () => Promise<T>, timeoutMs: number): Promise<T> {
  const dir = runDir();
  mkdirSync(dir, { recursive: true });
  const deadline = Date.now() + timeoutMs;
  let delay = 1;
  for (;;) {
    try {
      const fd = openSync(path, 'wx', 0o644);
      writeSync(fd, `${process.pid}\n`);
      closeSync(fd);
      break;
    } catch (e) {
      if ((e as NodeJS.ErrnoException).code !== 'EEXIST') throw e;
      let pid = NaN;
      try {
        pid = Number(readFileSync(path, 'utf8').trim());
      } catch {
        continue; // released between our open and read
      }
      if (Number.isInteger(pid) && pid > 0 && !alive(pid)) {
        try {
          unlinkSync(path);
        } catch {
          /* someone else took it over first */
        }
        continue;
      }
      if (Date.now() > deadline) throw new IpvisorError('HOST_COMMAND', `host lock ${path} held by pid ${pid} for too long`);
      await new Promise((r) => setTimeout(r, delay));
      delay = Math.min(delay * 2, 20);
    }
  }
  try {
    return await fn();
  } finally {
    try {
      unlinkSync(path);
    } catch {
      /* already gone */
    }
  }
}

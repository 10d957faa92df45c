// Host-wide lock serialising every apply on this host (libvirt hooks run in parallel, and serve
// runs too). A lock file that holds the owner's pid, created whole (link of a written file); a lock
// whose pid is dead, or that holds no pid at all (empty, garbage), is taken over. No child
// process, so the one-VIF path stays fast.
import { mkdirSync, openSync, closeSync, linkSync, readFileSync, unlinkSync, writeSync } from 'node:fs';
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

/**
 * Creates the lock file with our pid in it, all at once: the pid goes into a private file that is
 * then hard-linked to the lock path (link fails with EEXIST when the lock is taken). A lock file is
 * therefore never seen empty or half-written while its owner lives, and a full disk leaves no empty
 * lock behind (the private file is removed either way).
 */
function takeLock(path: string): void {
  const tmp = `${path}.${process.pid}.${Math.random().toString(36).slice(2, 10)}`;
  try {
    const fd = openSync(tmp, 'wx', 0o644);
    try {
      writeSync(fd, `${process.pid}\n`);
    } finally {
      closeSync(fd);
    }
    linkSync(tmp, path);
  } finally {
    try {
      unlinkSync(tmp);
    } catch {
      /* never created */
    }
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
      takeLock(path);
      break;
    } catch (e) {
      if ((e as NodeJS.ErrnoException).code !== 'EEXIST') {
        const code = (e as NodeJS.ErrnoException).code;
        if (code === 'ENOSPC' || code === 'EDQUOT' || code === 'EROFS' || code === 'EACCES') {
          throw new IpvisorError('HOST_COMMAND', `host lock ${path} cannot be created (${code}): ${(e as Error).message}`, { cause: e });
        }
        throw e;
      }
      let text: string;
      try {
        text = readFileSync(path, 'utf8').trim();
      } catch {
        continue; // released between our attempt and the read
      }
      // the lock appears whole (takeLock links a written file): a file without a pid is no one's
      const pid = /^\d+$/.test(text) ? Number(text) : NaN;
      if (!(Number.isSafeInteger(pid) && pid > 0) || !alive(pid)) {
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

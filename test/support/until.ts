// Polls until a condition holds, or fails naming what it waited for. The one wait loop of the tests
// that watch a daemon, an agent or the kernel catch up.
export interface UntilOptions {
  /** Give up after this long (default 20 s). */
  ms?: number;
  /** Poll interval (default 100 ms). */
  everyMs?: number;
  /** A throwing check counts as "not yet" (a server that is still coming back), not as a failure. */
  retryErrors?: boolean;
}

export async function until(what: string, fn: () => boolean | Promise<boolean>, opts: UntilOptions | number = {}): Promise<void> {
  const o = typeof opts === 'number' ? { ms: opts } : opts;
  const end = Date.now() + (o.ms ?? 20_000);
  while (Date.now() < end) {
    const ok = o.retryErrors ? await Promise.resolve().then(fn).catch(() => false) : await fn();
    if (ok) return;
    await new Promise((r) => setTimeout(r, o.everyMs ?? 100));
  }
  throw new Error(`timed out waiting for ${what}`);
}

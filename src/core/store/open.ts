import { homedir } from 'node:os';
import { join } from 'node:path';
import type { Store } from './store.js';
import type { SqliteOptions } from './sqlite/sqlite-store.js';

/** The store path: explicit, else IPVISOR_DB, else /var/lib/ipvisor when root, else the user's data dir. */
export function defaultStorePath(env: NodeJS.ProcessEnv = process.env): string {
  if (env.IPVISOR_DB) return env.IPVISOR_DB;
  if (process.getuid?.() === 0) return '/var/lib/ipvisor/ipvisor.db';
  const base = env.XDG_DATA_HOME || join(homedir(), '.local', 'share');
  return join(base, 'ipvisor', 'ipvisor.db');
}

/**
 * Opens the store at `path`. Without `create: true` a missing path, an empty file or a database
 * without ipvisor's schema is STORE_MISSING: enforcement and read-only commands never follow (or
 * leave behind) a store that just appeared empty. `ipvisor init` and write commands create.
 */
export async function openStore(path?: string, opts: SqliteOptions = {}): Promise<Store> {
  const { SqliteStore } = await import('./sqlite/sqlite-store.js');
  return new SqliteStore(path ?? defaultStorePath(), opts);
}

import { homedir } from 'node:os';
import { join } from 'node:path';
import { IpvisorError } from '../model/errors.js';
import type { Store } from './store.js';
import type { SqliteOptions } from './sqlite/sqlite-store.js';

/** The store path: explicit, else IPVISOR_DB, else /var/lib/ipvisor when root, else the user's data dir. */
export function defaultStorePath(env: NodeJS.ProcessEnv = process.env): string {
  if (env.IPVISOR_DB) return env.IPVISOR_DB;
  if (process.getuid?.() === 0) return '/var/lib/ipvisor/ipvisor.db';
  const base = env.XDG_DATA_HOME || join(homedir(), '.local', 'share');
  return join(base, 'ipvisor', 'ipvisor.db');
}

export type StoreLocation = { kind: 'sqlite'; path: string } | { kind: 'postgres'; url: string };

/** Reads a --store URL: `sqlite:PATH`, a libpq URI (`postgresql://user@/db?host=/run/postgresql`),
 * or a bare path (what --db takes). */
export function parseStoreUrl(url: string): StoreLocation {
  if (/^postgres(ql)?:\/\//.test(url)) return { kind: 'postgres', url };
  if (url.startsWith('sqlite:')) {
    const path = url.slice('sqlite:'.length).replace(/^\/\/(?=\/)/, '');
    if (!path) throw new IpvisorError('VALIDATION', 'store: sqlite: needs a path (sqlite:/var/lib/ipvisor/ipvisor.db)', { field: 'store' });
    return { kind: 'sqlite', path };
  }
  if (/^[a-z][a-z0-9+.-]*:\/\//i.test(url)) {
    throw new IpvisorError('VALIDATION', `store: '${url.replace(/:[^@/:]*@/, ':***@')}' is neither sqlite:PATH nor postgresql://...`, { field: 'store' });
  }
  if (!url) throw new IpvisorError('VALIDATION', 'store: empty', { field: 'store' });
  return { kind: 'sqlite', path: url };
}

/** Which store a command uses: --store, else --db, else IPVISOR_STORE, else IPVISOR_DB, else the default path. */
export function storeUrlFrom(opts: { store?: string; db?: string }, env: NodeJS.ProcessEnv = process.env): string {
  return opts.store ?? opts.db ?? env.IPVISOR_STORE ?? defaultStorePath(env);
}

/**
 * Opens the store at a path or URL (see parseStoreUrl); without one, the default SQLite path.
 * Without `create: true` a missing path, an empty file or a database without ipvisor's schema is
 * STORE_MISSING: enforcement and read-only commands never follow (or leave behind) a store that
 * just appeared empty. `ipvisor init` and write commands create. PostgreSQL alike: the database
 * must exist; without `create` one without ipvisor's tables is STORE_MISSING.
 */
export async function openStore(pathOrUrl?: string, opts: SqliteOptions = {}): Promise<Store> {
  const where = parseStoreUrl(pathOrUrl ?? defaultStorePath());
  if (where.kind === 'postgres') {
    const { PgStore } = await import('./postgres/pg-store.js');
    return PgStore.open(where.url, { create: opts.create });
  }
  const { SqliteStore } = await import('./sqlite/sqlite-store.js');
  return new SqliteStore(where.path, opts);
}

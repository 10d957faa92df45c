// What belongs to one host stays on that host (DESIGN.md "Control plane and agents"): the teardown
// ledger (what ipvisor added or changed, to revert), the nft digest, the per-VIF element records of
// the one-VIF path, and an agent's last desired state with the identity of the store it came from.
// One small SQLite file in the host's state directory (--state-dir, $IPVISOR_STATE_DIR, default
// /var/lib/ipvisor); the central store holds intent and facts only.
import Database from 'better-sqlite3';
import { mkdirSync } from 'node:fs';
import { dirname, join } from 'node:path';

export const STATE_FILE = 'host-state.db';

/**
 * The state directory: explicit, else $IPVISOR_STATE_DIR, else beside a one-box SQLite store (so
 * each store keeps its own host state, as the single box always did), else /var/lib/ipvisor.
 */
export function defaultStateDir(opts: { explicit?: string; storePath?: string; env?: NodeJS.ProcessEnv } = {}): string {
  const env = opts.env ?? process.env;
  if (opts.explicit) return opts.explicit;
  if (env.IPVISOR_STATE_DIR) return env.IPVISOR_STATE_DIR;
  if (opts.storePath && opts.storePath !== ':memory:') return dirname(opts.storePath);
  return '/var/lib/ipvisor';
}

export class HostLocalState {
  private readonly db: Database.Database;
  readonly path: string;

  constructor(readonly dir: string) {
    mkdirSync(dir, { recursive: true, mode: 0o700 });
    this.path = join(dir, STATE_FILE);
    this.db = new Database(this.path, { timeout: 15000 });
    this.db.pragma('journal_mode = WAL');
    this.db.pragma('synchronous = NORMAL');
    this.db.exec('CREATE TABLE IF NOT EXISTS state (kind TEXT NOT NULL, key TEXT NOT NULL, value TEXT NOT NULL, updated_at TEXT NOT NULL, PRIMARY KEY (kind, key))');
  }

  get<T>(kind: string, key: string): T | undefined {
    const row = this.db.prepare('SELECT value FROM state WHERE kind = ? AND key = ?').get(kind, key) as { value: string } | undefined;
    return row ? (JSON.parse(row.value) as T) : undefined;
  }

  list<T>(kind: string): Array<{ key: string; value: T }> {
    const rows = this.db.prepare('SELECT key, value FROM state WHERE kind = ? ORDER BY key').all(kind) as Array<{ key: string; value: string }>;
    return rows.map((r) => ({ key: r.key, value: JSON.parse(r.value) as T }));
  }

  put<T>(kind: string, key: string, value: T): void {
    this.db.prepare('INSERT INTO state (kind, key, value, updated_at) VALUES (?, ?, ?, ?) ON CONFLICT (kind, key) DO UPDATE SET value = excluded.value, updated_at = excluded.updated_at').run(kind, key, JSON.stringify(value), new Date().toISOString());
  }

  delete(kind: string, key: string): void {
    this.db.prepare('DELETE FROM state WHERE kind = ? AND key = ?').run(kind, key);
  }

  deleteKind(kind: string): void {
    this.db.prepare('DELETE FROM state WHERE kind = ?').run(kind);
  }

  /** Runs fn in one local transaction (many per-VIF records at once). */
  batch(fn: () => void): void {
    this.db.transaction(fn)();
  }

  close(): void {
    if (this.db.open) this.db.close();
  }
}

const opened = new Map<string, HostLocalState>();

/** One handle per directory per process (hooks, CLI and the agent share the file through SQLite's locking). */
export function openHostState(dir: string): HostLocalState {
  let s = opened.get(dir);
  if (!s) opened.set(dir, (s = new HostLocalState(dir)));
  return s;
}

export function closeHostStates(): void {
  for (const s of opened.values()) s.close();
  opened.clear();
}

// The store test matrix (Kysely's idea): the same suite runs on every backend. Each backend gives
// fresh, empty stores as --store URLs; PostgreSQL is a real server started once per test file.
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { postgresSkip, startPostgres, type PostgresServer } from './postgres.js';

export interface StoreBackend {
  name: 'sqlite' | 'postgres';
  /** A reason to skip (from the shared skip gate), or false. */
  skip: string | false;
  /** Starts what the backend needs (before()). */
  setup(): Promise<void>;
  /** A URL of a new, empty store. */
  newUrl(): Promise<string>;
  /** Stops and removes everything (after()). */
  teardown(): Promise<void>;
}

function sqliteBackend(): StoreBackend {
  let dir: string | undefined;
  let n = 0;
  return {
    name: 'sqlite',
    skip: false,
    async setup() {
      dir = mkdtempSync(join(tmpdir(), 'ipvisor-test-'));
    },
    async newUrl() {
      dir ??= mkdtempSync(join(tmpdir(), 'ipvisor-test-'));
      return `sqlite:${join(dir, `store${++n}.db`)}`;
    },
    async teardown() {
      if (dir) rmSync(dir, { recursive: true, force: true });
      dir = undefined;
    },
  };
}

function postgresBackend(): StoreBackend {
  let server: PostgresServer | undefined;
  const skip = postgresSkip();
  return {
    name: 'postgres',
    skip,
    async setup() {
      if (!skip) server ??= await startPostgres();
    },
    async newUrl() {
      server ??= await startPostgres();
      return server.newDatabase();
    },
    async teardown() {
      await server?.stop();
      server = undefined;
    },
  };
}

/** SQLite and PostgreSQL (IPVISOR_TEST_BACKENDS=sqlite or =postgres narrows it). */
export function storeBackends(): StoreBackend[] {
  const only = process.env.IPVISOR_TEST_BACKENDS?.split(',');
  return [sqliteBackend(), postgresBackend()].filter((b) => !only || only.includes(b.name));
}

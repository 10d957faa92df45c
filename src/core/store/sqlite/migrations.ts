// Schema migrations, applied in order inside one transaction each. Never edit a released entry:
// append a new one. The store refuses a database whose version is newer than the last entry.

export interface Migration {
  version: number;
  name: string;
  sql: string;
}

export const MIGRATIONS: Migration[] = [
  {
    version: 1,
    name: 'foundation',
    sql: `
      CREATE TABLE networks (
        uuid TEXT PRIMARY KEY,
        name TEXT NOT NULL UNIQUE,
        doc  TEXT NOT NULL
      );
      CREATE TABLE pools (
        uuid TEXT PRIMARY KEY,
        name TEXT NOT NULL UNIQUE,
        network_uuid TEXT NOT NULL REFERENCES networks(uuid),
        doc  TEXT NOT NULL
      );
      CREATE INDEX pools_network ON pools(network_uuid);
      CREATE TABLE vms (
        uuid TEXT PRIMARY KEY,
        name TEXT NOT NULL UNIQUE,
        doc  TEXT NOT NULL
      );
      CREATE TABLE vifs (
        uuid TEXT PRIMARY KEY,
        vm_uuid TEXT NOT NULL REFERENCES vms(uuid),
        device INTEGER NOT NULL,
        network_uuid TEXT NOT NULL REFERENCES networks(uuid),
        mac TEXT NOT NULL,
        doc TEXT NOT NULL,
        UNIQUE (vm_uuid, device),
        UNIQUE (network_uuid, mac)
      );
      CREATE TABLE assignments (
        uuid TEXT PRIMARY KEY,
        network_uuid TEXT NOT NULL REFERENCES networks(uuid),
        pool_uuid TEXT NOT NULL REFERENCES pools(uuid),
        vif_uuid TEXT REFERENCES vifs(uuid),
        family INTEGER NOT NULL,
        addr_key TEXT NOT NULL,
        prefix_length INTEGER NOT NULL,
        kind TEXT NOT NULL,
        request_id TEXT,
        doc TEXT NOT NULL,
        UNIQUE (pool_uuid, addr_key)
      ) WITHOUT ROWID;
      -- Every index costs a page write per allocation. An address is unique per network because it
      -- is unique per pool and the pools of a network never overlap (checked on every pool change).
      CREATE INDEX assignments_vif ON assignments(vif_uuid);
      CREATE TABLE free_space (
        pool_uuid TEXT NOT NULL,
        start_key TEXT NOT NULL,
        end_key TEXT NOT NULL,
        PRIMARY KEY (pool_uuid, start_key)
      ) WITHOUT ROWID;
      CREATE TABLE holds (
        pool_uuid TEXT NOT NULL,
        start_key TEXT NOT NULL,
        end_key TEXT NOT NULL,
        until TEXT NOT NULL,
        PRIMARY KEY (pool_uuid, start_key)
      ) WITHOUT ROWID;
      CREATE INDEX holds_until ON holds(pool_uuid, until);
      CREATE TABLE requests (
        request_id TEXT PRIMARY KEY,
        fingerprint TEXT NOT NULL,
        assignment_uuid TEXT NOT NULL
      );
      CREATE INDEX requests_assignment ON requests(assignment_uuid);
      CREATE TABLE events (
        -- No AUTOINCREMENT: rows are never deleted, and it would cost a write to sqlite_sequence per event.
        id INTEGER PRIMARY KEY,
        time TEXT NOT NULL,
        actor TEXT NOT NULL,
        action TEXT NOT NULL,
        object_kind TEXT NOT NULL,
        object_uuid TEXT,
        object_name TEXT,
        before TEXT,
        after TEXT
      );
      -- No index on time: ids grow with time, so 'since' is a binary search over ids (sqlite-store.ts).
      CREATE INDEX events_object_uuid ON events(object_uuid);
      CREATE INDEX events_object_name ON events(object_name);
      CREATE TABLE docs (
        kind TEXT NOT NULL,
        key TEXT NOT NULL,
        value TEXT NOT NULL,
        updated_at TEXT NOT NULL,
        PRIMARY KEY (kind, key)
      ) WITHOUT ROWID;
    `,
  },
  {
    version: 2,
    name: 'changes',
    sql: `
      -- The change feed: every committed write transaction takes the next revision (writers are
      -- serial in SQLite), one row per object it touched; host is the hypervisor host concerned.
      CREATE TABLE changes (
        revision INTEGER NOT NULL,
        seq INTEGER NOT NULL,
        kind TEXT NOT NULL,
        key TEXT NOT NULL,
        host TEXT,
        PRIMARY KEY (revision, seq)
      ) WITHOUT ROWID;
    `,
  },
  {
    version: 3,
    name: 'api: request id on audit events',
    // Tenants, tokens, users and sessions live in the docs table (kinds tenant, api-token, user,
    // session), so every backend has them without a table of its own.
    sql: `ALTER TABLE events ADD COLUMN request_id TEXT;`,
  },
  {
    version: 4,
    name: 'prefixes and reservations by pool and address',
    // Partial: every assignment but a VIF's single address (routed prefixes, reservations), so
    // allocating an address for a VIF writes no page of it. With the (pool_uuid, addr_key) index it
    // answers usage counts and a pool's map from indexes alone, and a map's block finds here the
    // prefixes that start before it (sqlite-store.ts: countUsage, listAssignmentSpans,
    // listAssignmentsInRange). Reading the rows themselves means reading every document.
    sql: `CREATE INDEX assignments_special ON assignments(pool_uuid, addr_key, kind, family, prefix_length) WHERE kind NOT IN ('primary', 'additional') OR prefix_length <> CASE family WHEN 4 THEN 32 ELSE 128 END;`,
  },
];

export const SCHEMA_VERSION = MIGRATIONS[MIGRATIONS.length - 1].version;

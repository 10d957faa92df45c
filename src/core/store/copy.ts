// `ipvisor store copy`: every table of one store into another, SQLite <-> PostgreSQL, as backup,
// restore and migration. The rows go as they are: identity (meta store_id), revisions (the change
// feed and its counter) and the audit log (event ids) come along, so agents and clients that knew
// the source see the same store at the same revision.
import { IpvisorError } from '../model/errors.js';
import type { Store } from './store.js';

/** A row as both backends store it; JSON columns as JSON text. */
export type RawRow = Record<string, string | number | null>;

/** Table-level access for copying, inside one transaction of the backend. */
export interface RawIo {
  count(table: string): Promise<number>;
  /** Rows in primary-key order. */
  read(table: string, offset: number, limit: number): Promise<RawRow[]>;
  write(table: string, rows: RawRow[]): Promise<void>;
  /** Deletes every row of the tables (in the order given). */
  clear(tables: string[]): Promise<void>;
  getMeta(key: string): Promise<string | undefined>;
  setMeta(key: string, value: string): Promise<void>;
  /** After a load: counters follow the rows (PostgreSQL: event id sequence, revision counter). */
  finishLoad(): Promise<void>;
}

export interface RawCapable {
  raw<T>(fn: (io: RawIo) => Promise<T>): Promise<T>;
}

/** Every table, parents before children (foreign keys), with its columns and primary key. One list
 * for both backends: a table added to the schema is added here, or copy refuses to run (see test). */
export const COPY_TABLES: Array<{ name: string; columns: string[]; key: string[]; json?: string[] }> = [
  { name: 'networks', columns: ['uuid', 'name', 'doc'], key: ['uuid'], json: ['doc'] },
  { name: 'pools', columns: ['uuid', 'name', 'network_uuid', 'doc'], key: ['uuid'], json: ['doc'] },
  { name: 'vms', columns: ['uuid', 'name', 'doc'], key: ['uuid'], json: ['doc'] },
  { name: 'vifs', columns: ['uuid', 'vm_uuid', 'device', 'network_uuid', 'mac', 'doc'], key: ['uuid'], json: ['doc'] },
  { name: 'assignments', columns: ['uuid', 'network_uuid', 'pool_uuid', 'vif_uuid', 'family', 'addr_key', 'prefix_length', 'kind', 'request_id', 'doc'], key: ['uuid'], json: ['doc'] },
  { name: 'free_space', columns: ['pool_uuid', 'start_key', 'end_key'], key: ['pool_uuid', 'start_key'] },
  { name: 'holds', columns: ['pool_uuid', 'start_key', 'end_key', 'until'], key: ['pool_uuid', 'start_key'] },
  { name: 'requests', columns: ['request_id', 'fingerprint', 'assignment_uuid'], key: ['request_id'] },
  { name: 'events', columns: ['id', 'time', 'actor', 'action', 'object_kind', 'object_uuid', 'object_name', 'before', 'after', 'request_id'], key: ['id'], json: ['before', 'after'] },
  { name: 'docs', columns: ['kind', 'key', 'value', 'updated_at'], key: ['kind', 'key'], json: ['value'] },
  { name: 'changes', columns: ['revision', 'seq', 'kind', 'key', 'host'], key: ['revision', 'seq'] },
];

const BATCH = 2000;

export interface CopyResult {
  from: string;
  to: string;
  identity: string;
  revision: number;
  rows: Record<string, number>;
}

function rawOf(store: Store): RawCapable {
  const r = store as unknown as Partial<RawCapable>;
  if (typeof r.raw !== 'function') throw new IpvisorError('INTERNAL', `store ${store.url} cannot be copied`);
  return r as RawCapable;
}

/**
 * Copies `from` into `to` in one transaction of the target. A target holding anything (objects, events,
 * documents or revisions) is refused unless `force`, which empties it first.
 */
export async function copyStore(from: Store, to: Store, opts: { force?: boolean } = {}): Promise<CopyResult> {
  const src = rawOf(from);
  const dst = rawOf(to);
  const rows: Record<string, number> = {};
  return src.raw(async (r) =>
    dst.raw(async (w) => {
      const held: string[] = [];
      for (const t of COPY_TABLES) {
        const n = await w.count(t.name);
        if (n > 0) held.push(`${n} ${t.name}`);
      }
      if (held.length > 0 && !opts.force) {
        throw new IpvisorError('ALREADY_EXISTS', `to: ${to.url} is not empty (${held.join(', ')}); --force replaces its contents`, { field: 'to' });
      }
      if (held.length > 0) await w.clear([...COPY_TABLES].reverse().map((t) => t.name));
      for (const t of COPY_TABLES) {
        rows[t.name] = 0;
        for (let offset = 0; ; offset += BATCH) {
          const batch = await r.read(t.name, offset, BATCH);
          if (batch.length === 0) break;
          await w.write(t.name, batch);
          rows[t.name] += batch.length;
          if (batch.length < BATCH) break;
        }
      }
      const identity = await r.getMeta('store_id');
      if (!identity) throw new IpvisorError('STORE_SCHEMA', `from: ${from.url} has no identity in its meta table`, { field: 'from' });
      await w.setMeta('store_id', identity);
      await w.finishLoad();
      const revision = await (async () => {
        const last = await r.read('changes', Math.max(0, rows.changes - 1), 1);
        return last.length ? Number(last[0].revision) : 0;
      })();
      return { from: from.url, to: to.url, identity, revision, rows };
    }),
  );
}

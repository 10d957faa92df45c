// PostgreSQL backend of the Store port (node-postgres). Transactions run at READ COMMITTED on a
// pooled connection each; allocation is serialised per pool by an advisory transaction lock taken
// before the pool's free-space index is first read (so each statement after it sees the previous
// allocation's commit), and UNIQUE (pool_uuid, addr_key) is the backstop. Nothing takes a global
// lock: revisions come from a sequence behind a shared gate (see revisionHorizon).
import { randomUUID } from 'node:crypto';
import pg from 'pg';
import { IpvisorError } from '../../model/errors.js';
import type { Assignment, AssignmentKind, AuditEvent, Network, Pool, Vif, Vm } from '../../model/types.js';
import { eventWhere } from '../events-sql.js';
import { fullLength, poolCounts, poolSpans, SPECIAL, VIF_SCAN_THRESHOLD, vifAddresses } from '../usage.js';
import { addressKey, keyToBigInt, parseAddress } from '../../ipam/addr.js';
import { assertOpen, BaseStore, type JournalEntry } from '../base.js';
import type { AddressHolder, AssignmentCounts, AssignmentQuery, AssignmentSpan, Change, DocRecord, EventQuery, FreeInterval, Hold, RequestRecord, StoreIdentity, StoreTx, TakenAddress, TransactionOptions, UsageCount, VifAddress, VifInContext } from '../store.js';
import { PG_MIGRATIONS, PG_SCHEMA_VERSION } from './migrations.js';
import { COPY_TABLES, type RawCapable, type RawIo, type RawRow } from '../copy.js';
import { storeErrorsTotal } from '../../metrics.js';

type Row = Record<string, unknown>;

/** The channel a commit notifies (payload: its revision). */
export const CHANGES_CHANNEL = 'ipvisor_changes';

/** Advisory lock keys: (namespace, hash of the object). LOCK_POOL is also taken by
 * ipvisor_take_lowest() (migrations.ts), with the same key. */
const LOCK_POOL = 1;
const LOCK_NETWORK = 2;
const LOCK_MIGRATE = 3;

/** Statement names for the server-side prepared statement cache, one per distinct SQL text. */
const names = new Map<string, string>();
function statementName(sql: string): string {
  let n = names.get(sql);
  if (!n) {
    n = `ipv${names.size}`;
    names.set(sql, n);
  }
  return n;
}

type Queryable = Pick<pg.PoolClient, 'query'>;

function usageRow(r: Row): UsageCount {
  return { poolUuid: r.pool_uuid as string, kind: r.kind as AssignmentKind, family: r.family as number, prefixLength: r.prefix_length as number, count: Number(r.n) };
}

function freeRow(row: Row | undefined): FreeInterval | undefined {
  if (!row) return undefined;
  return { poolUuid: row.pool_uuid as string, start: keyToBigInt(row.start_key as string), end: keyToBigInt(row.end_key as string) };
}

/** The last statement of a write transaction (after the gate, see revisionHorizon): its revision
 * from the sequence and one change row per object. */
const COMMIT_CHANGES = `
  WITH r AS (SELECT ipvisor_next_revision() AS value),
  c AS (SELECT * FROM unnest($1::text[], $2::text[], $3::text[], $4::text[], $5::text[]) WITH ORDINALITY AS c(kind, key, host, vm_uuid, vif_uuid, seq)),
  ins AS (
    INSERT INTO changes (revision, seq, kind, key, host)
    SELECT r.value, c.seq, c.kind, c.key,
      coalesce(c.host, (SELECT nullif(m.doc->>'host', '') FROM vms m WHERE m.uuid = coalesce(c.vm_uuid, (SELECT v.vm_uuid FROM vifs v WHERE v.uuid = c.vif_uuid))))
    FROM r, c
  )
  SELECT r.value AS revision FROM r`;

/**
 * The wake-up for other processes, sent right behind COMMIT as a transaction of its own. A NOTIFY
 * inside the durable transaction would serialise every writer of the whole server: PostgreSQL
 * holds a global lock from queuing a notification until its commit is flushed, so commits could
 * not share an fsync (group commit), and throughput was one fsync per allocation. Here the lock is
 * held for an asynchronous commit (set_config(..., true) lasts until that commit). The payload is
 * this session's last revision (currval); a COMMIT that failed sends only a needless wake-up.
 */
const NOTIFY_REVISION = `SELECT set_config('synchronous_commit', 'off', true), pg_notify('${CHANGES_CHANNEL}', currval('revision_seq')::text)`;

/** Writers hold the gate shared from just before nextval to COMMIT (ipvisor_next_revision() in
 * migrations.ts takes it, with this key); they never wait for each other. */
const LOCK_REVISION_GATE = 4;

class PgTx implements StoreTx {
  done = false;
  /** A session-level lock may be left on the connection: the pool must drop it. */
  poisoned = false;
  readonly journal = new Map<string, JournalEntry>();
  private readonly locked = new Set<string>();
  /** `begun`: the BEGIN, sent ahead without waiting for its answer (the connection pipelines). */
  constructor(private readonly db: Queryable, private readonly writes: boolean, private begun?: Promise<unknown>) {}

  private async all(sql: string, ...values: unknown[]): Promise<Row[]> {
    assertOpen(this.done);
    if (this.pending.length) {
      await this.flush();
      assertOpen(this.done);
    }
    const rows = (await this.db.query({ name: statementName(sql), text: sql, values })).rows as Row[];
    await this.begunOk();
    return rows;
  }
  /** Answers come in order: once a statement has its answer, the BEGIN before it has one too. */
  private async begunOk(): Promise<void> {
    if (!this.begun) return;
    const b = this.begun;
    this.begun = undefined;
    await b;
  }

  /**
   * Inserts nobody reads back in the same transaction before its end (the assignment and the audit
   * row of an allocation) wait here and go to the server with the next statement that needs them
   * written, or with the commit's change rows: a round trip each saved. At most one per table, so
   * rows of one table keep their order (event ids). A constraint they break fails the transaction
   * all the same, at that later statement.
   */
  private readonly pending: Array<{ table: string; sql: string; values: unknown[] }> = [];
  private async defer(table: string, sql: string, values: unknown[]): Promise<void> {
    assertOpen(this.done);
    if (this.pending.some((p) => p.table === table)) await this.flush();
    this.pending.push({ table, sql, values });
  }
  /** The pending inserts as data-modifying WITH items (w0, w1, ...) and their parameters, numbered
   * from $1 with `first` parameters already taken. */
  private takePending(first: number): { items: string[]; values: unknown[] } {
    const items: string[] = [];
    const values: unknown[] = [];
    for (const [i, p] of this.pending.entries()) {
      const offset = first + values.length;
      items.push(`w${i} AS (${p.sql.replace(/\$(\d+)/g, (_, n: string) => `$${Number(n) + offset}`)})`);
      values.push(...p.values);
    }
    this.pending.length = 0;
    return { items, values };
  }
  private async flush(): Promise<void> {
    if (this.pending.length === 1) {
      const [p] = this.pending.splice(0, 1);
      await this.db.query({ name: statementName(p.sql), text: p.sql, values: p.values });
    } else {
      const { items, values } = this.takePending(0);
      const sql = `WITH ${items.join(', ')} SELECT 1`;
      await this.db.query({ name: statementName(sql), text: sql, values });
    }
    await this.begunOk();
  }
  private async get(sql: string, ...values: unknown[]): Promise<Row | undefined> {
    return (await this.all(sql, ...values))[0];
  }
  private async run(sql: string, ...values: unknown[]): Promise<void> {
    await this.all(sql, ...values);
  }
  private note(e: JournalEntry): void {
    this.journal.set(`${e.kind}\0${e.key}`, e);
  }

  /** Serialises this transaction with every other one touching the pool's free space. */
  private async lockPool(poolUuid: string): Promise<void> {
    if (this.locked.has(poolUuid)) return;
    await this.run('SELECT pg_advisory_xact_lock($1, hashtext($2))', LOCK_POOL, poolUuid);
    this.locked.add(poolUuid);
  }

  async commitJournal(): Promise<number | undefined> {
    if (this.journal.size === 0) {
      if (this.pending.length) await this.flush();
      return undefined;
    }
    const cols: Array<Array<string | null>> = [[], [], [], [], []];
    for (const e of this.journal.values()) {
      cols[0].push(e.kind);
      cols[1].push(e.key);
      cols[2].push(e.host || null);
      cols[3].push(e.vmUuid ?? null);
      cols[4].push(e.vifUuid ?? null);
    }
    // The pending inserts ride along as WITH items of the same statement (after the five arrays).
    const { items, values } = this.takePending(5);
    const sql = items.length ? COMMIT_CHANGES.replace(/^\s*WITH /, `WITH ${items.join(', ')}, `) : COMMIT_CHANGES;
    assertOpen(this.done);
    const row = (await this.db.query({ name: statementName(sql), text: sql, values: [...cols, ...values] })).rows[0] as Row;
    await this.begunOk();
    return Number(row.revision);
  }

  /**
   * The highest revision below which nothing is still in flight. Revisions come from a sequence
   * taken at the end of each write transaction, so they may commit out of order (11 before 10);
   * taking the gate exclusively waits for every writer that holds a revision, and the sequence read
   * under it is a revision all of whose predecessors have committed or rolled back. The gate is
   * held for one round trip; writers queue behind it only that long.
   */
  private async revisionHorizon(): Promise<number> {
    assertOpen(this.done);
    try {
      await this.db.query({ name: 'gate_lock', text: 'SELECT pg_advisory_lock($1, 0)', values: [LOCK_REVISION_GATE] });
    } catch (err) {
      this.poisoned = true;
      throw err;
    }
    try {
      // The sequence row is fetched before the target list (and its unlock) is evaluated.
      const r = await this.db.query({ name: 'gate_read', text: 'SELECT CASE WHEN is_called THEN last_value ELSE 0 END AS v, pg_advisory_unlock($1, 0) AS u FROM revision_seq', values: [LOCK_REVISION_GATE] });
      return Number(r.rows[0].v);
    } catch (err) {
      this.poisoned = true;
      throw err;
    }
  }

  // change feed
  async currentRevision(): Promise<number> {
    return this.revisionHorizon();
  }
  async changesSince(revision: number, limit = 10_000): Promise<Change[]> {
    const horizon = await this.revisionHorizon();
    const rows = await this.all('SELECT * FROM changes WHERE revision > $1 AND revision <= $2 ORDER BY revision, seq LIMIT $3', revision, horizon, limit);
    if (rows.length === limit && rows.length > 0) {
      const last = rows[rows.length - 1].revision;
      const cut = rows.filter((r) => r.revision !== last);
      if (cut.length > 0) rows.splice(cut.length);
    }
    return rows.map((r) => ({ revision: Number(r.revision), kind: r.kind as string, key: r.key as string, host: (r.host as string) ?? null }));
  }

  // networks
  async listNetworks(): Promise<Network[]> {
    return (await this.all('SELECT doc FROM networks ORDER BY name COLLATE "C"')).map((r) => r.doc as Network);
  }
  async getNetwork(uuid: string): Promise<Network | undefined> {
    return (await this.get('SELECT doc FROM networks WHERE uuid = $1', uuid))?.doc as Network | undefined;
  }
  async findNetworkByName(name: string): Promise<Network | undefined> {
    return (await this.get('SELECT doc FROM networks WHERE name = $1', name))?.doc as Network | undefined;
  }
  async insertNetwork(n: Network): Promise<void> {
    await this.run('INSERT INTO networks (uuid, name, doc) VALUES ($1, $2, $3)', n.uuid, n.name, JSON.stringify(n));
    this.note({ kind: 'network', key: n.uuid });
  }
  async updateNetwork(n: Network): Promise<void> {
    await this.run('UPDATE networks SET name = $1, doc = $2 WHERE uuid = $3', n.name, JSON.stringify(n), n.uuid);
    this.note({ kind: 'network', key: n.uuid });
  }
  async deleteNetwork(uuid: string): Promise<void> {
    await this.run('DELETE FROM networks WHERE uuid = $1', uuid);
    this.note({ kind: 'network', key: uuid });
  }

  // pools
  async listPools(networkUuid?: string): Promise<Pool[]> {
    if (!networkUuid) return (await this.all('SELECT doc FROM pools ORDER BY name COLLATE "C"')).map((r) => r.doc as Pool);
    // A writer reading a network's pools checks them against a change (no overlap): shared lock
    // here, exclusive where a pool is written, so two such checks cannot both pass unseen (the
    // deadlock of two upgrades is retried by run()). Allocations only share it.
    if (this.writes) await this.run('SELECT pg_advisory_xact_lock_shared($1, hashtext($2))', LOCK_NETWORK, networkUuid);
    return (await this.all('SELECT doc FROM pools WHERE network_uuid = $1 ORDER BY name COLLATE "C"', networkUuid)).map((r) => r.doc as Pool);
  }
  async getPool(uuid: string): Promise<Pool | undefined> {
    return (await this.get('SELECT doc FROM pools WHERE uuid = $1', uuid))?.doc as Pool | undefined;
  }
  async findPoolByName(name: string): Promise<Pool | undefined> {
    return (await this.get('SELECT doc FROM pools WHERE name = $1', name))?.doc as Pool | undefined;
  }
  private async lockNetworkPools(networkUuid: string): Promise<void> {
    await this.run('SELECT pg_advisory_xact_lock($1, hashtext($2))', LOCK_NETWORK, networkUuid);
  }
  async insertPool(p: Pool): Promise<void> {
    await this.lockNetworkPools(p.networkUuid);
    await this.run('INSERT INTO pools (uuid, name, network_uuid, doc) VALUES ($1, $2, $3, $4)', p.uuid, p.name, p.networkUuid, JSON.stringify(p));
    this.note({ kind: 'pool', key: p.uuid });
  }
  async updatePool(p: Pool): Promise<void> {
    await this.lockNetworkPools(p.networkUuid);
    await this.run('UPDATE pools SET name = $1, network_uuid = $2, doc = $3 WHERE uuid = $4', p.name, p.networkUuid, JSON.stringify(p), p.uuid);
    this.note({ kind: 'pool', key: p.uuid });
  }
  async deletePool(uuid: string): Promise<void> {
    await this.lockPool(uuid);
    await this.run('DELETE FROM free_space WHERE pool_uuid = $1', uuid);
    await this.run('DELETE FROM holds WHERE pool_uuid = $1', uuid);
    await this.run('DELETE FROM pools WHERE uuid = $1', uuid);
    this.note({ kind: 'pool', key: uuid });
  }

  // vms
  async listVms(): Promise<Vm[]> {
    return (await this.all('SELECT doc FROM vms ORDER BY name COLLATE "C"')).map((r) => r.doc as Vm);
  }
  async getVm(uuid: string): Promise<Vm | undefined> {
    return (await this.get('SELECT doc FROM vms WHERE uuid = $1', uuid))?.doc as Vm | undefined;
  }
  async findVmByName(name: string): Promise<Vm | undefined> {
    return (await this.get('SELECT doc FROM vms WHERE name = $1', name))?.doc as Vm | undefined;
  }
  async insertVm(v: Vm): Promise<void> {
    await this.run('INSERT INTO vms (uuid, name, doc) VALUES ($1, $2, $3)', v.uuid, v.name, JSON.stringify(v));
    this.note({ kind: 'vm', key: v.uuid, host: v.host });
  }
  async updateVm(v: Vm): Promise<void> {
    const old = await this.get("SELECT doc->>'host' AS host FROM vms WHERE uuid = $1", v.uuid);
    await this.run('UPDATE vms SET name = $1, doc = $2 WHERE uuid = $3', v.name, JSON.stringify(v), v.uuid);
    this.note({ kind: 'vm', key: v.uuid, host: v.host });
    if (old?.host && old.host !== v.host) this.note({ kind: 'vm-left', key: v.uuid, host: old.host as string });
  }
  async deleteVm(uuid: string): Promise<void> {
    const row = await this.get("DELETE FROM vms WHERE uuid = $1 RETURNING doc->>'host' AS host", uuid);
    this.note({ kind: 'vm', key: uuid, host: (row?.host as string) ?? null });
  }

  // vifs
  async listVifs(vmUuid?: string): Promise<Vif[]> {
    const rows = vmUuid
      ? await this.all('SELECT doc FROM vifs WHERE vm_uuid = $1 ORDER BY device', vmUuid)
      : await this.all('SELECT v.doc FROM vifs v JOIN vms m ON m.uuid = v.vm_uuid ORDER BY m.name COLLATE "C", v.device');
    return rows.map((r) => r.doc as Vif);
  }
  async getVif(uuid: string): Promise<Vif | undefined> {
    return (await this.get('SELECT doc FROM vifs WHERE uuid = $1', uuid))?.doc as Vif | undefined;
  }
  async findVifByDevice(vmUuid: string, device: number): Promise<Vif | undefined> {
    return (await this.get('SELECT doc FROM vifs WHERE vm_uuid = $1 AND device = $2', vmUuid, device))?.doc as Vif | undefined;
  }
  async findVifByMac(networkUuid: string, mac: string): Promise<Vif | undefined> {
    return (await this.get('SELECT doc FROM vifs WHERE network_uuid = $1 AND mac = $2', networkUuid, mac))?.doc as Vif | undefined;
  }
  async findVifInContext(vmName: string, device: number): Promise<VifInContext | undefined> {
    const r = await this.get('SELECT v.doc AS vif, m.doc AS vm, n.doc AS network FROM vms m JOIN vifs v ON v.vm_uuid = m.uuid AND v.device = $2 JOIN networks n ON n.uuid = v.network_uuid WHERE m.name = $1', vmName, device);
    return r ? { vif: r.vif as Vif, vm: r.vm as Vm, network: r.network as Network } : undefined;
  }
  async insertVif(v: Vif): Promise<void> {
    await this.run('INSERT INTO vifs (uuid, vm_uuid, device, network_uuid, mac, doc) VALUES ($1, $2, $3, $4, $5, $6)', v.uuid, v.vmUuid, v.device, v.networkUuid, v.mac, JSON.stringify(v));
    this.note({ kind: 'vif', key: v.uuid, vmUuid: v.vmUuid });
  }
  async updateVif(v: Vif): Promise<void> {
    await this.run('UPDATE vifs SET vm_uuid = $1, device = $2, network_uuid = $3, mac = $4, doc = $5 WHERE uuid = $6', v.vmUuid, v.device, v.networkUuid, v.mac, JSON.stringify(v), v.uuid);
    this.note({ kind: 'vif', key: v.uuid, vmUuid: v.vmUuid });
  }
  async deleteVif(uuid: string): Promise<void> {
    const row = await this.get('DELETE FROM vifs WHERE uuid = $1 RETURNING vm_uuid', uuid);
    this.note({ kind: 'vif', key: uuid, vmUuid: (row?.vm_uuid as string) ?? null });
  }

  // assignments
  async listAssignments(q: AssignmentQuery = {}): Promise<Assignment[]> {
    const where: string[] = [];
    const params: unknown[] = [];
    const p = (v: unknown) => (params.push(v), `$${params.length}`);
    if (q.networkUuid) where.push(`network_uuid = ${p(q.networkUuid)}`);
    if (q.poolUuid) where.push(`pool_uuid = ${p(q.poolUuid)}`);
    if (q.vifUuid) where.push(`vif_uuid = ${p(q.vifUuid)}`);
    if (q.vifUuids) {
      if (q.vifUuids.length === 0) return [];
      where.push(`vif_uuid = ANY(${p(q.vifUuids)}::text[])`);
    }
    if (q.address) {
      const a = parseAddress(q.address);
      where.push(`addr_key = ${p(addressKey(a.value))} AND family = ${p(a.family)} AND pool_uuid IN (SELECT uuid FROM pools)`);
    }
    const sql = `SELECT doc FROM assignments ${where.length ? 'WHERE ' + where.join(' AND ') : ''} ORDER BY family, addr_key`;
    return (await this.all(sql, ...params)).map((r) => r.doc as Assignment);
  }
  async getAssignment(uuid: string): Promise<Assignment | undefined> {
    return (await this.get('SELECT doc FROM assignments WHERE uuid = $1', uuid))?.doc as Assignment | undefined;
  }
  async findAssignmentByRequestId(requestId: string): Promise<Assignment | undefined> {
    return (await this.get('SELECT doc FROM assignments WHERE request_id = $1', requestId))?.doc as Assignment | undefined;
  }
  async insertAssignment(a: Assignment): Promise<void> {
    const key = addressKey(parseAddress(a.address).value);
    await this.defer('assignments',
      'INSERT INTO assignments (uuid, network_uuid, pool_uuid, vif_uuid, family, addr_key, prefix_length, kind, request_id, doc) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10)',
      [a.uuid, a.networkUuid, a.poolUuid, a.vifUuid, a.family, key, a.prefixLength, a.kind, a.requestId, JSON.stringify(a)],
    );
    this.note({ kind: 'assignment', key: a.uuid, vifUuid: a.vifUuid });
  }
  async updateAssignment(a: Assignment): Promise<void> {
    await this.run('UPDATE assignments SET vif_uuid = $1, kind = $2, doc = $3 WHERE uuid = $4', a.vifUuid, a.kind, JSON.stringify(a), a.uuid);
    this.note({ kind: 'assignment', key: a.uuid, vifUuid: a.vifUuid });
  }
  async deleteAssignment(uuid: string): Promise<void> {
    const row = await this.get('DELETE FROM assignments WHERE uuid = $1 RETURNING vif_uuid', uuid);
    this.note({ kind: 'assignment', key: uuid, vifUuid: (row?.vif_uuid as string) ?? null });
  }
  async vifHoldsAddress(vifUuid: string, family: number): Promise<boolean> {
    return !!(await this.get("SELECT 1 FROM assignments WHERE vif_uuid = $1 AND family = $2 AND kind IN ('primary', 'additional') LIMIT 1", vifUuid, family));
  }
  async countAssignments(poolUuid: string): Promise<AssignmentCounts> {
    const row = (await this.get('SELECT count(*) AS n FROM assignments WHERE pool_uuid = $1 AND prefix_length = CASE family WHEN 4 THEN 32 ELSE 128 END', poolUuid))!;
    const prefixes = await this.all('SELECT family, prefix_length FROM assignments WHERE pool_uuid = $1 AND prefix_length <> CASE family WHEN 4 THEN 32 ELSE 128 END', poolUuid);
    return { addresses: Number(row.n), routedPrefixes: prefixes.map((r) => ({ family: r.family as number, prefixLength: r.prefix_length as number })) };
  }
  async getRequest(requestId: string): Promise<RequestRecord | undefined> {
    const r = await this.get('SELECT * FROM requests WHERE request_id = $1', requestId);
    return r ? { requestId, fingerprint: r.fingerprint as string, assignmentUuid: r.assignment_uuid as string } : undefined;
  }
  async insertRequest(r: RequestRecord): Promise<void> {
    await this.run('INSERT INTO requests (request_id, fingerprint, assignment_uuid) VALUES ($1, $2, $3)', r.requestId, r.fingerprint, r.assignmentUuid);
  }
  async deleteRequestsFor(assignmentUuid: string): Promise<void> {
    await this.run('DELETE FROM requests WHERE assignment_uuid = $1', assignmentUuid);
  }

  // usage (read models counted in SQL); reads only, no pool lock
  async countUsage(poolUuids?: string[]): Promise<UsageCount[]> {
    const pools = (await this.all("SELECT uuid, (doc->>'family')::int AS family FROM pools"))
      .filter((p) => !poolUuids || poolUuids.includes(p.uuid as string));
    if (pools.length === 0) return [];
    const ids = pools.map((p) => p.uuid as string);
    // Both from indexes: the counts from (pool_uuid, addr_key), the rest from assignments_special.
    const totals = new Map((await this.all('SELECT pool_uuid, count(*) AS n FROM assignments WHERE pool_uuid = ANY($1::text[]) GROUP BY pool_uuid', ids)).map((r) => [r.pool_uuid as string, Number(r.n)]));
    const special = (await this.all(`SELECT pool_uuid, kind, family, prefix_length, count(*) AS n FROM assignments WHERE pool_uuid = ANY($1::text[]) AND ${SPECIAL} GROUP BY pool_uuid, kind, family, prefix_length`, ids)).map(usageRow);
    return pools.flatMap((p) => poolCounts({ uuid: p.uuid as string, family: p.family as number, total: totals.get(p.uuid as string) ?? 0 }, special));
  }
  async countOwnerUsage(owner: string): Promise<UsageCount[]> {
    return (await this.all(
      `SELECT a.pool_uuid, a.kind, a.family, a.prefix_length, count(*) AS n
       FROM vms m JOIN vifs v ON v.vm_uuid = m.uuid JOIN assignments a ON a.vif_uuid = v.uuid
       WHERE m.doc->>'owner' = $1 GROUP BY a.pool_uuid, a.kind, a.family, a.prefix_length`, owner,
    )).map(usageRow);
  }
  async listAssignmentsInRange(poolUuid: string, start: bigint, end: bigint): Promise<Assignment[]> {
    const lo = addressKey(start), hi = addressKey(end);
    const rows = [
      ...await this.all('SELECT addr_key, doc FROM assignments WHERE pool_uuid = $1 AND addr_key >= $2 AND addr_key <= $3', poolUuid, lo, hi),
      // prefixes starting before the range (assignments_special): only those reaching into it
      ...(await this.all(`SELECT addr_key, prefix_length, family, doc FROM assignments WHERE pool_uuid = $1 AND ${SPECIAL} AND addr_key < $2`, poolUuid, lo))
        .filter((r) => keyToBigInt(r.addr_key as string) + (1n << BigInt(fullLength(r.family as number) - (r.prefix_length as number))) - 1n >= start),
    ];
    return rows.sort((a, b) => ((a.addr_key as string) < (b.addr_key as string) ? -1 : 1)).map((r) => r.doc as Assignment);
  }
  async listAssignmentSpans(poolUuid: string): Promise<AssignmentSpan[]> {
    const pool = await this.get("SELECT (doc->>'family')::int AS family FROM pools WHERE uuid = $1", poolUuid);
    if (!pool) return [];
    const keys = (await this.all('SELECT addr_key FROM assignments WHERE pool_uuid = $1 ORDER BY addr_key', poolUuid)).map((r) => keyToBigInt(r.addr_key as string));
    const special = (await this.all(`SELECT addr_key, kind, prefix_length FROM assignments WHERE pool_uuid = $1 AND ${SPECIAL}`, poolUuid))
      .map((r) => ({ start: keyToBigInt(r.addr_key as string), kind: r.kind as AssignmentKind, prefixLength: r.prefix_length as number }));
    return poolSpans(pool.family as number, keys, special);
  }
  async listVifAddresses(vifUuids?: string[]): Promise<VifAddress[]> {
    const cols = 'SELECT vif_uuid, family, addr_key, prefix_length, kind FROM assignments';
    if (vifUuids && vifUuids.length === 0) return [];
    if (vifUuids && vifUuids.length <= VIF_SCAN_THRESHOLD) return vifAddresses(await this.all(`${cols} WHERE vif_uuid = ANY($1::text[])`, vifUuids));
    return vifAddresses(await this.all(`${cols} WHERE vif_uuid IS NOT NULL`), vifUuids && new Set(vifUuids));
  }

  // free space: every entry point locks the pool first
  async lowestFree(poolUuid: string): Promise<FreeInterval | undefined> {
    await this.lockPool(poolUuid);
    return freeRow(await this.get('SELECT * FROM free_space WHERE pool_uuid = $1 ORDER BY start_key LIMIT 1', poolUuid));
  }
  async takeLowestFree(poolUuid: string, now: string, holder?: AddressHolder): Promise<TakenAddress | undefined | 'expired-holds'> {
    // The function takes the pool's lock (LOCK_POOL) itself.
    const row = (await this.get('SELECT * FROM ipvisor_take_lowest($1, $2, $3, $4)', poolUuid, now, holder?.vifUuid ?? null, holder?.family ?? null))!;
    this.locked.add(poolUuid);
    const k = row.k as string | null;
    if (k === null) return undefined;
    if (k === 'expired-holds') return k;
    return { start: keyToBigInt(k), holderHasAddress: row.held === true };
  }
  async freeAtOrBefore(poolUuid: string, key: bigint): Promise<FreeInterval | undefined> {
    await this.lockPool(poolUuid);
    return freeRow(await this.get('SELECT * FROM free_space WHERE pool_uuid = $1 AND start_key <= $2 ORDER BY start_key DESC LIMIT 1', poolUuid, addressKey(key)));
  }
  async freeAfter(poolUuid: string, key: bigint): Promise<FreeInterval | undefined> {
    await this.lockPool(poolUuid);
    return freeRow(await this.get('SELECT * FROM free_space WHERE pool_uuid = $1 AND start_key > $2 ORDER BY start_key LIMIT 1', poolUuid, addressKey(key)));
  }
  async freeIntervals(poolUuid: string, fromKey?: bigint, limit = -1): Promise<FreeInterval[]> {
    await this.lockPool(poolUuid);
    const rows = await this.all('SELECT * FROM free_space WHERE pool_uuid = $1 AND start_key >= $2 ORDER BY start_key LIMIT $3', poolUuid, addressKey(fromKey ?? 0n), limit < 0 ? null : limit);
    return rows.map((r) => freeRow(r)!);
  }
  async insertFree(f: FreeInterval): Promise<void> {
    await this.lockPool(f.poolUuid);
    await this.run('INSERT INTO free_space (pool_uuid, start_key, end_key) VALUES ($1, $2, $3)', f.poolUuid, addressKey(f.start), addressKey(f.end));
  }
  async replaceFree(poolUuid: string, start: bigint, f: FreeInterval): Promise<void> {
    await this.lockPool(poolUuid);
    await this.run('UPDATE free_space SET start_key = $1, end_key = $2 WHERE pool_uuid = $3 AND start_key = $4', addressKey(f.start), addressKey(f.end), poolUuid, addressKey(start));
  }
  async deleteFree(poolUuid: string, start: bigint): Promise<void> {
    await this.lockPool(poolUuid);
    await this.run('DELETE FROM free_space WHERE pool_uuid = $1 AND start_key = $2', poolUuid, addressKey(start));
  }
  async clearFree(poolUuid: string): Promise<void> {
    await this.lockPool(poolUuid);
    await this.run('DELETE FROM free_space WHERE pool_uuid = $1', poolUuid);
  }
  async insertHold(h: Hold): Promise<void> {
    await this.lockPool(h.poolUuid);
    await this.run(
      'INSERT INTO holds (pool_uuid, start_key, end_key, until) VALUES ($1, $2, $3, $4) ON CONFLICT (pool_uuid, start_key) DO UPDATE SET end_key = excluded.end_key, until = excluded.until',
      h.poolUuid, addressKey(h.start), addressKey(h.end), h.until,
    );
  }
  async listHolds(poolUuid: string): Promise<Hold[]> {
    return (await this.all('SELECT * FROM holds WHERE pool_uuid = $1 ORDER BY start_key', poolUuid)).map((r) => ({
      poolUuid, start: keyToBigInt(r.start_key as string), end: keyToBigInt(r.end_key as string), until: r.until as string,
    }));
  }
  async takeExpiredHolds(poolUuid: string, now: string): Promise<Hold[]> {
    await this.lockPool(poolUuid);
    const rows = await this.all('DELETE FROM holds WHERE pool_uuid = $1 AND until <= $2 RETURNING *', poolUuid, now);
    return rows.map((r) => ({ poolUuid, start: keyToBigInt(r.start_key as string), end: keyToBigInt(r.end_key as string), until: r.until as string }));
  }
  async deleteHolds(poolUuid: string): Promise<void> {
    await this.lockPool(poolUuid);
    await this.run('DELETE FROM holds WHERE pool_uuid = $1', poolUuid);
  }

  // audit
  async insertEvent(e: Omit<AuditEvent, 'id'>): Promise<void> {
    await this.defer(
      'events',
      'INSERT INTO events (time, actor, action, object_kind, object_uuid, object_name, before, after, request_id) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9)',
      [e.time, e.actor, e.action, e.objectKind, e.objectUuid, e.objectName,
        e.before === undefined || e.before === null ? null : JSON.stringify(e.before),
        e.after === undefined || e.after === null ? null : JSON.stringify(e.after),
        e.requestId ?? null],
    );
  }
  async listEvents(q: EventQuery = {}): Promise<AuditEvent[]> {
    const params: unknown[] = [];
    const p = (v: unknown) => (params.push(v), `$${params.length}`);
    const where = eventWhere(q, {
      param: p,
      field: (column, key) => `(${column}->>'${key}')`,
      since: (since) => `time >= ${p(since)}`,
    });
    const sql = `SELECT * FROM events ${where} ORDER BY id ${q.order === 'desc' ? 'DESC' : ''} LIMIT ${p(q.limit ?? null)}`;
    return (await this.all(sql, ...params)).map((r) => ({
      id: Number(r.id), time: r.time as string, actor: r.actor as string, action: r.action as string,
      objectKind: r.object_kind as string, objectUuid: (r.object_uuid as string) ?? null, objectName: (r.object_name as string) ?? null,
      before: r.before ?? null, after: r.after ?? null, requestId: (r.request_id as string | null) ?? null,
    }));
  }

  // documents
  async getDoc<T>(kind: string, key: string): Promise<DocRecord<T> | undefined> {
    const r = await this.get('SELECT * FROM docs WHERE kind = $1 AND key = $2', kind, key);
    return r ? { kind, key, value: r.value as T, updatedAt: r.updated_at as string } : undefined;
  }
  async listDocs<T>(kind: string): Promise<DocRecord<T>[]> {
    return (await this.all('SELECT * FROM docs WHERE kind = $1 ORDER BY key COLLATE "C"', kind)).map((r) => ({
      kind, key: r.key as string, value: r.value as T, updatedAt: r.updated_at as string,
    }));
  }
  async putDoc<T>(kind: string, key: string, value: T): Promise<void> {
    await this.run(
      'INSERT INTO docs (kind, key, value, updated_at) VALUES ($1, $2, $3, $4) ON CONFLICT (kind, key) DO UPDATE SET value = excluded.value, updated_at = excluded.updated_at',
      kind, key, JSON.stringify(value), new Date().toISOString(),
    );
    this.note({ kind: `doc:${kind}`, key });
  }
  async deleteDoc(kind: string, key: string): Promise<void> {
    await this.run('DELETE FROM docs WHERE kind = $1 AND key = $2', kind, key);
    this.note({ kind: `doc:${kind}`, key });
  }
}

/** Holds the connection's socket writes back until the end of the current tick, so that the
 * statements queued meanwhile go out in one write (Node's cork/uncork; pg corks each statement's
 * messages the same way). Without a socket to cork, statements go out as they come. */
function corkForThisTick(client: pg.PoolClient): void {
  const stream = (client as unknown as { connection?: { stream?: { cork?: () => void; uncork?: () => void } } }).connection?.stream;
  if (!stream?.cork || !stream.uncork) return;
  stream.cork();
  process.nextTick(() => stream.uncork!());
}

/** Deadlock and serialization failures: the transaction is re-run from the start. */
const RETRY_CODES = new Set(['40P01', '40001']);
const MAX_ATTEMPTS = 5;

/** The URL without its password, for messages. */
export function redactUrl(url: string): string {
  return url.replace(/^(postgres(?:ql)?:\/\/[^:@/]*):[^@/]*@/, '$1:***@');
}

function storeError(url: string, err: unknown): IpvisorError {
  const e = err as { code?: string; message?: string };
  storeErrorsTotal.inc({ code: 'STORE_UNAVAILABLE' });
  return new IpvisorError('STORE_UNAVAILABLE', `store ${redactUrl(url)}: ${e.message ?? String(err)}`, { cause: err });
}

export interface PgOptions {
  /** Connections in the pool (default 10). */
  max?: number;
  /** Create ipvisor's tables when the database has none (see openStore). */
  create?: boolean;
}

export class PgStore extends BaseStore implements RawCapable {
  readonly kind = 'postgres' as const;
  readonly url: string;
  private readonly pool: pg.Pool;
  private listener: pg.Client | undefined;
  private watching = false;
  private closed = false;

  private constructor(url: string, opts: PgOptions) {
    super();
    this.url = redactUrl(url);
    // pipeline: a statement is sent without waiting for the answer to the one before (run()).
    this.pool = new pg.Pool({ connectionString: url, max: opts.max ?? 10, pipeline: true } as pg.PoolConfig);
    // An idle connection's error (server restart) must not crash the process; the next query fails.
    this.pool.on('error', () => undefined);
    this.connectionString = url;
  }
  private readonly connectionString: string;

  static async open(url: string, opts: PgOptions = {}): Promise<PgStore> {
    const s = new PgStore(url, opts);
    try {
      await s.migrate(opts.create ?? false);
    } catch (err) {
      await s.pool.end().catch(() => undefined);
      throw err instanceof IpvisorError ? err : storeError(url, err);
    }
    return s;
  }

  private async migrate(create: boolean): Promise<void> {
    const c = await this.pool.connect();
    try {
      const hasMeta = (await c.query("SELECT to_regclass('meta') IS NOT NULL AS present")).rows[0].present as boolean;
      if (!hasMeta) {
        if (!create) throw new IpvisorError('STORE_MISSING', `no ipvisor store at ${this.url} (a database without ipvisor's schema); create one with: ipvisor init --store URL`, { field: 'store' });
        const other = await c.query("SELECT count(*) AS n FROM pg_tables WHERE schemaname = current_schema()");
        if (Number(other.rows[0].n) > 0) throw new IpvisorError('STORE_SCHEMA', `${this.url} is a database with other tables than ipvisor's; not writing into it`, { field: 'store' });
        await c.query('CREATE TABLE IF NOT EXISTS meta (key text PRIMARY KEY, value text NOT NULL)').catch(async (err) => {
          // Two processes creating it at once: one wins, the other sees it exists.
          if ((err as { code?: string }).code !== '23505' && (err as { code?: string }).code !== '42P07') throw err;
        });
      }
      const version = async () => {
        const r = await c.query("SELECT value FROM meta WHERE key = 'schema_version'");
        return r.rows[0] ? Number(r.rows[0].value) : 0;
      };
      const current = await version();
      if (!Number.isInteger(current) || current > PG_SCHEMA_VERSION) {
        throw new IpvisorError('STORE_SCHEMA', `store ${this.url} has schema version ${current}, this ipvisor knows up to ${PG_SCHEMA_VERSION}; upgrade ipvisor`);
      }
      const hasId = (await c.query("SELECT 1 FROM meta WHERE key = 'store_id'")).rows.length > 0;
      if (current === PG_SCHEMA_VERSION && hasId) return;
      await c.query('BEGIN');
      try {
        await c.query('SELECT pg_advisory_xact_lock($1, 0)', [LOCK_MIGRATE]);
        const now = await version();
        for (const m of PG_MIGRATIONS) {
          if (m.version <= now) continue;
          await c.query(m.sql);
          await c.query("INSERT INTO meta (key, value) VALUES ('schema_version', $1) ON CONFLICT (key) DO UPDATE SET value = excluded.value", [String(m.version)]);
        }
        // The store's identity: made once, with the schema (see Store.identity).
        await c.query("INSERT INTO meta (key, value) VALUES ('store_id', $1) ON CONFLICT (key) DO NOTHING", [randomUUID()]);
        await c.query('COMMIT');
      } catch (err) {
        await c.query('ROLLBACK').catch(() => undefined);
        throw err;
      }
    } finally {
      c.release();
    }
  }

  async identity(): Promise<StoreIdentity> {
    let rows: Row[];
    try {
      rows = (await this.pool.query("SELECT value FROM meta WHERE key = 'store_id'")).rows as Row[];
    } catch (err) {
      throw storeError(this.url, err);
    }
    if (!rows[0]) throw new IpvisorError('STORE_SCHEMA', `store ${this.url} has no identity in its meta table`, { field: 'store' });
    return { id: rows[0].value as string, location: this.url };
  }

  /** Table-level access for `store copy`, in one transaction. */
  async raw<T>(fn: (io: RawIo) => Promise<T>): Promise<T> {
    const spec = new Map(COPY_TABLES.map((t) => [t.name, t]));
    const table = (name: string) => {
      const t = spec.get(name);
      if (!t) throw new IpvisorError('INTERNAL', `unknown table ${name}`);
      return t;
    };
    const INTEGER = new Set(['id', 'revision', 'seq', 'device', 'family', 'prefix_length']);
    let c: pg.PoolClient;
    try {
      c = await this.pool.connect();
    } catch (err) {
      throw storeError(this.url, err);
    }
    const io: RawIo = {
      async count(name) {
        return Number((await c.query(`SELECT count(*) AS n FROM ${table(name).name}`)).rows[0].n);
      },
      async read(name, offset, limit) {
        const t = table(name);
        // JSON columns as their text, exactly as stored
        const cols = t.columns.map((col) => (t.json?.includes(col) ? `${col}::text AS ${col}` : col));
        const rows = (await c.query(`SELECT ${cols.join(', ')} FROM ${t.name} ORDER BY ${t.key.join(', ')} LIMIT $1 OFFSET $2`, [limit, offset])).rows as RawRow[];
        for (const r of rows) for (const col of t.columns) if (INTEGER.has(col) && r[col] !== null) r[col] = Number(r[col]);
        return rows;
      },
      async write(name, rows) {
        const t = table(name);
        const values: unknown[] = [];
        const tuples = rows.map((r) => `(${t.columns.map((col) => (values.push(r[col] ?? null), `$${values.length}`)).join(', ')})`);
        if (tuples.length) await c.query(`INSERT INTO ${t.name} (${t.columns.join(', ')}) VALUES ${tuples.join(', ')}`, values);
      },
      async clear(names) {
        for (const n of names) await c.query(`DELETE FROM ${table(n).name}`);
      },
      async getMeta(key) {
        return (await c.query('SELECT value FROM meta WHERE key = $1', [key])).rows[0]?.value as string | undefined;
      },
      async setMeta(key, value) {
        await c.query('INSERT INTO meta (key, value) VALUES ($1, $2) ON CONFLICT (key) DO UPDATE SET value = excluded.value', [key, value]);
      },
      async finishLoad() {
        await c.query("SELECT setval(pg_get_serial_sequence('events', 'id'), coalesce(max(id), 1), max(id) IS NOT NULL) FROM events");
        await c.query("SELECT setval('revision_seq', (SELECT coalesce(max(revision), 0) FROM changes), true)");
      },
    };
    let broken = false;
    try {
      await c.query('BEGIN');
      const result = await fn(io);
      await c.query('COMMIT');
      return result;
    } catch (err) {
      await c.query('ROLLBACK').catch(() => (broken = true));
      throw err;
    } finally {
      c.release(broken);
    }
  }

  protected async run<T>(fn: (tx: StoreTx) => Promise<T>, opts: TransactionOptions): Promise<{ result: T; revision: number | undefined }> {
    if (this.closed) throw new IpvisorError('INTERNAL', `store ${this.url} is closed`);
    for (let attempt = 1; ; attempt++) {
      let client: pg.PoolClient;
      try {
        client = await this.pool.connect();
      } catch (err) {
        throw storeError(this.url, err);
      }
      // The connection pipelines (pg's pipeline mode): BEGIN goes out with the first statement, and
      // COMMIT right behind the change rows, two round trips saved per transaction. A statement
      // that fails aborts the transaction, so the COMMIT behind it only rolls back.
      // Statements queued in one go leave in one write (corked until the end of the tick): BEGIN
      // with the statements fn sends before its first wait, and the change rows with COMMIT and
      // the wake-up. Each write wakes the server process, so fewer writes are fewer context switches.
      corkForThisTick(client);
      const begun = client.query('BEGIN');
      begun.catch(() => undefined); // observed through the tx (begunOk) or below
      const tx = new PgTx(client, !!opts.write, begun);
      let broken = false;
      try {
        const result = await fn(tx);
        const wrote = tx.journal.size > 0;
        corkForThisTick(client);
        const changes = tx.commitJournal(); // sends its statement before returning
        const committed = client.query('COMMIT');
        committed.catch(() => undefined);
        const notified = wrote ? client.query({ name: 'notify_revision', text: NOTIFY_REVISION }) : undefined;
        let revision: number | undefined;
        try {
          revision = await changes;
        } finally {
          await committed.catch(() => undefined);
          // A lost wake-up is no failure of the transaction (listeners re-read on reconnect).
          await notified?.catch(() => undefined);
        }
        await begun;
        await committed;
        return { result, revision };
      } catch (err) {
        // A statement fn started but did not wait for (a pipelined read) must not follow the
        // ROLLBACK onto the connection.
        tx.done = true;
        await client.query('ROLLBACK').catch(() => (broken = true));
        const code = (err as { code?: string }).code;
        if (code && RETRY_CODES.has(code) && attempt < MAX_ATTEMPTS) continue;
        if (!(err instanceof IpvisorError) && (code === undefined || code.startsWith('08') || code === '57P01')) {
          // Connection-level failures (refused, reset, admin shutdown) name the store.
          if ((err as Error).message && /connect|terminat|ECONN|ENOENT|closed/i.test((err as Error).message)) throw storeError(this.url, err);
        }
        throw err;
      } finally {
        tx.done = true;
        client.release(broken || tx.poisoned);
      }
    }
  }

  // LISTEN on a connection of its own; a lost connection is re-opened while someone watches, and a
  // reconnect reports the current revision (a NOTIFY sent meanwhile was lost).
  protected startWatching(): void {
    this.watching = true;
    void this.listen();
  }

  private async listen(): Promise<void> {
    while (this.watching && !this.closed) {
      const client = new pg.Client({ connectionString: this.connectionString });
      try {
        await client.connect();
        client.on('notification', (msg) => {
          if (msg.channel === CHANGES_CHANNEL && msg.payload) this.notify(Number(msg.payload));
        });
        const ended = new Promise<void>((resolve) => {
          client.on('error', () => resolve());
          client.on('end', () => resolve());
        });
        await client.query(`LISTEN ${CHANGES_CHANNEL}`);
        this.listener = client;
        // (re)connected: a NOTIFY sent meanwhile was lost, so wake watchers with where the feed is
        const r = await client.query('SELECT CASE WHEN is_called THEN last_value ELSE 0 END AS v FROM revision_seq');
        this.notify(Number(r.rows[0].v));
        await ended;
      } catch {
        // fall through to the retry below
      }
      this.listener = undefined;
      await client.end().catch(() => undefined);
      if (this.watching && !this.closed) await new Promise((r) => setTimeout(r, 1000));
    }
  }

  protected stopWatching(): void {
    this.watching = false;
    const l = this.listener;
    this.listener = undefined;
    void l?.end().catch(() => undefined);
  }

  async close(): Promise<void> {
    if (this.closed) return;
    this.stopWatching();
    this.closed = true;
    await this.pool.end();
  }
}

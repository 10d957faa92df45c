// SQLite backend of the Store port (better-sqlite3, WAL). better-sqlite3 is synchronous; the port
// is Promise-based, so one in-process mutex keeps a transaction's statements from interleaving with
// other callers, and BEGIN IMMEDIATE plus the busy timeout serialise writers across processes.
import { randomUUID } from 'node:crypto';
import { mkdirSync, statSync, unlinkSync, type Stats } from 'node:fs';
import { dirname } from 'node:path';
import Database from 'better-sqlite3';
import { IpvisorError } from '../../model/errors.js';
import type { Assignment, AssignmentKind, AuditEvent, Network, Pool, Vif, Vm } from '../../model/types.js';
import { eventWhere } from '../events-sql.js';
import { fullLength, poolCounts, poolSpans, SPECIAL, VIF_SCAN_THRESHOLD, vifAddresses } from '../usage.js';
import type { AddressHolder, AssignmentQuery, AssignmentSpan, Change, DocRecord, EventQuery, FreeInterval, Hold, StoreIdentity, StoreTx, TakenAddress, TransactionOptions, UsageCount, VifAddress, VifInContext } from '../store.js';
import { assertOpen, BaseStore, type JournalEntry } from '../base.js';
import { COPY_TABLES, type RawCapable, type RawIo, type RawRow } from '../copy.js';
import { MIGRATIONS, SCHEMA_VERSION } from './migrations.js';
import { addressKey, keyToBigInt, parseAddress } from '../../ipam/addr.js';
import { storeErrorsTotal } from '../../metrics.js';

type Row = Record<string, unknown>;

export interface SqliteOptions {
  /** 'NORMAL' (default; durable in WAL up to the last checkpointed commit on power loss) or 'FULL'. */
  synchronous?: 'NORMAL' | 'FULL';
  busyTimeoutMs?: number;
  /** Create the store when the path has none (missing or empty file). Off by default: enforcement
   * and read-only commands must never follow a store that just appeared empty (fail closed). */
  create?: boolean;
}

/** How to create a store at `path`, for messages. */
function initHint(path: string): string {
  return `create one with: ipvisor init --db ${path}`;
}

/**
 * SQLite and file-system failures as coded store errors naming the path (one meaning each, see
 * docs/errors.md); anything else is returned unchanged.
 */
export function sqliteStoreError(err: unknown, path: string): unknown {
  if (err instanceof IpvisorError) return err;
  const code = String((err as { code?: unknown })?.code ?? '');
  const msg = err instanceof Error ? err.message : String(err);
  const wrap = (c: 'STORE_DAMAGED' | 'STORE_READONLY' | 'STORE_FULL' | 'STORE_BUSY', text: string) => {
    storeErrorsTotal.inc({ code: c });
    return new IpvisorError(c, text, { cause: err, field: 'db' });
  };
  if (code === 'SQLITE_NOTADB' || code.startsWith('SQLITE_CORRUPT')) return wrap('STORE_DAMAGED', `store ${path} is damaged (${msg}); run ipvisor check, or restore a backup`);
  if (code.startsWith('SQLITE_READONLY') || code === 'EROFS' || code === 'EACCES' || code === 'EPERM') return wrap('STORE_READONLY', `store ${path} cannot be written (${msg})`);
  if (code.startsWith('SQLITE_CANTOPEN')) return wrap('STORE_READONLY', `store ${path} cannot be opened for writing (${msg})`);
  if (code === 'SQLITE_FULL' || code === 'ENOSPC' || code === 'EDQUOT') return wrap('STORE_FULL', `store ${path}: the disk is full (${msg}); nothing was written`);
  if (code.startsWith('SQLITE_BUSY')) return wrap('STORE_BUSY', `store ${path} is locked by another process`);
  return err;
}

function statIfAny(path: string): Stats | undefined {
  try {
    return statSync(path);
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'ENOENT' || (err as NodeJS.ErrnoException).code === 'ENOTDIR') return undefined;
    throw sqliteStoreError(err, path);
  }
}

function parseDoc<T>(row: Row | undefined): T | undefined {
  return row ? (JSON.parse(row.doc as string) as T) : undefined;
}

function usageRow(r: Row): UsageCount {
  return { poolUuid: r.pool_uuid as string, kind: r.kind as AssignmentKind, family: r.family as number, prefixLength: r.prefix_length as number, count: r.n as number };
}

function freeRow(row: Row | undefined): FreeInterval | undefined {
  if (!row) return undefined;
  return { poolUuid: row.pool_uuid as string, start: keyToBigInt(row.start_key as string), end: keyToBigInt(row.end_key as string) };
}

/** First event id at or after `since`: ids grow with time, so a binary search over rowids
 * replaces an index on time (one less page written per change). */
function firstEventIdSince(get: (sql: string, ...p: unknown[]) => Row | undefined, since: string): number {
  const bounds = get('SELECT min(id) AS lo, max(id) AS hi FROM events')!;
  if (bounds.lo === null) return 1;
  let lo = bounds.lo as number, hi = (bounds.hi as number) + 1;
  while (lo < hi) {
    const mid = Math.floor((lo + hi) / 2);
    // The first row at or after mid (ids have no gaps unless a transaction rolled back).
    const row = get('SELECT id, time FROM events WHERE id >= ? ORDER BY id LIMIT 1', mid);
    if (!row || (row.time as string) >= since) hi = mid;
    else lo = (row.id as number) + 1;
  }
  return lo;
}

/** Prepared statements of one connection, shared by its transactions. */
class Statements {
  private readonly cache = new Map<string, Database.Statement>();
  constructor(readonly db: Database.Database) {}
  get(sql: string): Database.Statement {
    let s = this.cache.get(sql);
    if (!s) {
      s = this.db.prepare(sql);
      this.cache.set(sql, s);
    }
    return s;
  }
}

/** The host of a change: given, else the VM's (directly or through the VIF). */
const INSERT_CHANGE = `INSERT INTO changes (revision, seq, kind, key, host) VALUES (?, ?, ?, ?,
  coalesce(?, (SELECT nullif(json_extract(doc, '$.host'), '') FROM vms WHERE uuid = coalesce(?, (SELECT vm_uuid FROM vifs WHERE uuid = ?)))))`;

/** One transaction: valid from BEGIN to COMMIT/ROLLBACK; records what it changes for the feed. */
class SqliteTx implements StoreTx {
  done = false;
  readonly journal = new Map<string, JournalEntry>();
  constructor(private readonly sts: Statements) {}

  private all(sql: string, ...params: unknown[]): Row[] {
    assertOpen(this.done);
    return this.sts.get(sql).all(...params) as Row[];
  }
  private get(sql: string, ...params: unknown[]): Row | undefined {
    assertOpen(this.done);
    return this.sts.get(sql).get(...params) as Row | undefined;
  }
  private run(sql: string, ...params: unknown[]): void {
    assertOpen(this.done);
    this.sts.get(sql).run(...params);
  }
  private note(e: JournalEntry): void {
    this.journal.set(`${e.kind}\0${e.key}`, e);
  }

  /** Writes the journal under the next revision (the write lock is held: writers are serial). */
  commitJournal(): number | undefined {
    if (this.journal.size === 0) return undefined;
    const revision = (this.get('SELECT coalesce(max(revision), 0) + 1 AS r FROM changes')!.r as number);
    let seq = 0;
    for (const e of this.journal.values()) {
      this.run(INSERT_CHANGE, revision, seq++, e.kind, e.key, e.host || null, e.vmUuid ?? null, e.vifUuid ?? null);
    }
    return revision;
  }

  // change feed
  async currentRevision(): Promise<number> {
    return this.get('SELECT coalesce(max(revision), 0) AS r FROM changes')!.r as number;
  }
  async changesSince(revision: number, limit = 10_000): Promise<Change[]> {
    const rows = this.all('SELECT * FROM changes WHERE revision > ? ORDER BY revision, seq LIMIT ?', revision, limit);
    // Whole revisions only: drop a trailing partial one unless it is the only one.
    if (rows.length === limit && rows.length > 0) {
      const last = rows[rows.length - 1].revision;
      const cut = rows.filter((r) => r.revision !== last);
      if (cut.length > 0) rows.splice(cut.length);
    }
    return rows.map((r) => ({ revision: r.revision as number, kind: r.kind as string, key: r.key as string, host: (r.host as string) ?? null }));
  }

  // networks
  async listNetworks(): Promise<Network[]> {
    return this.all('SELECT doc FROM networks ORDER BY name').map((r) => parseDoc<Network>(r)!);
  }
  async getNetwork(uuid: string): Promise<Network | undefined> {
    return parseDoc(this.get('SELECT doc FROM networks WHERE uuid = ?', uuid));
  }
  async findNetworkByName(name: string): Promise<Network | undefined> {
    return parseDoc(this.get('SELECT doc FROM networks WHERE name = ?', name));
  }
  async insertNetwork(n: Network): Promise<void> {
    this.run('INSERT INTO networks (uuid, name, doc) VALUES (?, ?, ?)', n.uuid, n.name, JSON.stringify(n));
    this.note({ kind: 'network', key: n.uuid });
  }
  async updateNetwork(n: Network): Promise<void> {
    this.run('UPDATE networks SET name = ?, doc = ? WHERE uuid = ?', n.name, JSON.stringify(n), n.uuid);
    this.note({ kind: 'network', key: n.uuid });
  }
  async deleteNetwork(uuid: string): Promise<void> {
    this.run('DELETE FROM networks WHERE uuid = ?', uuid);
    this.note({ kind: 'network', key: uuid });
  }

  // pools
  async listPools(networkUuid?: string): Promise<Pool[]> {
    const rows = networkUuid
      ? this.all('SELECT doc FROM pools WHERE network_uuid = ? ORDER BY name', networkUuid)
      : this.all('SELECT doc FROM pools ORDER BY name');
    return rows.map((r) => parseDoc<Pool>(r)!);
  }
  async getPool(uuid: string): Promise<Pool | undefined> {
    return parseDoc(this.get('SELECT doc FROM pools WHERE uuid = ?', uuid));
  }
  async findPoolByName(name: string): Promise<Pool | undefined> {
    return parseDoc(this.get('SELECT doc FROM pools WHERE name = ?', name));
  }
  async insertPool(p: Pool): Promise<void> {
    this.run('INSERT INTO pools (uuid, name, network_uuid, doc) VALUES (?, ?, ?, ?)', p.uuid, p.name, p.networkUuid, JSON.stringify(p));
    this.note({ kind: 'pool', key: p.uuid });
  }
  async updatePool(p: Pool): Promise<void> {
    this.run('UPDATE pools SET name = ?, network_uuid = ?, doc = ? WHERE uuid = ?', p.name, p.networkUuid, JSON.stringify(p), p.uuid);
    this.note({ kind: 'pool', key: p.uuid });
  }
  async deletePool(uuid: string): Promise<void> {
    this.run('DELETE FROM free_space WHERE pool_uuid = ?', uuid);
    this.run('DELETE FROM holds WHERE pool_uuid = ?', uuid);
    this.run('DELETE FROM pools WHERE uuid = ?', uuid);
    this.note({ kind: 'pool', key: uuid });
  }

  // vms
  async listVms(): Promise<Vm[]> {
    return this.all('SELECT doc FROM vms ORDER BY name').map((r) => parseDoc<Vm>(r)!);
  }
  async getVm(uuid: string): Promise<Vm | undefined> {
    return parseDoc(this.get('SELECT doc FROM vms WHERE uuid = ?', uuid));
  }
  async findVmByName(name: string): Promise<Vm | undefined> {
    return parseDoc(this.get('SELECT doc FROM vms WHERE name = ?', name));
  }
  async insertVm(v: Vm): Promise<void> {
    this.run('INSERT INTO vms (uuid, name, doc) VALUES (?, ?, ?)', v.uuid, v.name, JSON.stringify(v));
    this.note({ kind: 'vm', key: v.uuid, host: v.host });
  }
  async updateVm(v: Vm): Promise<void> {
    const old = this.get("SELECT json_extract(doc, '$.host') AS host FROM vms WHERE uuid = ?", v.uuid);
    this.run('UPDATE vms SET name = ?, doc = ? WHERE uuid = ?', v.name, JSON.stringify(v), v.uuid);
    this.note({ kind: 'vm', key: v.uuid, host: v.host });
    // A VM moving between hosts concerns the host it left too.
    if (old?.host && old.host !== v.host) this.note({ kind: 'vm-left', key: v.uuid, host: old.host as string });
  }
  async deleteVm(uuid: string): Promise<void> {
    const row = this.get("DELETE FROM vms WHERE uuid = ? RETURNING json_extract(doc, '$.host') AS host", uuid);
    this.note({ kind: 'vm', key: uuid, host: (row?.host as string) ?? null });
  }

  // vifs
  async listVifs(vmUuid?: string): Promise<Vif[]> {
    const rows = vmUuid
      ? this.all('SELECT doc FROM vifs WHERE vm_uuid = ? ORDER BY device', vmUuid)
      : this.all('SELECT v.doc FROM vifs v JOIN vms m ON m.uuid = v.vm_uuid ORDER BY m.name, v.device');
    return rows.map((r) => parseDoc<Vif>(r)!);
  }
  async getVif(uuid: string): Promise<Vif | undefined> {
    return parseDoc(this.get('SELECT doc FROM vifs WHERE uuid = ?', uuid));
  }
  async findVifByDevice(vmUuid: string, device: number): Promise<Vif | undefined> {
    return parseDoc(this.get('SELECT doc FROM vifs WHERE vm_uuid = ? AND device = ?', vmUuid, device));
  }
  async findVifByMac(networkUuid: string, mac: string): Promise<Vif | undefined> {
    return parseDoc(this.get('SELECT doc FROM vifs WHERE network_uuid = ? AND mac = ?', networkUuid, mac));
  }
  async findVifInContext(vmName: string, device: number): Promise<VifInContext | undefined> {
    const r = this.get('SELECT v.doc AS vif, m.doc AS vm, n.doc AS network FROM vms m JOIN vifs v ON v.vm_uuid = m.uuid AND v.device = ? JOIN networks n ON n.uuid = v.network_uuid WHERE m.name = ?', device, vmName);
    return r ? { vif: JSON.parse(r.vif as string) as Vif, vm: JSON.parse(r.vm as string) as Vm, network: JSON.parse(r.network as string) as Network } : undefined;
  }
  async insertVif(v: Vif): Promise<void> {
    this.run('INSERT INTO vifs (uuid, vm_uuid, device, network_uuid, mac, doc) VALUES (?, ?, ?, ?, ?, ?)', v.uuid, v.vmUuid, v.device, v.networkUuid, v.mac, JSON.stringify(v));
    this.note({ kind: 'vif', key: v.uuid, vmUuid: v.vmUuid });
  }
  async updateVif(v: Vif): Promise<void> {
    this.run('UPDATE vifs SET vm_uuid = ?, device = ?, network_uuid = ?, mac = ?, doc = ? WHERE uuid = ?', v.vmUuid, v.device, v.networkUuid, v.mac, JSON.stringify(v), v.uuid);
    this.note({ kind: 'vif', key: v.uuid, vmUuid: v.vmUuid });
  }
  async deleteVif(uuid: string): Promise<void> {
    const row = this.get('DELETE FROM vifs WHERE uuid = ? RETURNING vm_uuid', uuid);
    this.note({ kind: 'vif', key: uuid, vmUuid: (row?.vm_uuid as string) ?? null });
  }

  // assignments
  async listAssignments(q: AssignmentQuery = {}): Promise<Assignment[]> {
    const where: string[] = [];
    const params: unknown[] = [];
    if (q.networkUuid) (where.push('network_uuid = ?'), params.push(q.networkUuid));
    if (q.poolUuid) (where.push('pool_uuid = ?'), params.push(q.poolUuid));
    if (q.vifUuid) (where.push('vif_uuid = ?'), params.push(q.vifUuid));
    if (q.vifUuids) {
      if (q.vifUuids.length === 0) return [];
      where.push(`vif_uuid IN (${q.vifUuids.map(() => '?').join(',')})`);
      params.push(...q.vifUuids);
    }
    if (q.address) {
      const a = parseAddress(q.address);
      // Through the (pool_uuid, addr_key) unique index, one probe per pool: never a table scan.
      (where.push('addr_key = ? AND family = ? AND pool_uuid IN (SELECT uuid FROM pools)'), params.push(addressKey(a.value), a.family));
    }
    const sql = `SELECT doc FROM assignments ${where.length ? 'WHERE ' + where.join(' AND ') : ''} ORDER BY family, addr_key`;
    return this.all(sql, ...params).map((r) => parseDoc<Assignment>(r)!);
  }
  async getAssignment(uuid: string): Promise<Assignment | undefined> {
    return parseDoc(this.get('SELECT doc FROM assignments WHERE uuid = ?', uuid));
  }
  async findAssignmentByRequestId(requestId: string): Promise<Assignment | undefined> {
    return parseDoc(this.get('SELECT doc FROM assignments WHERE request_id = ?', requestId));
  }
  async insertAssignment(a: Assignment): Promise<void> {
    const key = addressKey(parseAddress(a.address).value);
    this.run(
      'INSERT INTO assignments (uuid, network_uuid, pool_uuid, vif_uuid, family, addr_key, prefix_length, kind, request_id, doc) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)',
      a.uuid, a.networkUuid, a.poolUuid, a.vifUuid, a.family, key, a.prefixLength, a.kind, a.requestId, JSON.stringify(a),
    );
    this.note({ kind: 'assignment', key: a.uuid, vifUuid: a.vifUuid });
  }
  async updateAssignment(a: Assignment): Promise<void> {
    this.run('UPDATE assignments SET vif_uuid = ?, kind = ?, doc = ? WHERE uuid = ?', a.vifUuid, a.kind, JSON.stringify(a), a.uuid);
    this.note({ kind: 'assignment', key: a.uuid, vifUuid: a.vifUuid });
  }
  async deleteAssignment(uuid: string): Promise<void> {
    const row = this.get('DELETE FROM assignments WHERE uuid = ? RETURNING vif_uuid', uuid);
    this.note({ kind: 'assignment', key: uuid, vifUuid: (row?.vif_uuid as string) ?? null });
  }
  async vifHoldsAddress(vifUuid: string, family: number): Promise<boolean> {
    return !!this.get("SELECT 1 FROM assignments WHERE vif_uuid = ? AND family = ? AND kind IN ('primary', 'additional') LIMIT 1", vifUuid, family);
  }
  async countAssignments(poolUuid: string): Promise<{ addresses: number; routedPrefixes: Array<{ family: number; prefixLength: number }> }> {
    const row = this.get("SELECT count(*) AS n FROM assignments WHERE pool_uuid = ? AND prefix_length = CASE family WHEN 4 THEN 32 ELSE 128 END", poolUuid)!;
    const prefixes = this.all("SELECT family, prefix_length FROM assignments WHERE pool_uuid = ? AND prefix_length <> CASE family WHEN 4 THEN 32 ELSE 128 END", poolUuid);
    return { addresses: row.n as number, routedPrefixes: prefixes.map((r) => ({ family: r.family as number, prefixLength: r.prefix_length as number })) };
  }

  // usage (read models counted in SQL)
  async countUsage(poolUuids?: string[]): Promise<UsageCount[]> {
    const pools = this.all("SELECT uuid, json_extract(doc, '$.family') AS family FROM pools")
      .filter((p) => !poolUuids || poolUuids.includes(p.uuid as string));
    const out: UsageCount[] = [];
    for (const p of pools) {
      // Both from indexes: the count from (pool_uuid, addr_key), the rest from assignments_special.
      const total = this.get('SELECT count(*) AS n FROM assignments WHERE pool_uuid = ?', p.uuid)!.n as number;
      if (total === 0) continue;
      const special = this.all(`SELECT pool_uuid, kind, family, prefix_length, count(*) AS n FROM assignments WHERE pool_uuid = ? AND ${SPECIAL} GROUP BY kind, family, prefix_length`, p.uuid).map(usageRow);
      out.push(...poolCounts({ uuid: p.uuid as string, family: p.family as number, total }, special));
    }
    return out;
  }
  async countOwnerUsage(owner: string): Promise<UsageCount[]> {
    // CROSS JOIN fixes the order: the owner's VMs, their VIFs, their assignments by assignments_vif.
    return this.all(
      `SELECT a.pool_uuid, a.kind, a.family, a.prefix_length, count(*) AS n
       FROM vms m CROSS JOIN vifs v ON v.vm_uuid = m.uuid CROSS JOIN assignments a ON a.vif_uuid = v.uuid
       WHERE json_extract(m.doc, '$.owner') = ? GROUP BY a.pool_uuid, a.kind, a.family, a.prefix_length`, owner,
    ).map(usageRow);
  }
  async listAssignmentsInRange(poolUuid: string, start: bigint, end: bigint): Promise<Assignment[]> {
    const lo = addressKey(start), hi = addressKey(end);
    const rows = [
      ...this.all('SELECT addr_key, doc FROM assignments WHERE pool_uuid = ? AND addr_key >= ? AND addr_key <= ?', poolUuid, lo, hi),
      // prefixes starting before the range (assignments_special): only those reaching into it
      ...this.all(`SELECT addr_key, prefix_length, family FROM assignments WHERE pool_uuid = ? AND ${SPECIAL} AND addr_key < ?`, poolUuid, lo)
        .filter((r) => keyToBigInt(r.addr_key as string) + (1n << BigInt(fullLength(r.family as number) - (r.prefix_length as number))) - 1n >= start)
        .map((r) => this.get('SELECT addr_key, doc FROM assignments WHERE pool_uuid = ? AND addr_key = ?', poolUuid, r.addr_key)!),
    ];
    return rows.sort((a, b) => ((a.addr_key as string) < (b.addr_key as string) ? -1 : 1)).map((r) => parseDoc<Assignment>(r)!);
  }
  async listAssignmentSpans(poolUuid: string): Promise<AssignmentSpan[]> {
    const pool = this.get("SELECT json_extract(doc, '$.family') AS family FROM pools WHERE uuid = ?", poolUuid);
    if (!pool) return [];
    const keys = this.all('SELECT addr_key FROM assignments WHERE pool_uuid = ? ORDER BY addr_key', poolUuid).map((r) => keyToBigInt(r.addr_key as string));
    const special = this.all(`SELECT addr_key, kind, prefix_length FROM assignments WHERE pool_uuid = ? AND ${SPECIAL}`, poolUuid)
      .map((r) => ({ start: keyToBigInt(r.addr_key as string), kind: r.kind as AssignmentKind, prefixLength: r.prefix_length as number }));
    return poolSpans(pool.family as number, keys, special);
  }
  async listVifAddresses(vifUuids?: string[]): Promise<VifAddress[]> {
    const cols = 'SELECT vif_uuid, family, addr_key, prefix_length, kind FROM assignments';
    if (vifUuids && vifUuids.length === 0) return [];
    if (vifUuids && vifUuids.length <= VIF_SCAN_THRESHOLD) return vifAddresses(this.all(`${cols} WHERE vif_uuid IN (${vifUuids.map(() => '?').join(',')})`, ...vifUuids));
    return vifAddresses(this.all(`${cols} WHERE vif_uuid IS NOT NULL`), vifUuids && new Set(vifUuids));
  }

  // free space
  async lowestFree(poolUuid: string): Promise<FreeInterval | undefined> {
    return freeRow(this.get('SELECT * FROM free_space WHERE pool_uuid = ? ORDER BY start_key LIMIT 1', poolUuid));
  }
  async takeLowestFree(poolUuid: string, now: string, holder?: AddressHolder): Promise<TakenAddress | undefined | 'expired-holds'> {
    if (this.get('SELECT 1 FROM holds WHERE pool_uuid = ? AND until <= ? LIMIT 1', poolUuid, now)) return 'expired-holds';
    const iv = freeRow(this.get('SELECT * FROM free_space WHERE pool_uuid = ? ORDER BY start_key LIMIT 1', poolUuid));
    if (!iv) return undefined;
    if (iv.start === iv.end) this.run('DELETE FROM free_space WHERE pool_uuid = ? AND start_key = ?', poolUuid, addressKey(iv.start));
    else this.run('UPDATE free_space SET start_key = ? WHERE pool_uuid = ? AND start_key = ?', addressKey(iv.start + 1n), poolUuid, addressKey(iv.start));
    return { start: iv.start, holderHasAddress: holder ? await this.vifHoldsAddress(holder.vifUuid, holder.family) : false };
  }
  async freeAtOrBefore(poolUuid: string, key: bigint): Promise<FreeInterval | undefined> {
    return freeRow(this.get('SELECT * FROM free_space WHERE pool_uuid = ? AND start_key <= ? ORDER BY start_key DESC LIMIT 1', poolUuid, addressKey(key)));
  }
  async freeAfter(poolUuid: string, key: bigint): Promise<FreeInterval | undefined> {
    return freeRow(this.get('SELECT * FROM free_space WHERE pool_uuid = ? AND start_key > ? ORDER BY start_key LIMIT 1', poolUuid, addressKey(key)));
  }
  async freeIntervals(poolUuid: string, fromKey?: bigint, limit = -1): Promise<FreeInterval[]> {
    return this.all('SELECT * FROM free_space WHERE pool_uuid = ? AND start_key >= ? ORDER BY start_key LIMIT ?', poolUuid, addressKey(fromKey ?? 0n), limit).map((r) => freeRow(r)!);
  }
  async insertFree(f: FreeInterval): Promise<void> {
    this.run('INSERT INTO free_space (pool_uuid, start_key, end_key) VALUES (?, ?, ?)', f.poolUuid, addressKey(f.start), addressKey(f.end));
  }
  async replaceFree(poolUuid: string, start: bigint, f: FreeInterval): Promise<void> {
    this.run('UPDATE free_space SET start_key = ?, end_key = ? WHERE pool_uuid = ? AND start_key = ?', addressKey(f.start), addressKey(f.end), poolUuid, addressKey(start));
  }
  async deleteFree(poolUuid: string, start: bigint): Promise<void> {
    this.run('DELETE FROM free_space WHERE pool_uuid = ? AND start_key = ?', poolUuid, addressKey(start));
  }
  async clearFree(poolUuid: string): Promise<void> {
    this.run('DELETE FROM free_space WHERE pool_uuid = ?', poolUuid);
  }

  // holds
  async insertHold(h: Hold): Promise<void> {
    this.run('INSERT OR REPLACE INTO holds (pool_uuid, start_key, end_key, until) VALUES (?, ?, ?, ?)', h.poolUuid, addressKey(h.start), addressKey(h.end), h.until);
  }
  async listHolds(poolUuid: string): Promise<Hold[]> {
    return this.all('SELECT * FROM holds WHERE pool_uuid = ? ORDER BY start_key', poolUuid).map((r) => ({
      poolUuid, start: keyToBigInt(r.start_key as string), end: keyToBigInt(r.end_key as string), until: r.until as string,
    }));
  }
  async takeExpiredHolds(poolUuid: string, now: string): Promise<Hold[]> {
    const rows = this.all('SELECT * FROM holds WHERE pool_uuid = ? AND until <= ?', poolUuid, now);
    if (rows.length) this.run('DELETE FROM holds WHERE pool_uuid = ? AND until <= ?', poolUuid, now);
    return rows.map((r) => ({ poolUuid, start: keyToBigInt(r.start_key as string), end: keyToBigInt(r.end_key as string), until: r.until as string }));
  }
  async deleteHolds(poolUuid: string): Promise<void> {
    this.run('DELETE FROM holds WHERE pool_uuid = ?', poolUuid);
  }

  // idempotency keys
  async getRequest(requestId: string) {
    const r = this.get('SELECT * FROM requests WHERE request_id = ?', requestId);
    return r ? { requestId, fingerprint: r.fingerprint as string, assignmentUuid: r.assignment_uuid as string } : undefined;
  }
  async insertRequest(r: { requestId: string; fingerprint: string; assignmentUuid: string }): Promise<void> {
    this.run('INSERT INTO requests (request_id, fingerprint, assignment_uuid) VALUES (?, ?, ?)', r.requestId, r.fingerprint, r.assignmentUuid);
  }
  async deleteRequestsFor(assignmentUuid: string): Promise<void> {
    this.run('DELETE FROM requests WHERE assignment_uuid = ?', assignmentUuid);
  }

  // audit
  async insertEvent(e: Omit<AuditEvent, 'id'>): Promise<void> {
    this.run(
      'INSERT INTO events (time, actor, action, object_kind, object_uuid, object_name, before, after, request_id) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)',
      e.time, e.actor, e.action, e.objectKind, e.objectUuid, e.objectName,
      e.before === undefined || e.before === null ? null : JSON.stringify(e.before),
      e.after === undefined || e.after === null ? null : JSON.stringify(e.after),
      e.requestId ?? null,
    );
  }
  async listEvents(q: EventQuery = {}): Promise<AuditEvent[]> {
    // named (@pN), bound from one object: a VM's related events use the range's parameters twice
    const params: Record<string, unknown> = {};
    let n = 0;
    const p = (v: unknown) => {
      const name = `p${++n}`;
      params[name] = v;
      return `@${name}`;
    };
    const where = eventWhere(q, {
      param: p,
      field: (column, key) => `json_extract(${column}, '$.${key}')`,
      since: (since) => `id >= ${p(firstEventIdSince((sql, ...args) => this.get(sql, ...args), since))}`,
    });
    const sql = `SELECT * FROM events ${where} ORDER BY id ${q.order === 'desc' ? 'DESC' : ''} LIMIT ${p(q.limit ?? -1)}`;
    return this.all(sql, params).map((r) => ({
      id: r.id as number, time: r.time as string, actor: r.actor as string, action: r.action as string,
      objectKind: r.object_kind as string, objectUuid: (r.object_uuid as string) ?? null, objectName: (r.object_name as string) ?? null,
      before: r.before === null ? null : JSON.parse(r.before as string), after: r.after === null ? null : JSON.parse(r.after as string),
      requestId: (r.request_id as string | null) ?? null,
    }));
  }

  // documents
  async getDoc<T>(kind: string, key: string): Promise<DocRecord<T> | undefined> {
    const r = this.get('SELECT * FROM docs WHERE kind = ? AND key = ?', kind, key);
    return r ? { kind, key, value: JSON.parse(r.value as string) as T, updatedAt: r.updated_at as string } : undefined;
  }
  async listDocs<T>(kind: string): Promise<DocRecord<T>[]> {
    return this.all('SELECT * FROM docs WHERE kind = ? ORDER BY key', kind).map((r) => ({
      kind, key: r.key as string, value: JSON.parse(r.value as string) as T, updatedAt: r.updated_at as string,
    }));
  }
  async putDoc<T>(kind: string, key: string, value: T): Promise<void> {
    this.run('INSERT INTO docs (kind, key, value, updated_at) VALUES (?, ?, ?, ?) ON CONFLICT (kind, key) DO UPDATE SET value = excluded.value, updated_at = excluded.updated_at',
      kind, key, JSON.stringify(value), new Date().toISOString());
    this.note({ kind: `doc:${kind}`, key });
  }
  async deleteDoc(kind: string, key: string): Promise<void> {
    this.run('DELETE FROM docs WHERE kind = ? AND key = ?', kind, key);
    this.note({ kind: `doc:${kind}`, key });
  }
}

/** Serialises async critical sections within this process. */
class Mutex {
  private tail: Promise<void> = Promise.resolve();
  lock(): Promise<() => void> {
    let release!: () => void;
    const next = new Promise<void>((r) => (release = r));
    const prev = this.tail;
    this.tail = prev.then(() => next);
    return prev.then(() => release);
  }
}

/** How often a watched store looks for commits of other processes (PRAGMA data_version): only while
 * someone watches (a server with agents waiting, serve). The pragma reads a counter in shared memory
 * (about a microsecond), so 25 ms costs nothing measurable and keeps a CLI's allocation from waiting
 * up to 200 ms before the agents hear of it. */
const WATCH_POLL_MS = 25;

export class SqliteStore extends BaseStore implements RawCapable {
  readonly kind = 'sqlite' as const;
  readonly url: string;
  private readonly db: Database.Database;
  private readonly sts: Statements;
  private readonly mutex = new Mutex();
  private closed = false;
  private poller: NodeJS.Timeout | undefined;
  /** The file opened (device and inode), to notice a replacement under the same path. */
  private readonly opened: Stats | undefined;
  /** This connection's -wal and -shm files: SQLite finds them by name, so once the store file is
   * replaced (mv) they would be read as the new file's; close() removes them then. */
  private readonly sidecars: Array<{ path: string; stat: Stats }> = [];

  constructor(readonly path: string, opts: SqliteOptions = {}) {
    super();
    this.url = `sqlite:${path}`;
    const create = opts.create ?? false;
    const before = path === ':memory:' ? undefined : statIfAny(path);
    if (path !== ':memory:') {
      if (before && !before.isFile()) throw new IpvisorError('STORE_DAMAGED', `store ${path} is not a file`, { field: 'db' });
      // an empty file is what a failed copy or a truncation leaves: no store, not an empty one
      if (!create && (!before || before.size === 0)) {
        throw new IpvisorError('STORE_MISSING', `no ipvisor store at ${path} (${before ? 'empty file' : 'no such file'}); ${initHint(path)}`, { field: 'db' });
      }
      if (!before) {
        try {
          mkdirSync(dirname(path), { recursive: true });
        } catch (err) {
          throw sqliteStoreError(err, path);
        }
      }
    }
    let db: Database.Database;
    try {
      db = new Database(path, { timeout: opts.busyTimeoutMs ?? 15000 });
    } catch (err) {
      throw sqliteStoreError(err, path);
    }
    this.db = db;
    try {
      db.pragma('journal_mode = WAL');
      db.pragma(`synchronous = ${opts.synchronous ?? 'NORMAL'}`);
      db.pragma('foreign_keys = ON');
      // Each checkpoint fsyncs; at the default 1,000 pages that is every ~100 allocations and costs
      // about a third of the commit rate here (bench/ipam). 10,000 pages (40 MB of WAL) at most.
      db.pragma('wal_autocheckpoint = 10000');
      db.pragma('cache_size = -32000');
      this.migrate(create);
      this.ensureIdentity();
      this.sts = new Statements(db);
    } catch (err) {
      db.close();
      throw sqliteStoreError(err, path);
    }
    this.opened = path === ':memory:' ? undefined : statIfAny(path);
    if (this.opened) {
      for (const side of [`${path}-wal`, `${path}-shm`]) {
        const stat = statIfAny(side);
        if (stat) this.sidecars.push({ path: side, stat });
      }
    }
  }

  private migrate(create: boolean): void {
    const db = this.db;
    const hasMeta = !!db.prepare("SELECT 1 FROM sqlite_master WHERE type = 'table' AND name = 'meta'").get();
    if (!hasMeta) {
      const other = db.prepare("SELECT count(*) AS n FROM sqlite_master WHERE name NOT LIKE 'sqlite_%'").get() as Row;
      if (!create) throw new IpvisorError('STORE_MISSING', `no ipvisor store at ${this.path} (an SQLite database without ipvisor's schema); ${initHint(this.path)}`, { field: 'db' });
      if ((other.n as number) > 0) throw new IpvisorError('STORE_SCHEMA', `${this.path} is an SQLite database with other tables than ipvisor's; not writing into it`, { field: 'db' });
    }
    db.exec('CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value TEXT NOT NULL)');
    const row = db.prepare("SELECT value FROM meta WHERE key = 'schema_version'").get() as Row | undefined;
    const current = row ? Number(row.value) : 0;
    if (!Number.isInteger(current) || current > SCHEMA_VERSION) {
      throw new IpvisorError('STORE_SCHEMA', `store ${this.path} has schema version ${row?.value}, this ipvisor knows up to ${SCHEMA_VERSION}; upgrade ipvisor`, { field: 'db' });
    }
    for (const m of MIGRATIONS) {
      if (m.version <= current) continue;
      db.exec('BEGIN IMMEDIATE');
      try {
        // Another process may have migrated while we waited for the lock.
        const again = db.prepare("SELECT value FROM meta WHERE key = 'schema_version'").get() as Row | undefined;
        if (again && Number(again.value) >= m.version) {
          db.exec('COMMIT');
          continue;
        }
        db.exec(m.sql);
        db.prepare("INSERT INTO meta (key, value) VALUES ('schema_version', ?) ON CONFLICT (key) DO UPDATE SET value = excluded.value").run(String(m.version));
        db.exec('COMMIT');
      } catch (err) {
        db.exec('ROLLBACK');
        throw err;
      }
    }
  }

  /** A store made before identities existed gets one on first open. */
  private ensureIdentity(): void {
    const db = this.db;
    if (db.prepare("SELECT 1 FROM meta WHERE key = 'store_id'").get()) return;
    db.exec('BEGIN IMMEDIATE');
    try {
      db.prepare("INSERT INTO meta (key, value) VALUES ('store_id', ?) ON CONFLICT (key) DO NOTHING").run(randomUUID());
      db.exec('COMMIT');
    } catch (err) {
      if (db.inTransaction) db.exec('ROLLBACK');
      throw err;
    }
  }

  async identity(): Promise<StoreIdentity> {
    // read each time: a copy written over the same file changes it without a reopen
    const release = await this.mutex.lock();
    let row: Row | undefined;
    try {
      if (this.closed) throw new IpvisorError('INTERNAL', `store ${this.path} is closed`);
      row = this.db.prepare("SELECT value FROM meta WHERE key = 'store_id'").get() as Row | undefined;
    } catch (err) {
      throw sqliteStoreError(err, this.path);
    } finally {
      release();
    }
    if (!row) throw new IpvisorError('STORE_SCHEMA', `store ${this.path} has no identity in its meta table`, { field: 'db' });
    return { id: row.value as string, location: this.path };
  }

  async integrityCheck(): Promise<string[]> {
    const release = await this.mutex.lock();
    try {
      const out: string[] = [];
      for (const r of this.db.pragma('integrity_check') as Array<{ integrity_check: string }>) if (r.integrity_check !== 'ok') out.push(`SQLite integrity: ${r.integrity_check}`);
      for (const r of this.db.pragma('foreign_key_check') as Array<{ table: string; rowid: number; parent: string }>) out.push(`SQLite: a row of ${r.table} points at a missing ${r.parent} row`);
      return out;
    } catch (err) {
      throw sqliteStoreError(err, this.path);
    } finally {
      release();
    }
  }

  replacedOnDisk(): boolean {
    if (!this.opened) return false;
    const now = statIfAny(this.path);
    // gone altogether: keep the file we have (the last known truth) rather than nothing
    return !!now && (now.ino !== this.opened.ino || now.dev !== this.opened.dev);
  }

  /** Table-level access for `store copy`, in one write transaction. */
  async raw<T>(fn: (io: RawIo) => Promise<T>): Promise<T> {
    const spec = new Map(COPY_TABLES.map((t) => [t.name, t]));
    const table = (name: string) => {
      const t = spec.get(name);
      if (!t) throw new IpvisorError('INTERNAL', `unknown table ${name}`);
      return t;
    };
    const db = this.db;
    const io: RawIo = {
      async count(name) {
        return (db.prepare(`SELECT count(*) AS n FROM ${table(name).name}`).get() as Row).n as number;
      },
      async read(name, offset, limit) {
        const t = table(name);
        return db.prepare(`SELECT ${t.columns.join(', ')} FROM ${t.name} ORDER BY ${t.key.join(', ')} LIMIT ? OFFSET ?`).all(limit, offset) as RawRow[];
      },
      async write(name, rows) {
        const t = table(name);
        const st = db.prepare(`INSERT INTO ${t.name} (${t.columns.join(', ')}) VALUES (${t.columns.map(() => '?').join(', ')})`);
        for (const r of rows) st.run(...t.columns.map((c) => r[c] ?? null));
      },
      async clear(names) {
        for (const n of names) db.prepare(`DELETE FROM ${table(n).name}`).run();
      },
      async getMeta(key) {
        return (db.prepare('SELECT value FROM meta WHERE key = ?').get(key) as Row | undefined)?.value as string | undefined;
      },
      async setMeta(key, value) {
        db.prepare('INSERT INTO meta (key, value) VALUES (?, ?) ON CONFLICT (key) DO UPDATE SET value = excluded.value').run(key, value);
      },
      async finishLoad() {
        // rowids and max(revision) follow the rows by themselves
      },
    };
    const release = await this.mutex.lock();
    try {
      if (this.closed) throw new IpvisorError('INTERNAL', `store ${this.path} is closed`);
      try {
        db.exec('BEGIN IMMEDIATE');
      } catch (err) {
        throw sqliteStoreError(err, this.path);
      }
      try {
        const result = await fn(io);
        db.exec('COMMIT');
        return result;
      } catch (err) {
        if (db.inTransaction) db.exec('ROLLBACK');
        throw sqliteStoreError(err, this.path);
      }
    } finally {
      release();
    }
  }

  protected async run<T>(fn: (tx: StoreTx) => Promise<T>, opts: TransactionOptions): Promise<{ result: T; revision: number | undefined }> {
    const release = await this.mutex.lock();
    try {
      if (this.closed) throw new IpvisorError('INTERNAL', `store ${this.path} is closed`);
      try {
        this.db.exec(opts.write ? 'BEGIN IMMEDIATE' : 'BEGIN');
      } catch (err) {
        throw sqliteStoreError(err, this.path);
      }
      const tx = new SqliteTx(this.sts);
      try {
        const result = await fn(tx);
        const revision = tx.commitJournal();
        this.db.exec('COMMIT');
        return { result, revision };
      } catch (err) {
        try {
          if (this.db.inTransaction) this.db.exec('ROLLBACK');
        } catch {
          /* SQLite rolled back by itself (SQLITE_FULL, I/O errors) */
        }
        throw sqliteStoreError(err, this.path);
      } finally {
        tx.done = true;
      }
    } finally {
      release();
    }
  }

  // Commits of this process are announced by BaseStore; those of other processes show up as a
  // changed PRAGMA data_version, which this connection polls while someone watches.
  protected startWatching(): void {
    let seen = this.db.pragma('data_version', { simple: true }) as number;
    this.poller = setInterval(() => {
      if (this.closed) return;
      const v = this.db.pragma('data_version', { simple: true }) as number;
      if (v === seen) return;
      seen = v;
      const r = this.db.prepare('SELECT coalesce(max(revision), 0) AS r FROM changes').get() as Row;
      this.notify(r.r as number);
    }, WATCH_POLL_MS);
  }

  protected stopWatching(): void {
    if (this.poller) clearInterval(this.poller);
    this.poller = undefined;
  }

  async close(): Promise<void> {
    if (this.closed) return;
    this.stopWatching();
    const release = await this.mutex.lock();
    try {
      this.closed = true;
      this.db.close();
      // replaced under us: our WAL would be replayed into the new file (a restored backup) by the
      // next opener. SQLite leaves it behind when the file it belongs to was renamed away.
      if (this.replacedOnDisk()) {
        for (const side of this.sidecars) {
          const now = statIfAny(side.path);
          if (now && now.ino === side.stat.ino && now.dev === side.stat.dev) unlinkSync(side.path);
        }
      }
    } finally {
      release();
    }
  }
}

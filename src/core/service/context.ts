import { AsyncLocalStorage } from 'node:async_hooks';
import { createHash, randomUUID } from 'node:crypto';
import type { Store, StoreTx } from '../store/store.js';
import { IpvisorError } from '../model/errors.js';

export function now(): string {
  return new Date().toISOString();
}

export function newUuid(): string {
  return randomUUID();
}

export interface AuditInput {
  actor: string;
  action: string;
  kind: string;
  uuid: string | null;
  name: string | null;
  before?: unknown;
  after?: unknown;
  /** When it happened, if not now (an agent's report of what it applied during an outage). */
  time?: string;
}

/** The request a change belongs to (an API request id): set by the front end around a service call,
 * read by audit(), so no service signature has to carry it. */
const requestContext = new AsyncLocalStorage<{ requestId: string }>();

export function withRequestId<T>(requestId: string, fn: () => T): T {
  return requestContext.run({ requestId }, fn);
}

export function currentRequestId(): string | null {
  return requestContext.getStore()?.requestId ?? null;
}

/** A version tag of a stored record (the API's ETag): changes whenever any field does. */
export function versionOf(record: unknown): string {
  return createHash('sha256').update(JSON.stringify(record)).digest('base64url').slice(0, 27);
}

/** Checks an If-Match precondition against the record as read inside the transaction that changes it. */
export function checkVersion(record: unknown, expected: string | undefined, kind: string): void {
  if (expected === undefined) return;
  const tags = expected.split(',').map((t) => t.trim().replace(/^W\//, '').replace(/^"|"$/g, ''));
  if (tags.includes('*') || tags.includes(versionOf(record))) return;
  throw new IpvisorError('PRECONDITION_FAILED', `${kind}: changed since it was read (If-Match does not match its current ETag); read it again`, { field: 'If-Match' });
}

/** Every change goes through here, inside the transaction that makes it, so the log cannot miss one. */
export async function audit(tx: StoreTx, e: AuditInput): Promise<void> {
  await tx.insertEvent({
    time: e.time ?? now(),
    actor: e.actor,
    action: e.action,
    objectKind: e.kind,
    objectUuid: e.uuid,
    objectName: e.name,
    before: e.before ?? null,
    after: e.after ?? null,
    requestId: currentRequestId(),
  });
}

/** Runs `run` in a write transaction of its own, or inside the caller's when given a transaction
 * (hooks and sync compose several operations into one). */
export function inWriteTx<T>(store: Store | StoreTx, run: (tx: StoreTx) => Promise<T>): Promise<T> {
  return 'transaction' in store ? (store as Store).transaction(run, { write: true }) : run(store);
}

/** An assignment's name in the audit log: the address, or ADDRESS/LEN for a prefix. */
export function assignmentName(a: { address: string; prefixLength: number; family: 4 | 6 }): string {
  return a.prefixLength === (a.family === 4 ? 32 : 128) ? a.address : `${a.address}/${a.prefixLength}`;
}

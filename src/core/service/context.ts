import { randomUUID } from 'node:crypto';
import type { Store, StoreTx } from '../store/store.js';

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
}

/** Every change goes through here, inside the transaction that makes it, so the log cannot miss one. */
export async function audit(tx: StoreTx, e: AuditInput): Promise<void> {
  await tx.insertEvent({
    time: now(),
    actor: e.actor,
    action: e.action,
    objectKind: e.kind,
    objectUuid: e.uuid,
    objectName: e.name,
    before: e.before ?? null,
    after: e.after ?? null,
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

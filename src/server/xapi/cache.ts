// The ref -> record cache of one pool, fed by get_all_records and event.from batches. Store-free
// (the dom0 binder bundles it). `del` events carry no snapshot, so the cache is what tells which
// object disappeared.
import { NULL_REF, type XapiClient, type XapiEvent } from './client.js';

export type XRecord = Record<string, any>;

/** Wire class names; event.from reports them lower-cased. */
export const SYNC_CLASSES = ['pool', 'host', 'VM', 'VM_guest_metrics', 'VIF', 'network', 'PIF', 'PBD', 'SR'] as const;
export type XClass = (typeof SYNC_CLASSES)[number];

const BY_LOWER = new Map<string, XClass>(SYNC_CLASSES.map((c) => [c.toLowerCase(), c]));

export function wireClassOf(eventClass: string): XClass | undefined {
  return BY_LOWER.get(eventClass.toLowerCase());
}

export interface CacheChange {
  cls: XClass;
  op: 'add' | 'mod' | 'del';
  ref: string;
  /** The record before the change (undefined for a new object). */
  before: XRecord | undefined;
  after: XRecord | undefined;
}

export class XapiCache {
  private readonly tables = new Map<XClass, Map<string, XRecord>>();

  constructor(readonly classes: readonly XClass[] = SYNC_CLASSES) {
    for (const c of classes) this.tables.set(c, new Map());
  }

  table(cls: XClass): Map<string, XRecord> {
    let t = this.tables.get(cls);
    if (!t) {
      t = new Map();
      this.tables.set(cls, t);
    }
    return t;
  }

  get(cls: XClass, ref: string | undefined | null): XRecord | undefined {
    if (!ref || ref === NULL_REF) return undefined;
    return this.table(cls).get(ref);
  }

  all(cls: XClass): Array<[string, XRecord]> {
    return [...this.table(cls)];
  }

  replaceAll(cls: XClass, records: Record<string, XRecord>): void {
    const t = this.table(cls);
    t.clear();
    for (const [ref, rec] of Object.entries(records)) t.set(ref, rec);
  }

  /** Applies one event.from batch; unknown classes and malformed events are ignored, not fatal. */
  applyEvents(events: XapiEvent[]): CacheChange[] {
    const changes: CacheChange[] = [];
    for (const ev of events) {
      if (!ev || typeof ev !== 'object' || typeof ev.ref !== 'string') continue;
      const cls = wireClassOf(String(ev.class ?? ''));
      if (!cls || !this.tables.has(cls)) continue;
      const t = this.table(cls);
      const before = t.get(ev.ref);
      if (ev.operation === 'del') {
        if (before) t.delete(ev.ref);
        changes.push({ cls, op: 'del', ref: ev.ref, before, after: undefined });
      } else if (ev.snapshot && typeof ev.snapshot === 'object') {
        t.set(ev.ref, ev.snapshot as XRecord);
        changes.push({ cls, op: before ? 'mod' : 'add', ref: ev.ref, before, after: ev.snapshot as XRecord });
      }
    }
    return changes;
  }

  /** Takes a token first (event.inject on the pool), then reads every class, so no change between
   * the read and the first event.from is lost. Returns the token. */
  async loadAll(client: XapiClient): Promise<string> {
    const pools = await client.call<Record<string, XRecord>>('pool.get_all_records');
    const poolRef = Object.keys(pools)[0];
    let token = '';
    if (poolRef) token = await client.call<string>('event.inject', 'pool', poolRef);
    for (const cls of this.classes) {
      this.replaceAll(cls, cls === 'pool' && !poolRef ? pools : await client.call<Record<string, XRecord>>(`${cls}.get_all_records`));
    }
    return token;
  }

  get pool(): [string, XRecord] | undefined {
    return this.all('pool')[0];
  }
}

/** Real guests only: templates, snapshots and control domains are not VMs. */
export function isGuestVm(vm: XRecord | undefined): boolean {
  return !!vm && vm.is_a_template !== true && vm.is_a_snapshot !== true && vm.is_control_domain !== true;
}

/** XAPI ints are numbers over JSON-RPC and decimal strings over XML-RPC: accept both. */
export function xint(v: unknown, fallback = -1): number {
  const n = typeof v === 'number' ? v : typeof v === 'string' && /^-?\d+$/.test(v) ? Number(v) : NaN;
  return Number.isFinite(n) ? n : fallback;
}

/** configure_ipv4(self,"None","","") stores [""]: drop empty strings from address lists. */
export function xlist(v: unknown): string[] {
  return Array.isArray(v) ? v.filter((x): x is string => typeof x === 'string' && x !== '') : [];
}

import type { Command } from 'commander';
import { invalid } from '../../core/model/errors.js';
import type { AuditEvent } from '../../core/model/types.js';
import { listEvents } from '../../core/service/views.js';
import { runAction, table } from '../context.js';

export { parseSince, relatedTo } from '../../core/service/views.js';

// Bookkeeping fields that change on every write and say nothing about what changed.
const NOISE = new Set(['updatedAt', 'createdAt', 'uuid']);

function show(v: unknown): string {
  if (v === null || v === undefined || v === '') return '-';
  if (Array.isArray(v)) return `[${v.map(show).join(', ')}]`;
  if (typeof v === 'object') return `{${Object.entries(v as Record<string, unknown>).map(([k, x]) => `${k}: ${show(x)}`).join(', ')}}`;
  return String(v);
}

export interface FieldChange {
  field: string;
  before: unknown;
  after: unknown;
}

/** The fields an event changed, one level deep into objects (extra.libvirtName ...). */
export function fieldChanges(before: unknown, after: unknown, prefix = ''): FieldChange[] {
  const obj = (v: unknown) => (v && typeof v === 'object' && !Array.isArray(v) ? (v as Record<string, unknown>) : undefined);
  const b = obj(before), a = obj(after);
  if (!b || !a) return JSON.stringify(before) === JSON.stringify(after) ? [] : [{ field: prefix || 'value', before, after }];
  const keys = [...new Set([...Object.keys(b), ...Object.keys(a)])].filter((k) => !NOISE.has(k));
  return keys.flatMap((k) => {
    if (JSON.stringify(b[k]) === JSON.stringify(a[k])) return [];
    const name = prefix ? `${prefix}.${k}` : k;
    if (!prefix && obj(b[k]) && obj(a[k])) return fieldChanges(b[k], a[k], name);
    return [{ field: name, before: b[k], after: a[k] }];
  });
}

/** One line a human reads: `locking: locked -> unlocked`, or what was created / removed. */
export function describeChange(e: Pick<AuditEvent, 'before' | 'after'>): string {
  const has = (v: unknown) => v !== null && v !== undefined;
  if (has(e.before) && has(e.after)) {
    const ch = fieldChanges(e.before, e.after);
    return ch.length ? ch.map((c) => `${c.field}: ${show(c.before)} -> ${show(c.after)}`).join('; ') : 'no change';
  }
  const v = has(e.after) ? e.after : e.before;
  if (!has(v)) return '';
  const o = v && typeof v === 'object' && !Array.isArray(v) ? (v as Record<string, unknown>) : undefined;
  if (!o) return show(v);
  // the fields that are set; ids of other records are left out (the OBJECT column names them)
  return Object.entries(o).filter(([k, x]) => !NOISE.has(k) && !/Uuid$/.test(k) && x !== null && x !== '' && !(Array.isArray(x) && !x.length) && !(typeof x === 'object' && !Array.isArray(x) && !Object.keys(x as object).length)).map(([k, x]) => `${k}=${show(x)}`).join(' ');
}

export function registerEventCommands(program: Command): void {
  program.command('events').description('the audit log: who changed what, before and after')
    .option('--since <time>', 'only events at or after this time (ISO 8601 or 30m, 2h, 7d)')
    .option('--object <name>', 'only events about this object (name or UUID)')
    .option('--limit <n>', 'at most this many events')
    .action(runAction(async (ctx, o: { since?: string; object?: string; limit?: string }) => {
      let limit: number | undefined;
      if (o.limit !== undefined) {
        limit = Number(o.limit);
        if (!Number.isInteger(limit) || limit < 1) throw invalid('limit', `'${o.limit}' is not a positive integer`);
      }
      let events: AuditEvent[];
      if (ctx.remote) {
        events = [];
        let after: number | undefined;
        for (;;) {
          const page = await ctx.remote.call<{ items: AuditEvent[]; nextCursor: string | null }>('GET', '/events', { query: { since: o.since, object: o.object, after, limit: 1000 } });
          events.push(...page.items);
          if (!page.nextCursor) break;
          after = Number(page.nextCursor);
        }
        if (limit !== undefined) events = events.slice(-limit);
      } else events = await listEvents(await ctx.store(), { since: o.since, object: o.object, limit });
      return {
        // the records whole, plus the changed fields for a reader that wants only those
        json: events.map((e) => ({ ...e, changes: e.before && e.after ? fieldChanges(e.before, e.after) : [] })),
        text: events.length ? table(['TIME', 'ACTOR', 'ACTION', 'KIND', 'OBJECT', 'CHANGE'], events.map((e) => [e.time, e.actor, e.action, e.objectKind, e.objectName ?? e.objectUuid, describeChange(e)])) : 'no events',
      };
    }));
}

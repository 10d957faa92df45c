// The WHERE clause of listEvents, shared by both backends (store.ts EventQuery): each backend says
// how it writes a parameter, a JSON field of a column, and the lower bound `since` puts on ids.
import type { EventQuery } from './store.js';

export interface EventSqlDialect {
  /** Adds a parameter, returns its placeholder. */
  param(v: unknown): string;
  /** A JSON document column's top-level field as text (NULL when absent or JSON null). */
  field(column: 'before' | 'after', key: string): string;
  /** The condition `since` makes (SQLite: an id bound found by binary search; PostgreSQL: time). */
  since(since: string): string;
}

/** A field of the event's object: the after document's, else the before's (views.ts field()). */
function eventField(d: EventSqlDialect, key: string): string {
  return `coalesce(${d.field('after', key)}, ${d.field('before', key)})`;
}

export function eventWhere(q: EventQuery, d: EventSqlDialect): string {
  const where: string[] = [];
  const range: string[] = [];
  if (q.since) range.push(d.since(q.since));
  if (q.afterId !== undefined) range.push(`id > ${d.param(q.afterId)}`);
  where.push(...range);
  const about: string[] = [];
  if (q.object) {
    const p = d.param(q.object);
    about.push(`object_uuid = ${p} OR object_name = ${p}`);
  }
  if (q.related) {
    const u = d.param(q.related.uuid);
    about.push(`object_uuid = ${u}`);
    if (q.related.kind === 'network') about.push(`${eventField(d, 'networkUuid')} = ${u}`);
    if (q.related.kind === 'pool') about.push(`(object_kind = 'assignment' AND ${eventField(d, 'poolUuid')} = ${u})`);
    if (q.related.kind === 'vm') {
      // its VIFs: those the events in the range name with this VM
      const vifs = `SELECT object_uuid FROM events WHERE object_kind = 'vif' AND object_uuid IS NOT NULL AND ${eventField(d, 'vmUuid')} = ${u}${range.length ? ' AND ' + range.join(' AND ') : ''}`;
      about.push(`(object_kind = 'vif' AND object_uuid IN (${vifs}))`, `(object_kind = 'assignment' AND ${eventField(d, 'vifUuid')} IN (${vifs}))`);
    }
  }
  if (about.length) where.push(`(${about.join(' OR ')})`);
  if (q.beforeId !== undefined) where.push(`id < ${d.param(q.beforeId)}`);
  if (q.actor !== undefined) where.push(`actor = ${d.param(q.actor)}`);
  return where.length ? `WHERE ${where.join(' AND ')}` : '';
}

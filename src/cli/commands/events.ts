import type { Command } from 'commander';
import { invalid } from '../../model/errors.js';
import { findNetwork, findVm } from '../../service/resolve.js';
import { runAction, table } from '../context.js';

/** "2026-11-23T10:00:00Z", "2026-11-23", or relative: "30m", "2h", "7d". */
export function parseSince(text: string, nowMs = Date.now()): string {
  const rel = /^(\d+)\s*([smhd])$/.exec(text.trim());
  if (rel) {
    const mult = { s: 1, m: 60, h: 3600, d: 86400 }[rel[2] as 's' | 'm' | 'h' | 'd'];
    return new Date(nowMs - Number(rel[1]) * mult * 1000).toISOString();
  }
  const t = Date.parse(text);
  if (Number.isNaN(t)) throw invalid('since', `'${text}' is not a time (ISO 8601, or relative like 30m, 2h, 7d)`);
  return new Date(t).toISOString();
}

function brief(v: unknown): string {
  if (v === null || v === undefined) return '';
  const s = JSON.stringify(v);
  return s.length > 80 ? s.slice(0, 77) + '...' : s;
}

export function registerEventCommands(program: Command): void {
  program.command('events').description('the audit log: who changed what, before and after')
    .option('--since <time>', 'only events at or after this time (ISO 8601 or 30m, 2h, 7d)')
    .option('--object <name>', 'only events about this object (name or UUID)')
    .option('--limit <n>', 'at most this many events')
    .action(runAction(async (ctx, o: { since?: string; object?: string; limit?: string }) => {
      const store = await ctx.store();
      const since = o.since ? parseSince(o.since) : undefined;
      let events = await store.listEvents({ since, object: o.object });
      if (o.object) {
        // A renamed object is still found by its current name: match its UUID too.
        const obj = (await findNetwork(store, o.object)) ?? (await findVm(store, o.object)) ?? (await store.findPoolByName(o.object));
        if (obj) {
          const extra = await store.listEvents({ since, object: obj.uuid });
          const ids = new Set(events.map((e) => e.id));
          events = [...events, ...extra.filter((e) => !ids.has(e.id))].sort((a, b) => a.id - b.id);
        }
      }
      if (o.limit) events = events.slice(-Number(o.limit));
      return {
        json: events,
        text: events.length ? table(['TIME', 'ACTOR', 'ACTION', 'KIND', 'OBJECT', 'CHANGE'], events.map((e) => [e.time, e.actor, e.action, e.objectKind, e.objectName ?? e.objectUuid, e.action === 'delete' || e.action === 'release' ? brief(e.before) : brief(e.after)])) : 'no events',
      };
    }));
}

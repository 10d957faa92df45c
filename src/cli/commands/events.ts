import type { Command } from 'commander';
import { invalid } from '../../core/model/errors.js';
import { listEvents } from '../../core/service/views.js';
import { runAction, table } from '../context.js';

export { parseSince, relatedTo } from '../../core/service/views.js';

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
      let limit: number | undefined;
      if (o.limit !== undefined) {
        limit = Number(o.limit);
        if (!Number.isInteger(limit) || limit < 1) throw invalid('limit', `'${o.limit}' is not a positive integer`);
      }
      const events = await listEvents(await ctx.store(), { since: o.since, object: o.object, limit });
      return {
        json: events,
        text: events.length ? table(['TIME', 'ACTOR', 'ACTION', 'KIND', 'OBJECT', 'CHANGE'], events.map((e) => [e.time, e.actor, e.action, e.objectKind, e.objectName ?? e.objectUuid, e.action === 'delete' || e.action === 'release' ? brief(e.before) : brief(e.after)])) : 'no events',
      };
    }));
}

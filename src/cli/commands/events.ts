import type { Command } from 'commander';
import { invalid } from '../../core/model/errors.js';
import type { AuditEvent } from '../../core/model/types.js';
import { findNetwork, findVm } from '../../core/service/resolve.js';
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

type Ev = AuditEvent;

function field(e: Ev, key: string): unknown {
  const pick = (v: unknown) => (v && typeof v === 'object' ? (v as Record<string, unknown>)[key] : undefined);
  return pick(e.after) ?? pick(e.before);
}

/** Events about an object and what hangs off it: a VM's VIFs and their addresses; a network's pools,
 * VIFs and addresses; a pool's addresses. */
export function relatedTo(all: Ev[], obj: { kind: 'vm' | 'network' | 'pool'; uuid: string; name: string }): Ev[] {
  const vifUuids = new Set<string>();
  if (obj.kind === 'vm') {
    for (const e of all) if (e.objectKind === 'vif' && (field(e, 'vmUuid') === obj.uuid) && e.objectUuid) vifUuids.add(e.objectUuid);
  }
  return all.filter((e) => {
    if (e.objectUuid === obj.uuid) return true;
    if (obj.kind === 'vm') return (e.objectKind === 'vif' && !!e.objectUuid && vifUuids.has(e.objectUuid)) || (e.objectKind === 'assignment' && vifUuids.has(field(e, 'vifUuid') as string));
    if (obj.kind === 'network') return field(e, 'networkUuid') === obj.uuid;
    return e.objectKind === 'assignment' && field(e, 'poolUuid') === obj.uuid;
  });
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
        // A renamed object is still found by its current name (its UUID), and a VM's or network's
        // history includes what happened to its VIFs, pools and addresses.
        const vm = await findVm(store, o.object);
        const net = vm ? undefined : await findNetwork(store, o.object);
        const pool = vm || net ? undefined : await store.findPoolByName(o.object);
        const obj = vm ?? net ?? pool;
        if (obj) {
          const all = await store.listEvents({ since });
          const related = relatedTo(all, vm ? { kind: 'vm', uuid: vm.uuid, name: vm.name } : net ? { kind: 'network', uuid: net.uuid, name: net.name } : { kind: 'pool', uuid: pool!.uuid, name: pool!.name });
          const ids = new Set(events.map((e) => e.id));
          events = [...events, ...related.filter((e) => !ids.has(e.id))].sort((a, b) => a.id - b.id);
        }
      }
      if (o.limit !== undefined) {
        const n = Number(o.limit);
        if (!Number.isInteger(n) || n < 1) throw invalid('limit', `'${o.limit}' is not a positive integer`);
        events = events.slice(-n);
      }
      return {
        json: events,
        text: events.length ? table(['TIME', 'ACTOR', 'ACTION', 'KIND', 'OBJECT', 'CHANGE'], events.map((e) => [e.time, e.actor, e.action, e.objectKind, e.objectName ?? e.objectUuid, e.action === 'delete' || e.action === 'release' ? brief(e.before) : brief(e.after)])) : 'no events',
      };
    }));
}

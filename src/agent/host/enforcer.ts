// The host enforcer: this machine's nftables, addresses, routes (see apply.ts).
import type { Enforcer } from '../../core/enforcer.js';
import { applyHost, hostStatus, planHost, teardownHost } from './apply.js';

/** serve re-verifies every few seconds: repeat a warning only when it is new or came back. */
let lastWarnings = new Set<string>();

export const hostEnforcer: Enforcer = {
  name: 'host',
  async plan(ctx) {
    const run = await planHost(ctx.store, { actor: ctx.actor });
    for (const w of run.warnings) ctx.log(`warning: ${w}`);
    return run.changes;
  },
  apply(ctx) {
    const serving = ctx.actor === 'serve';
    const seen = new Set<string>();
    const log = (m: string) => {
      if (!serving || !m.startsWith('warning: ')) return ctx.log(m);
      seen.add(m);
      if (!lastWarnings.has(m)) ctx.log(m);
    };
    return applyHost(ctx.store, {
      actor: ctx.actor,
      dryRun: ctx.dryRun,
      force: ctx.force,
      log,
      auditAction: serving ? 'host.repair' : 'host.apply',
      quick: ctx.reason === 'periodic',
    }).finally(() => {
      if (serving) lastWarnings = seen;
    });
  },
  status(ctx) {
    return hostStatus(ctx.store);
  },
  teardown(ctx) {
    return teardownHost(ctx.store, { actor: ctx.actor, dryRun: ctx.dryRun, log: ctx.log });
  },
};

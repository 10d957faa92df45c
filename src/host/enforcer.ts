// The host enforcer: this machine's nftables, addresses, routes (see apply.ts).
import type { Enforcer } from '../enforce/enforcer.js';
import { applyHost, hostStatus, planHost, teardownHost } from './apply.js';

export const hostEnforcer: Enforcer = {
  name: 'host',
  async plan(ctx) {
    const run = await planHost(ctx.store, { actor: ctx.actor, log: ctx.log });
    for (const w of run.warnings) ctx.log(`warning: ${w}`);
    return run.changes;
  },
  apply(ctx) {
    return applyHost(ctx.store, { actor: ctx.actor, dryRun: ctx.dryRun, log: ctx.log, auditAction: ctx.actor === 'serve' ? 'host.repair' : 'host.apply', quick: ctx.reason === 'periodic' });
  },
  status(ctx) {
    return hostStatus(ctx.store);
  },
  teardown(ctx) {
    return teardownHost(ctx.store, { actor: ctx.actor, dryRun: ctx.dryRun, log: ctx.log });
  },
};

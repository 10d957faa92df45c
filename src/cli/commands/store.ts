// The store itself: `init` creates it (enforcement and read-only commands never do), `check`
// verifies it.
import { existsSync, statSync } from 'node:fs';
import type { Command } from 'commander';
import { runAction } from '../context.js';

export function registerStoreCommands(program: Command): void {
  program
    .command('init')
    .description('create the store (with its identity) at --db / $IPVISOR_DB / the default path; an existing one is left as it is')
    .action(
      runAction(async (ctx) => {
        const { defaultStorePath } = await import('../../core/store/open.js');
        const path = ctx.dbPath ?? defaultStorePath(ctx.io.env);
        const existed = existsSync(path) && statSync(path).size > 0;
        const store = await ctx.store();
        const id = await store.identity();
        return {
          json: { path: id.location, identity: id.id, created: !existed },
          text: `${existed ? 'store exists' : 'created store'}: ${id.location} (identity ${id.id})`,
        };
      }),
    );
}

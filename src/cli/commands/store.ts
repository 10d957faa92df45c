// The store itself: `init` creates it (enforcement and read-only commands never do), `check`
// verifies it, `store copy` moves it between backends (SQLite <-> PostgreSQL) or makes a backup.
import { existsSync, statSync } from 'node:fs';
import type { Command } from 'commander';
import { IpvisorError } from '../../core/model/errors.js';
import { ensureCommand, runAction } from '../context.js';

export function registerStoreCommands(program: Command): void {
  program
    .command('init')
    .description('create the store (with its identity) at --store / --db / $IPVISOR_STORE / $IPVISOR_DB / the default path; an existing one is left as it is')
    .action(
      runAction(async (ctx) => {
        const { defaultStorePath, openStore, parseStoreUrl } = await import('../../core/store/open.js');
        const where = parseStoreUrl(ctx.dbPath ?? defaultStorePath(ctx.io.env));
        let existed: boolean;
        if (where.kind === 'sqlite') existed = existsSync(where.path) && statSync(where.path).size > 0;
        else {
          // a database with ipvisor's schema already, or not yet
          existed = await openStore(where.url).then(
            async (s) => (await s.close(), true),
            (err) => {
              if (err instanceof IpvisorError && err.code === 'STORE_MISSING') return false;
              throw err;
            },
          );
        }
        const store = await ctx.store();
        const id = await store.identity();
        return {
          json: { path: id.location, identity: id.id, created: !existed },
          text: `${existed ? 'store exists' : 'created store'}: ${id.location} (identity ${id.id})`,
        };
      }),
    );

  const store = ensureCommand(program, 'store', 'the store as a whole (copy between SQLite and PostgreSQL, backup, restore)');
  store
    .command('copy')
    .description('copy every object, the audit log, the revisions and the identity from one store to another (creates the target; a non-empty target only with --force, which replaces its contents)')
    .requiredOption('--from <url>', 'source store: sqlite:PATH, a path, or postgresql://...')
    .requiredOption('--to <url>', 'target store: sqlite:PATH, a path, or postgresql://...')
    .option('--force', 'replace the contents of a non-empty target')
    .action(
      runAction(async (ctx, o: { from: string; to: string; force?: boolean }) => {
        const { openStore, parseStoreUrl } = await import('../../core/store/open.js');
        const { copyStore } = await import('../../core/store/copy.js');
        const from = parseStoreUrl(o.from);
        const to = parseStoreUrl(o.to);
        const same = from.kind === 'sqlite' && to.kind === 'sqlite' ? from.path === to.path : from.kind === to.kind && (from as { url: string }).url === (to as { url: string }).url;
        if (same) throw new IpvisorError('VALIDATION', 'to: the same store as --from', { field: 'to' });
        const src = await openStore(o.from, { create: false });
        try {
          const dst = await openStore(o.to, { create: true });
          try {
            const r = await copyStore(src, dst, { force: o.force });
            const total = Object.values(r.rows).reduce((a, b) => a + b, 0);
            return {
              json: r,
              text: `copied ${r.from} to ${r.to}: ${total} rows (${r.rows.networks} networks, ${r.rows.vms} VMs, ${r.rows.assignments} assignments, ${r.rows.events} events), identity ${r.identity}, revision ${r.revision}`,
            };
          } finally {
            await dst.close();
          }
        } finally {
          await src.close();
        }
      }),
    );

  program
    .command('check')
    .description('verify the store: integrity, every pool\'s free-space index against its assignments, exclusions and holds, no orphan rows (exit 0 healthy, 1 damage found)')
    .option('--repair', 'rebuild the free-space index of the pools where it is wrong')
    .action(
      runAction(async (ctx, opts: { repair?: boolean }) => {
        const { checkStore } = await import('../../core/service/check.js');
        const report = await checkStore(await ctx.store(), { repair: !!opts.repair });
        const lines = report.problems.map((p) => `${p.repaired ? 'repaired' : 'damage'}: ${p.kind}: ${p.message}`);
        lines.push(report.healthy ? (report.problems.length ? `store repaired (${report.pools} pool(s) checked)` : `store healthy (${report.pools} pool(s) checked)`) : `damage found: ${report.problems.filter((p) => !p.repaired).length} problem(s)`);
        return { json: report, text: lines.join('\n'), exitCode: report.healthy ? 0 : 1 };
      }),
    );
}

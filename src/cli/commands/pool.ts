import type { Command } from 'commander';
import { createPool, deletePool, setPool } from '../../core/service/pools.js';
import { listPools, showPool, type PoolView } from '../../core/service/views.js';
import type { Pool } from '../../core/model/types.js';
import { collect, keyValues, runAction, table } from '../context.js';

export function registerPoolCommands(program: Command): void {
  const pool = program.command('pool').description('address pools: ranges and CIDRs with exclusions, per network');

  pool.command('create <name>').description('create a pool')
    .requiredOption('--network <network>', 'network the pool belongs to')
    .option('--cidr <cidr>', 'a CIDR of addresses; repeatable', collect)
    .option('--range <first-last>', 'an inclusive range FIRST-LAST; repeatable', collect)
    .option('--exclude <ip|cidr>', 'never hand out this address or CIDR; repeatable', collect)
    .option('--purpose <purpose>', 'vif (addresses on the bridge subnet) | routed (addresses/prefixes routed to VMs)', 'vif')
    .option('--hold <seconds>', 'keep released addresses unavailable this long (DHCP lease time)', '0')
    .action(runAction(async (ctx, name: string, o: { network: string; cidr?: string[]; range?: string[]; exclude?: string[]; purpose: string; hold: string }) => {
      const input = { name, network: o.network, cidrs: o.cidr, ranges: o.range, exclude: o.exclude, purpose: o.purpose, hold: o.hold };
      const p: Pool = ctx.remote ? await ctx.remote.call('POST', '/pools', { body: input }) : await createPool(await ctx.store(), input, ctx.actor);
      return { json: p, text: `created pool ${p.name} (${p.uuid})` };
    }));

  pool.command('list').description('list pools with usage').option('--network <network>', 'only this network').action(
    runAction(async (ctx, o: { network?: string }) => {
      return (async () => {
        const rows = ctx.remote ? await ctx.remote.all<PoolView>('/pools', { network: o.network }) : await (await ctx.store()).transaction((tx) => listPools(tx, { network: o.network }));
        return {
          json: rows,
          text: rows.length ? table(['NAME', 'NETWORK', 'FAMILY', 'PURPOSE', 'RANGES', 'TOTAL', 'USED', 'HELD', 'FREE'], rows.map((r) => [r.name, r.network, `v${r.family}`, r.purpose, r.entries.map((e) => e.text).join(','), r.usage.total, (BigInt(r.usage.assigned) + BigInt(r.usage.routed) + BigInt(r.usage.reserved)).toString(), r.usage.held, r.usage.free])) : 'no pools',
        };
      })();
    }),
  );

  pool.command('show <pool>').description('show a pool and its usage').action(
    runAction(async (ctx, ref: string) => {
      return (async () => {
        const shown: Awaited<ReturnType<typeof showPool>> = ctx.remote ? await ctx.remote.call('GET', `/pools/${encodeURIComponent(ref)}`) : await (await ctx.store()).transaction((tx) => showPool(tx, ref));
        const { usage, ...p } = shown;
        const n = { name: shown.network };
        return {
          json: shown,
          text: keyValues([
            ['name', p.name], ['uuid', p.uuid], ['network', n.name], ['family', `IPv${p.family}`], ['purpose', p.purpose],
            ['ranges', p.entries.map((e) => e.text)], ['exclusions', p.exclusions], ['hold', `${p.holdSeconds}s`],
            ['total', usage.total], ['assigned', usage.assigned], ['routed', usage.routed], ['reserved', usage.reserved], ['held', usage.held], ['free', usage.free],
          ]),
        };
      })();
    }),
  );

  pool.command('set <pool>').description('change a pool')
    .option('--name <name>', 'rename')
    .option('--add-cidr <cidr>', 'add a CIDR; repeatable', collect)
    .option('--add-range <first-last>', 'add a range; repeatable', collect)
    .option('--remove <cidr|range>', 'remove a CIDR or range (must hold no assignment); repeatable', collect)
    .option('--exclude <ip|cidr>', 'add an exclusion; repeatable', collect)
    .option('--include <ip|cidr>', 'remove an exclusion; repeatable', collect)
    .option('--hold <seconds>', 'hold time for released addresses')
    .action(runAction(async (ctx, ref: string, o: { name?: string; addCidr?: string[]; addRange?: string[]; remove?: string[]; exclude?: string[]; include?: string[]; hold?: string }) => {
      const ch = { name: o.name, addCidrs: o.addCidr, addRanges: o.addRange, removeEntries: o.remove, exclude: o.exclude, include: o.include, hold: o.hold };
      const p: Pool = ctx.remote ? await ctx.remote.call('PATCH', `/pools/${encodeURIComponent(ref)}`, { body: ch }) : await setPool(await ctx.store(), ref, ch, ctx.actor);
      return { json: p, text: `updated pool ${p.name}` };
    }));

  pool.command('delete <pool>').description('delete a pool (--force: release its assignments)').option('--force', 'delete even when in use').action(
    runAction(async (ctx, ref: string, o: { force?: boolean }) => {
      const p: Pool = ctx.remote ? await ctx.remote.call('DELETE', `/pools/${encodeURIComponent(ref)}`, { query: { force: o.force } }) : await deletePool(await ctx.store(), ref, { force: o.force }, ctx.actor);
      return { json: p, text: `deleted pool ${p.name}` };
    }),
  );
}

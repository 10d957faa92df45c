import type { Command } from 'commander';
import type { Assignment, Network } from '../../core/model/types.js';
import type { Store } from '../../core/store/store.js';
import { allocate, release, reserve } from '../../core/service/ip.js';
import { parseCidr, formatAddress } from '../../core/ipam/addr.js';
import { describeAddress, type AddressInfo } from '../../core/service/address-info.js';
import { driverFor } from '../../drivers/index.js';
import { type CommandContext, keyValues, runAction, table } from '../context.js';
import { assignmentViews, formatAssignment, listAssignments, type AssignmentView } from '../../core/service/views.js';

/** Lets the network's driver follow an address change (libvirt DHCP reservations); a failure there
 * does not undo the allocation (the store is the truth and serve reconciles) but is reported. */
async function notifyDriver(ctx: CommandContext, store: Store, networkUuid: string): Promise<void> {
  const network = (await store.getNetwork(networkUuid)) as Network | undefined;
  if (!network) return;
  const hooks = (await driverFor(network.driver)).managedNetworks;
  if (!hooks?.assignmentsChanged) return;
  try {
    await hooks.assignmentsChanged(store, network, ctx.actor);
  } catch (err) {
    ctx.stderr(`ipvisor: warning: ${network.driver} driver could not follow the change on network '${network.name}': ${(err as Error).message}`);
  }
}

export function registerIpCommands(program: Command): void {
  const ip = program.command('ip').description('allocate, reserve and release addresses and routed prefixes');

  ip.command('allocate').description('allocate an address (or a routed prefix) to a VIF')
    .requiredOption('--vif <vm:device>', 'the VIF')
    .option('--pool <pool>', 'pool to allocate from (default: the only pool of the family on the VIF\'s network)')
    .option('--family <4|6>', 'address family (required on dual-stack networks without --pool/--address)')
    .option('--address <ip>', 'this specific address (or prefix ADDR/LEN)')
    .option('--prefix-length <n>', 'allocate a routed prefix of this length from a routed pool')
    .option('--request-id <key>', 'idempotency key: the same key returns the same assignment')
    .option('--note <text>', 'free text')
    .action(runAction(async (ctx, o: { vif: string; pool?: string; family?: string; address?: string; prefixLength?: string; requestId?: string; note?: string }) => {
      const input = { vif: o.vif, pool: o.pool, family: o.family, address: o.address, prefixLength: o.prefixLength, requestId: o.requestId, note: o.note };
      let v: AssignmentView;
      let r: { created: boolean };
      if (ctx.remote) {
        // the server (and the agents) let the drivers follow
        const got = await ctx.remote.call<AssignmentView & { created: boolean }>('POST', '/addresses', { body: input });
        const { created, ...view } = got;
        v = view;
        r = { created };
      } else {
        const store = await ctx.store();
        const res = await allocate(store, input, ctx.actor);
        if (res.created) await notifyDriver(ctx, store, res.assignment.networkUuid);
        [v] = await store.transaction((tx) => assignmentViews(tx, [res.assignment]));
        r = res;
      }
      return { json: { ...v, created: r.created }, text: `${v.cidr} (${v.kind}) -> ${v.vif} from pool ${v.pool}${r.created ? '' : ' (existing, same request id)'}` };
    }));

  ip.command('reserve <address>').description('hold an address or prefix that belongs to no VIF')
    .requiredOption('--pool <pool>', 'pool of the address')
    .option('--note <text>', 'why it is reserved')
    .action(runAction(async (ctx, address: string, o: { pool: string; note?: string }) => {
      let v: AssignmentView;
      if (ctx.remote) v = await ctx.remote.call('POST', '/addresses/reservations', { body: { address, pool: o.pool, note: o.note } });
      else {
        const store = await ctx.store();
        const a = await reserve(store, { address, pool: o.pool, note: o.note }, ctx.actor);
        [v] = await store.transaction((tx) => assignmentViews(tx, [a]));
      }
      return { json: v, text: `reserved ${v.cidr} in pool ${v.pool}` };
    }));

  ip.command('release <address>').description('release an address, prefix or reservation')
    .option('--network <network>', 'the network, when the address exists on several')
    .action(runAction(async (ctx, address: string, o: { network?: string }) => {
      let a: Assignment;
      if (ctx.remote) a = await ctx.remote.call('DELETE', `/addresses/${encodeURIComponent(address)}`, { query: { network: o.network } });
      else {
        const store = await ctx.store();
        a = await release(store, { address, network: o.network }, ctx.actor);
        await notifyDriver(ctx, store, a.networkUuid);
      }
      return { json: a, text: `released ${formatAssignment(a)}` };
    }));

  ip.command('list').description('list assignments and reservations')
    .option('--network <network>', 'only this network')
    .option('--vm <vm>', 'only this VM')
    .option('--pool <pool>', 'only this pool')
    .action(runAction(async (ctx, o: { network?: string; vm?: string; pool?: string }) => {
      const filter = { network: o.network, vm: o.vm, pool: o.pool };
      const v = ctx.remote ? await ctx.remote.all<AssignmentView>('/addresses', filter) : await (await ctx.store()).transaction((tx) => listAssignments(tx, filter));
      return { json: v, text: v.length ? table(['ADDRESS', 'KIND', 'VIF', 'NETWORK', 'POOL', 'NOTE'], v.map((a) => [a.cidr, a.kind, a.vif, a.network, a.pool, a.note])) : 'no assignments' };
    }));

  ip.command('show <address>').description('show who holds an address, or why it is not available').action(runAction(async (ctx, address: string) => {
    const c = parseCidr(address, 'address', { allowBare: true });
    const text = formatAddress(c.family, c.address);
    const info: AddressInfo = ctx.remote ? await ctx.remote.call('GET', `/addresses/${encodeURIComponent(text)}`) : await (await ctx.store()).transaction((tx) => describeAddress(tx, text));
    const where = [info.pool && `pool ${info.pool}`, info.network && `network ${info.network}`].filter(Boolean).join(', ');
    const head = `${info.address}: ${info.state}${info.until ? ` until ${info.until}` : ''}${where ? ` (${where})` : ''}`;
    const details = keyValues(([['vif', info.vif], ['kind', info.kind], ['cidr', info.cidr], ['note', info.note], ['since', info.since], ['request id', info.requestId], ['reason', info.reason]] as Array<[string, unknown]>).filter(([, v]) => v !== null));
    return { json: info, text: details ? `${head}\n${details}` : head };
  }));
}

import type { Command } from 'commander';
import { IpvisorError } from '../../core/model/errors.js';
import type { Assignment, Network } from '../../core/model/types.js';
import type { Store, StoreTx } from '../../core/store/store.js';
import { parseCidr, formatAddress } from '../../core/ipam/addr.js';
import { entryIntervals, exclusionIntervals, networkReservedIntervals } from '../../core/ipam/pool-space.js';
import { allocate, release, reserve } from '../../core/service/ip.js';
import { networkRef, poolRef, vmRef } from '../../core/service/resolve.js';
import { driverFor } from '../../drivers/index.js';
import { type CommandContext, keyValues, runAction, table } from '../context.js';
import { formatAssignment } from './vm.js';

interface AssignmentView extends Assignment {
  cidr: string;
  network: string;
  pool: string;
  vif: string | null;
}

async function views(tx: StoreTx, list: Assignment[]): Promise<AssignmentView[]> {
  const nets = new Map((await tx.listNetworks()).map((n) => [n.uuid, n.name]));
  const pools = new Map((await tx.listPools()).map((p) => [p.uuid, p.name]));
  const vifs = new Map((await tx.listVifs()).map((v) => [v.uuid, v]));
  const vms = new Map((await tx.listVms()).map((v) => [v.uuid, v.name]));
  return list.map((a) => {
    const vif = a.vifUuid ? vifs.get(a.vifUuid) : undefined;
    return { ...a, cidr: formatAssignment(a), network: nets.get(a.networkUuid) ?? a.networkUuid, pool: pools.get(a.poolUuid) ?? a.poolUuid, vif: vif ? `${vms.get(vif.vmUuid)}:${vif.device}` : null };
  });
}

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
      const store = await ctx.store();
      const r = await allocate(store, { vif: o.vif, pool: o.pool, family: o.family, address: o.address, prefixLength: o.prefixLength, requestId: o.requestId, note: o.note }, ctx.actor);
      if (r.created) await notifyDriver(ctx, store, r.assignment.networkUuid);
      const [v] = await store.transaction((tx) => views(tx, [r.assignment]));
      return { json: { ...v, created: r.created }, text: `${v.cidr} (${v.kind}) -> ${v.vif} from pool ${v.pool}${r.created ? '' : ' (existing, same request id)'}` };
    }));

  ip.command('reserve <address>').description('hold an address or prefix that belongs to no VIF')
    .requiredOption('--pool <pool>', 'pool of the address')
    .option('--note <text>', 'why it is reserved')
    .action(runAction(async (ctx, address: string, o: { pool: string; note?: string }) => {
      const store = await ctx.store();
      const a = await reserve(store, { address, pool: o.pool, note: o.note }, ctx.actor);
      const [v] = await store.transaction((tx) => views(tx, [a]));
      return { json: v, text: `reserved ${v.cidr} in pool ${v.pool}` };
    }));

  ip.command('release <address>').description('release an address, prefix or reservation')
    .option('--network <network>', 'the network, when the address exists on several')
    .action(runAction(async (ctx, address: string, o: { network?: string }) => {
      const store = await ctx.store();
      const a = await release(store, { address, network: o.network }, ctx.actor);
      await notifyDriver(ctx, store, a.networkUuid);
      return { json: a, text: `released ${formatAssignment(a)}` };
    }));

  ip.command('list').description('list assignments and reservations')
    .option('--network <network>', 'only this network')
    .option('--vm <vm>', 'only this VM')
    .option('--pool <pool>', 'only this pool')
    .action(runAction(async (ctx, o: { network?: string; vm?: string; pool?: string }) => {
      const store = await ctx.store();
      return store.transaction(async (tx) => {
        let list = await tx.listAssignments({
          networkUuid: o.network ? (await networkRef(tx, o.network)).uuid : undefined,
          poolUuid: o.pool ? (await poolRef(tx, o.pool)).uuid : undefined,
        });
        if (o.vm) {
          const vm = await vmRef(tx, o.vm);
          const vifIds = new Set((await tx.listVifs(vm.uuid)).map((v) => v.uuid));
          list = list.filter((a) => a.vifUuid && vifIds.has(a.vifUuid));
        }
        const v = await views(tx, list);
        return { json: v, text: v.length ? table(['ADDRESS', 'KIND', 'VIF', 'NETWORK', 'POOL', 'NOTE'], v.map((a) => [a.cidr, a.kind, a.vif, a.network, a.pool, a.note])) : 'no assignments' };
      });
    }));

  ip.command('show <address>').description('show who holds an address, or why it is not available').action(runAction(async (ctx, address: string) => {
    const store = await ctx.store();
    return store.transaction(async (tx) => {
      const c = parseCidr(address, 'address', { allowBare: true });
      const text = formatAddress(c.family, c.address);
      // Assignments are keyed by their first address; a prefix containing the address counts too.
      const all = (await tx.listAssignments()).filter((a) => {
        if (a.family !== c.family) return false;
        const s = parseCidr(`${a.address}/${a.prefixLength}`, 'address');
        return c.address >= s.network && c.address <= s.network + (1n << BigInt((a.family === 4 ? 32 : 128) - a.prefixLength)) - 1n;
      });
      if (all.length) {
        const v = await views(tx, all);
        return { json: v, text: v.map((a) => keyValues([['address', a.cidr], ['kind', a.kind], ['vif', a.vif], ['network', a.network], ['pool', a.pool], ['note', a.note], ['since', a.createdAt], ['request id', a.requestId]])).join('\n\n') };
      }
      // Not assigned: say which pools contain it and in what state.
      const states: Array<{ pool: string; network: string; state: string }> = [];
      for (const p of await tx.listPools()) {
        if (p.family !== c.family || !entryIntervals(p).some((iv) => c.address >= iv.start && c.address <= iv.end)) continue;
        const n = (await tx.getNetwork(p.networkUuid))!;
        let state = 'free';
        if (networkReservedIntervals(n, p.family).some((iv) => c.address >= iv.start && c.address <= iv.end)) state = 'never handed out (gateway, network, broadcast or host address)';
        else if (exclusionIntervals(p).some((iv) => c.address >= iv.start && c.address <= iv.end)) state = 'excluded';
        else {
          const hold = (await tx.listHolds(p.uuid)).find((h) => c.address >= h.start && c.address <= h.end);
          if (hold) state = `held until ${hold.until}`;
        }
        states.push({ pool: p.name, network: n.name, state });
      }
      if (!states.length) throw new IpvisorError('NOT_FOUND', `address: ${text} is in no pool and not assigned`, { field: 'address' });
      return { json: states.map((s) => ({ address: text, ...s })), text: states.map((s) => `${text}: ${s.state} (pool ${s.pool}, network ${s.network})`).join('\n') };
    });
  }));
}

import type { Command } from 'commander';
import type { Network } from '../../core/model/types.js';
import { invalid } from '../../core/model/errors.js';
import { addHostAddress, createNetwork, deleteNetwork, removeHostAddress, setNetwork, type NetworkInput } from '../../core/service/networks.js';
import { showNetwork } from '../../core/service/views.js';
import { networkRef } from '../../core/service/resolve.js';
import { driverFor } from '../../drivers/index.js';
import { collect, keyValues, runAction, table } from '../context.js';

interface NetworkOpts {
  bridge?: string;
  driver?: string;
  mode?: string;
  subnet?: string[];
  ipv6?: string;
  defaultLocking?: string;
  mtu?: string;
  dns?: string[];
  route?: string[];
  uplink?: string;
  name?: string;
  clearDns?: boolean;
  clearRoutes?: boolean;
}

function addNetworkOptions(c: Command, forSet: boolean): Command {
  c.option('--bridge <name>', 'host bridge of the network')
    .option('--mode <mode>', 'nat | routed | isolated | bridged | open')
    .option('--subnet <cidr>', 'CIDR[,gateway=IP]; repeatable (set replaces the list)', collect)
    .option('--default-locking <mode>', 'unlocked | locked | disabled (for VIFs left at network_default)')
    .option('--mtu <n>', 'MTU handed to guests')
    .option('--dns <ip>', 'DNS server for guests; repeatable (set replaces the list)', collect)
    .option('--route <route>', 'static route for guests, CIDR,via=IP; repeatable (set replaces the list)', collect)
    .option('--uplink <ifname>', 'uplink interface for proxy ARP/NDP of routed addresses');
  if (forSet) {
    c.option('--name <name>', 'rename the network')
      .option('--clear-dns', 'remove all DNS servers')
      .option('--clear-routes', 'remove all static routes');
  } else {
    c.option('--driver <driver>', 'bridge | libvirt | xapi', 'bridge').option('--ipv6 <cidr>', 'libvirt managed networks: auto or a CIDR');
  }
  return c;
}

function toInput(o: NetworkOpts): NetworkInput {
  const input: NetworkInput = {};
  if (o.bridge !== undefined) input.bridge = o.bridge;
  if (o.driver !== undefined) input.driver = o.driver;
  if (o.mode !== undefined) input.mode = o.mode;
  if (o.subnet !== undefined) input.subnets = o.subnet;
  if (o.defaultLocking !== undefined) input.defaultLocking = o.defaultLocking;
  if (o.mtu !== undefined) input.mtu = o.mtu;
  if (o.dns !== undefined) input.dns = o.dns;
  if (o.clearDns) input.dns = [];
  if (o.route !== undefined) input.routes = o.route;
  if (o.clearRoutes) input.routes = [];
  if (o.uplink !== undefined) input.uplink = o.uplink;
  if (o.name !== undefined) input.name = o.name;
  return input;
}

export function networkSummary(n: Network): string[] {
  return [n.name, n.uuid, n.driver, n.mode, n.bridge ?? '-', n.subnets.map((s) => s.cidr).join(',') || '-', n.defaultLocking];
}

export function registerNetworkCommands(program: Command): void {
  const net = program.command('network').description('networks: subnets, gateways, MTU, DNS, routes, default locking');

  addNetworkOptions(net.command('create <name>').description('create a network'), false).action(
    runAction(async (ctx, name: string, o: NetworkOpts) => {
      const input = { ...toInput(o), name };
      if (ctx.remote) {
        if (o.ipv6 !== undefined || (o.subnet ?? []).includes('auto')) throw invalid(o.ipv6 !== undefined ? 'ipv6' : 'subnet', 'managed libvirt networks are created on the host: run without --server');
        const n = await ctx.remote.call<Network>('POST', '/networks', { body: input });
        return { json: n, text: `created network ${n.name} (${n.uuid})` };
      }
      const store = await ctx.store();
      let n: Network;
      const auto = (o.subnet ?? []).includes('auto') || o.ipv6 !== undefined;
      const managed = (await driverFor((input.driver ?? 'bridge') as Network['driver']).catch(() => undefined))?.managedNetworks;
      if (input.driver === 'libvirt' && managed?.createManagedNetwork) {
        n = await managed.createManagedNetwork(store, { name, bridge: o.bridge, mode: o.mode, subnets: o.subnet ?? [], ipv6: o.ipv6, defaultLocking: o.defaultLocking, mtu: o.mtu !== undefined ? Number(o.mtu) : undefined, dns: o.dns, routes: o.route }, ctx.actor);
      } else {
        if (o.ipv6 !== undefined) throw invalid('ipv6', '--ipv6 applies to managed libvirt networks (--driver libvirt); use --subnet');
        if (auto) throw invalid('subnet', "'auto' applies to managed libvirt networks (--driver libvirt)");
        n = await createNetwork(store, input, ctx.actor);
      }
      return { json: n, text: `created network ${n.name} (${n.uuid})` };
    }),
  );

  net.command('list').description('list networks').action(
    runAction(async (ctx) => {
      const list = ctx.remote ? await ctx.remote.all<Network>('/networks') : await (await ctx.store()).listNetworks();
      return { json: list, text: list.length ? table(['NAME', 'UUID', 'DRIVER', 'MODE', 'BRIDGE', 'SUBNETS', 'LOCKING'], list.map(networkSummary)) : 'no networks' };
    }),
  );

  net.command('show <network>').description('show a network with its pools and usage').action(
    runAction(async (ctx, ref: string) => {
      const show = async (): Promise<Awaited<ReturnType<typeof showNetwork>>> => ctx.remote ? ctx.remote.call('GET', `/networks/${encodeURIComponent(ref)}`) : (await ctx.store()).transaction((tx) => showNetwork(tx, ref));
      return (async () => {
        const shown = await show();
        const { pools: usage, ...n } = shown;
        const text = [
          keyValues([
            ['name', n.name], ['uuid', n.uuid], ['driver', n.driver], ['mode', n.mode], ['bridge', n.bridge],
            ['subnets', n.subnets.map((s) => (s.gateway ? `${s.cidr} gateway ${s.gateway}` : s.cidr))],
            ['default locking', n.defaultLocking], ['mtu', n.mtu], ['dns', n.dns], ['routes', n.routes.map((r) => `${r.cidr} via ${r.via}`)],
            ['uplink', n.uplink], ['host addresses', n.hostAddresses], ['vifs', n.vifCount],
          ]),
          usage.length ? '\n' + table(['POOL', 'FAMILY', 'PURPOSE', 'TOTAL', 'ASSIGNED', 'ROUTED', 'RESERVED', 'HELD', 'FREE'], usage.map((u) => [u.pool, `v${u.family}`, u.purpose, u.total, u.assigned, u.routed, u.reserved, u.held, u.free])) : '',
        ].join('\n');
        return { json: shown, text };
      })();
    }),
  );

  addNetworkOptions(net.command('set <network>').description('change a network'), true).action(
    runAction(async (ctx, ref: string, o: NetworkOpts) => {
      const n = ctx.remote ? await ctx.remote.call<Network>('PATCH', `/networks/${encodeURIComponent(ref)}`, { body: toInput(o) }) : await setNetwork(await ctx.store(), ref, toInput(o), ctx.actor);
      return { json: n, text: `updated network ${n.name}` };
    }),
  );

  net.command('delete <network>').description('delete a network (--force: also its pools, VIFs and assignments)').option('--force', 'delete even when in use').action(
    runAction(async (ctx, ref: string, o: { force?: boolean }) => {
      if (ctx.remote) {
        const deleted = await ctx.remote.call<Network>('DELETE', `/networks/${encodeURIComponent(ref)}`, { query: { force: o.force } });
        return { json: deleted, text: `deleted network ${deleted.name}` };
      }
      const store = await ctx.store();
      const n = await store.transaction((tx) => networkRef(tx, ref));
      const managed = (await driverFor(n.driver)).managedNetworks;
      const deleted = await deleteNetwork(store, ref, { force: o.force }, ctx.actor);
      if (managed?.networkDeleted) await managed.networkDeleted(store, deleted, ctx.actor);
      return { json: deleted, text: `deleted network ${deleted.name}` };
    }),
  );

  const ha = net.command('host-address').description("addresses the host itself holds on the network's bridge");
  ha.command('add <network> <address>').description('add ADDR/LEN').action(
    runAction(async (ctx, ref: string, addr: string) => {
      const list = ctx.remote ? await ctx.remote.call<string[]>('POST', `/networks/${encodeURIComponent(ref)}/host-addresses`, { body: { address: addr } }) : (await addHostAddress(await ctx.store(), ref, addr, ctx.actor)).hostAddresses;
      const n = { hostAddresses: list };
      return { json: n.hostAddresses, text: n.hostAddresses.join('\n') };
    }),
  );
  ha.command('remove <network> <address>').description('remove an address').action(
    runAction(async (ctx, ref: string, addr: string) => {
      const n = { hostAddresses: ctx.remote ? await ctx.remote.call<string[]>('DELETE', `/networks/${encodeURIComponent(ref)}/host-addresses`, { query: { address: addr } }) : (await removeHostAddress(await ctx.store(), ref, addr, ctx.actor)).hostAddresses };
      return { json: n.hostAddresses, text: n.hostAddresses.join('\n') || 'no host addresses' };
    }),
  );
  ha.command('list <network>').description('list host addresses').action(
    runAction(async (ctx, ref: string) => {
      const n = ctx.remote ? await ctx.remote.call<Network>('GET', `/networks/${encodeURIComponent(ref)}`) : await (await ctx.store()).transaction((tx) => networkRef(tx, ref));
      return { json: n.hostAddresses, text: n.hostAddresses.join('\n') || 'no host addresses' };
    }),
  );
}

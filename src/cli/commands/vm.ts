import type { Command } from 'commander';
import { listVifs, listVms, showVm, vifViews, type VifView } from '../../core/service/views.js';
import type { Vif, Vm } from '../../core/model/types.js';
import { addVif, bindVif, createVm, deleteVif, deleteVm, setVif, setVm } from '../../core/service/vms.js';
import { keyValues, runAction, table } from '../context.js';

export { formatAssignment, vifViews, type VifView } from '../../core/service/views.js';

/** The VIF record of an API VIF view: what the local `vif bind|unbind` prints with --json. */
function remoteVif(view: VifView & { released?: string[] }): Vif {
  const { vm: _vm, network: _n, effectiveLocking: _e, lockingReason: _r, addresses: _a, released: _rel, ...vif } = view;
  return vif;
}

function vifTable(views: VifView[]): string {
  return table(['VIF', 'MAC', 'NETWORK', 'LOCKING', 'IFNAME', 'ADDRESSES'], views.map((v) => [
    `${v.vm}:${v.device}`, v.mac, v.network, v.locking === 'network_default' ? `${v.effectiveLocking} (network default)` : v.effectiveLocking, v.ifname, v.addresses.map((a) => a.address).join(','),
  ]));
}

export function registerVmCommands(program: Command): void {
  const vm = program.command('vm').description('virtual machines');
  vm.command('add <name>').description('add a VM')
    .option('--uuid <uuid>', "the hypervisor's UUID of the VM")
    .option('--owner <tenant>', 'tenant that owns the VM')
    .option('--host <host>', 'host the VM runs on (default: this machine)')
    .action(runAction(async (ctx, name: string, o: { uuid?: string; owner?: string; host?: string }) => {
      const input = { name, uuid: o.uuid, owner: o.owner, host: o.host };
      const v: Vm = ctx.remote ? await ctx.remote.call('POST', '/vms', { body: input }) : await createVm(await ctx.store(), input, ctx.actor);
      return { json: v, text: `added VM ${v.name} (${v.uuid})` };
    }));
  vm.command('set <vm>').description('change a VM: owner (an existing tenant), name, host')
    .option('--owner <tenant>', 'tenant that owns the VM')
    .option('--no-owner', 'the VM belongs to no tenant')
    .option('--name <name>', 'rename')
    .option('--host <host>', 'host the VM runs on')
    .action(runAction(async (ctx, ref: string, o: { owner?: string | false; name?: string; host?: string }) => {
      const ch = { owner: o.owner === false ? null : o.owner, name: o.name, host: o.host };
      const v: Vm = ctx.remote ? await ctx.remote.call('PATCH', `/vms/${encodeURIComponent(ref)}`, { body: ch }) : await setVm(await ctx.store(), ref, ch, ctx.actor);
      return { json: v, text: `updated VM ${v.name}${v.owner ? ` (owner ${v.owner})` : ''}` };
    }));
  vm.command('list').description('list VMs').action(runAction(async (ctx) => {
    const list = ctx.remote ? await ctx.remote.all<Vm>('/vms') : await listVms(await ctx.store());
    return { json: list, text: list.length ? table(['NAME', 'UUID', 'HOST', 'OWNER'], list.map((v) => [v.name, v.uuid, v.host, v.owner])) : 'no VMs' };
  }));
  vm.command('show <vm>').description('show a VM with its VIFs and addresses').action(runAction(async (ctx, ref: string) => {
    return (async () => {
      const v: Awaited<ReturnType<typeof showVm>> = ctx.remote ? await ctx.remote.call('GET', `/vms/${encodeURIComponent(ref)}`) : await (await ctx.store()).transaction((tx) => showVm(tx, ref));
      const views = v.vifs;
      return {
        json: v,
        text: keyValues([['name', v.name], ['uuid', v.uuid], ['host', v.host], ['owner', v.owner]]) + (views.length ? '\n\n' + vifTable(views) : '\n\nno VIFs'),
      };
    })();
  }));
  vm.command('delete <vm>').description('delete a VM, its VIFs, and release their addresses').action(runAction(async (ctx, ref: string) => {
    const r: { vm: Vm; released: string[] } = ctx.remote ? await ctx.remote.call('DELETE', `/vms/${encodeURIComponent(ref)}`) : await deleteVm(await ctx.store(), ref, ctx.actor);
    return { json: r, text: `deleted VM ${r.vm.name}${r.released.length ? `; released ${r.released.join(', ')}` : ''}` };
  }));

  const vif = program.command('vif').description('virtual interfaces (VM:DEVICE)');
  vif.command('add <vm>').description('add a VIF to a VM')
    .requiredOption('--network <network>', 'network of the VIF')
    .requiredOption('--mac <mac>', 'MAC address')
    .option('--device <n>', 'device index (default: next free from 0)')
    .option('--locking <mode>', 'network_default | locked | unlocked | disabled', 'network_default')
    .action(runAction(async (ctx, vmName: string, o: { network: string; mac: string; device?: string; locking: string }) => {
      const input = { vm: vmName, network: o.network, mac: o.mac, device: o.device, locking: o.locking };
      let view: VifView;
      if (ctx.remote) view = await ctx.remote.call('POST', '/vifs', { body: input });
      else {
        const store = await ctx.store();
        const added = await addVif(store, input, ctx.actor);
        [view] = await store.transaction((tx) => vifViews(tx, [added]));
      }
      const v = view;
      return { json: view, text: `added VIF ${view.vm}:${v.device} (${v.mac}) on ${view.network}` };
    }));
  vif.command('list').description('list VIFs with their effective locking mode and addresses')
    .option('--vm <vm>', 'only this VM')
    .option('--network <network>', 'only VIFs on this network')
    .option('--owner <tenant>', 'only VIFs of VMs this tenant owns')
    .action(
    runAction(async (ctx, o: { vm?: string; network?: string; owner?: string }) => {
      const filter = { vm: o.vm, network: o.network, owner: o.owner };
      const views = ctx.remote ? await ctx.remote.all<VifView>('/vifs', filter) : await (await ctx.store()).transaction((tx) => listVifs(tx, filter));
      return { json: views, text: views.length ? vifTable(views) : 'no VIFs' };
    }),
  );
  vif.command('set <vif>').description('change a VIF (VM:DEVICE)')
    .option('--locking <mode>', 'network_default | locked | unlocked | disabled')
    .option('--mac <mac>', 'new MAC')
    .option('--network <network>', 'move to another network')
    .option('--force', 'when moving: release the addresses it holds on the old network')
    .action(runAction(async (ctx, ref: string, o: { locking?: string; mac?: string; network?: string; force?: boolean }) => {
      const ch = { locking: o.locking, mac: o.mac, network: o.network, force: o.force };
      let out: VifView & { released: string[] };
      if (ctx.remote) out = await ctx.remote.call('PATCH', `/vifs/${encodeURIComponent(ref)}`, { body: ch });
      else {
        const store = await ctx.store();
        const res = await setVif(store, ref, ch, ctx.actor);
        const [v] = await store.transaction((tx) => vifViews(tx, [res.vif]));
        out = { ...v, released: res.released };
      }
      const { released, ...view } = out;
      const r = { released };
      return { json: { ...view, released }, text: `updated VIF ${view.vm}:${view.device}${r.released.length ? `; released ${r.released.join(', ')}` : ''}` };
    }));
  vif.command('bind <vif>').description('record the host-side interface of a VIF (drivers do this automatically)')
    .requiredOption('--ifname <ifname>', 'host interface, e.g. vnet3 or vif5.0')
    .option('--host <name>', 'the hypervisor host the interface is on (the VM moves there)')
    .action(runAction(async (ctx, ref: string, o: { ifname: string; host?: string }) => {
      if (ctx.remote) {
        // the API binds (and moves the VM to --host) in one transaction, as the local path does
        const v: VifView = await ctx.remote.call('PATCH', `/vifs/${encodeURIComponent(ref)}`, { body: { ifname: o.ifname, ...(o.host !== undefined ? { host: o.host } : {}) } });
        return { json: remoteVif(v), text: `bound ${ref} to ${v.ifname}` };
      }
      const store = await ctx.store();
      const v = await bindVif(store, ref, o.ifname, ctx.actor, o.host);
      // one interface, one VIF: an older binding of the same name on this VM's host is stale
      const host = (await store.getVm(v.vmUuid))?.host;
      for (const other of await store.listVifs()) {
        if (other.uuid === v.uuid || other.ifname !== v.ifname) continue;
        const vm = await store.getVm(other.vmUuid);
        if (vm && vm.host === host) ctx.stderr(`warning: ${v.ifname} is also bound to ${vm.name}:${other.device}; only this newer binding is enforced (vif unbind ${vm.name}:${other.device})`);
      }
      return { json: v, text: `bound ${ref} to ${v.ifname}` };
    }));
  vif.command('unbind <vif>').description('forget the host-side interface of a VIF').action(runAction(async (ctx, ref: string) => {
    if (ctx.remote) {
      return { json: remoteVif(await ctx.remote.call('PATCH', `/vifs/${encodeURIComponent(ref)}`, { body: { ifname: null } })), text: `unbound ${ref}` };
    }
    const v = await bindVif(await ctx.store(), ref, null, ctx.actor);
    return { json: v, text: `unbound ${ref}` };
  }));
  vif.command('delete <vif>').description('delete a VIF and release its addresses').action(runAction(async (ctx, ref: string) => {
    const r: { vif: Vif; released: string[] } = ctx.remote ? await ctx.remote.call('DELETE', `/vifs/${encodeURIComponent(ref)}`) : await deleteVif(await ctx.store(), ref, ctx.actor);
    return { json: r, text: `deleted VIF ${ref}${r.released.length ? `; released ${r.released.join(', ')}` : ''}` };
  }));
}

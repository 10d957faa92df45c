// ipvisor guest: network_data.json for a VM, rendering to every guest format, live push via the
// QEMU guest agent.
import { chmodSync, mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { dirname, join } from 'node:path';
import type { Command } from 'commander';
import { invalid } from '../../core/model/errors.js';
import type { Network, Vm } from '../../core/model/types.js';
import { loadSnapshot } from '../../core/model/snapshot.js';
import { networkDataForVm } from '../../core/guest/emit.js';
import type { GuestNetState } from '../../core/guest/ir.js';
import { normalizeMac, parseNetworkData } from '../../core/guest/parse.js';
import type { PersistFormat } from '../../agent/guest/push.js';
import { GUEST_FORMATS, parseFormat, render } from '../../core/guest/render.js';
import { pushVmNetwork } from '../../agent/guest/vm-push.js';
import { networkRef, vmRef } from '../../core/service/resolve.js';
import { GUEST_PUSH_DOC, type GuestPushRecord } from '../../core/guest/push-port.js';
import { setGuestAutoPush } from '../../core/service/guest-push.js';
import { collect, runAction, type CommandContext } from '../context.js';

/** --nic NAME=MAC (repeatable) -> MAC -> name. */
export function parseNics(values: string[] = []): Record<string, string> {
  const out: Record<string, string> = {};
  for (const v of values) {
    const eq = v.indexOf('=');
    if (eq <= 0) throw invalid('nic', `'${v}' is not NAME=MAC`);
    const name = v.slice(0, eq);
    if (!/^[A-Za-z0-9_][A-Za-z0-9_.-]{0,14}$/.test(name)) throw invalid('nic', `'${name}' is not a valid interface name`);
    const mac = normalizeMac(v.slice(eq + 1), 'nic');
    if (out[mac] !== undefined) throw invalid('nic', `MAC ${mac} is named twice (${out[mac]}, ${name})`);
    out[mac] = name;
  }
  return out;
}

/** A typo in --nic would otherwise be ignored silently: every named MAC must be a physical link. */
function checkNics(state: GuestNetState, nicNames: Record<string, string>): void {
  for (const [mac, name] of Object.entries(nicNames)) {
    if (!state.interfaces.some((i) => i.type === 'physical' && i.mac === mac)) throw invalid('nic', `${name}=${mac}: no physical link has MAC ${mac}`);
  }
}

function readInput(path: string): unknown {
  let text: string;
  try {
    text = readFileSync(path === '-' ? 0 : path, 'utf8');
  } catch (e) {
    throw invalid('input', `cannot read '${path}': ${(e as Error).message}`);
  }
  try {
    return JSON.parse(text);
  } catch (e) {
    throw invalid('input', `'${path}' is not JSON: ${(e as Error).message}`);
  }
}

async function docForVm(ctx: CommandContext, ref: string): Promise<unknown> {
  const store = await ctx.store();
  return store.transaction(async (tx) => {
    const vm = await vmRef(tx, ref);
    return networkDataForVm(await loadSnapshot(tx), vm.uuid);
  });
}

function showFiles(files: Record<string, string>): string {
  return Object.entries(files)
    .map(([p, c]) => `==> ${p} <==\n${c.replace(/\r\n/g, '\n')}`)
    .join('\n');
}

const PERSIST_FORMATS = ['netplan', 'eni', 'sysconfig', 'networkd', 'nm', 'none'];

export function registerGuestCommands(program: Command): void {
  const guest = program.command('guest').description("the guest's own network configuration (network_data.json, renderers, live push)");

  guest
    .command('network-data <vm>')
    .description("the VM's network as OpenStack network_data.json")
    .action(
      runAction(async (ctx, ref: string) => {
        const doc = await docForVm(ctx, ref);
        return { json: doc, text: JSON.stringify(doc, null, 2) };
      }),
    );

  guest
    .command('render')
    .description(`render a VM's network (or a network_data.json file) to a guest config format: ${GUEST_FORMATS.join(', ')}`)
    .option('--vm <vm>', 'the VM whose network to render')
    .option('--input <file>', "a network_data.json file ('-' for stdin)")
    .requiredOption('--format <format>', GUEST_FORMATS.join('|'))
    .option('--out <dir>', 'write the files under this directory (a guest root) instead of printing them')
    .option('--nic <name=mac>', 'name the NIC with this MAC (repeatable); default: the link name, else ethN in link order', collect, [])
    .action(
      runAction(async (ctx, o: { vm?: string; input?: string; format: string; out?: string; nic: string[] }) => {
        if (!!o.vm === !!o.input) throw invalid('vm', 'give exactly one of --vm VM or --input FILE');
        const format = parseFormat(o.format);
        const nicNames = parseNics(o.nic);
        const doc = o.input ? readInput(o.input) : await docForVm(ctx, o.vm!);
        const state = parseNetworkData(doc, { nicNames });
        checkNics(state, nicNames);
        for (const w of state.warnings) ctx.stderr(`guest: warning: ${w}`);
        const files = render(state, format);
        if (o.out) {
          for (const [p, c] of Object.entries(files)) {
            const full = join(o.out, p);
            mkdirSync(dirname(full), { recursive: true });
            writeFileSync(full, c, { mode: 0o600 });
            // the mode is set even on a file that was there already (netplan and NM want 600)
            chmodSync(full, /\.(yaml|nmconnection)$/.test(p) ? 0o600 : p.endsWith('.sh') ? 0o755 : 0o644);
          }
          return { json: { files: Object.keys(files).map((p) => join(o.out!, p)), warnings: state.warnings }, text: Object.keys(files).map((p) => `wrote ${join(o.out!, p)}`).join('\n') };
        }
        return { json: { files, warnings: state.warnings }, text: showFiles(files) };
      }),
    );

  guest
    .command('push <vm>')
    .description('apply the VM network live inside the running guest through the QEMU guest agent (rolls back if it does not come up)')
    .option('--socket <path>', 'qemu-ga unix socket (default: libvirt agent channel of the domain, or XAPI for XCP-ng VMs)')
    .option('--domain <name>', 'libvirt domain name (default: the VM name)')
    .option('--connect <uri>', 'libvirt URI for virsh -c')
    .option('--input <file>', "push this network_data.json instead of the VM's own")
    .option('--format <format>', `persisted config format: ${PERSIST_FORMATS.join('|')} (default: detected in the guest)`)
    .option('--nic <name=mac>', 'name the NIC with this MAC (repeatable); default: what the guest reports', collect, [])
    .option('--timeout <seconds>', 'how long the new configuration may take to come up', '20')
    .option('--guard <seconds>', 'the guest rolls back by itself unless confirmed within this time', '120')
    .option('--dry-run', 'show what would be written and run, change nothing')
    .action(
      runAction(async (ctx, ref: string, o: { socket?: string; domain?: string; connect?: string; input?: string; format?: string; nic: string[]; timeout: string; guard: string; dryRun?: boolean }) => {
        if (o.format !== undefined && !PERSIST_FORMATS.includes(o.format)) throw invalid('format', `'${o.format}' is not a persisted format (${PERSIST_FORMATS.join(', ')})`);
        const timeout = Number(o.timeout);
        const guard = Number(o.guard);
        if (!Number.isFinite(timeout) || timeout <= 0 || timeout > 3600) throw invalid('timeout', `'${o.timeout}' is not a number of seconds (1-3600)`);
        if (!Number.isInteger(guard) || guard < timeout || guard > 86400) throw invalid('guard', `'${o.guard}' must be whole seconds, at least --timeout`);
        const nicNames = parseNics(o.nic);
        const doc = o.input ? readInput(o.input) : undefined;
        const store = await ctx.store();
        const { snapshot, vm } = await store.transaction(async (tx) => ({ vm: await vmRef(tx, ref), snapshot: await loadSnapshot(tx) }));
        if (Object.keys(nicNames).length) checkNics(parseNetworkData(doc ?? networkDataForVm(snapshot, vm.uuid), { nicNames }), nicNames);
        const r = await pushVmNetwork(snapshot, vm, {
          socket: o.socket,
          domain: o.domain,
          connect: o.connect,
          doc,
          format: o.format as PersistFormat | undefined,
          nicNames,
          dryRun: !!o.dryRun,
          verifyTimeoutMs: timeout * 1000,
          guardSeconds: guard,
          log: (l) => ctx.stderr(l),
        });
        const text = o.dryRun
          ? [`dry run: ${r.plan.os} via ${r.via}, persisted format ${r.plan.format}`, showFiles(r.plan.files), `==> apply (run live) <==\n${r.plan.applyScript}`, r.plan.rollbackScript ? `==> rollback (on failure) <==\n${r.plan.rollbackScript}` : ''].join('\n')
          : r.via === 'XAPI'
            ? `pushed ${vm.name} via XAPI: static addresses set with VIF.configure_ipv4/6; the guest's tools apply them (not verified from here)`
            : r.applied
              ? `pushed ${vm.name} via ${r.via}: ${Object.keys(r.plan.files).length} ${r.plan.format} file(s) written, applied live and verified`
              : `${vm.name}: nothing applied`;
        return { json: { vm: vm.name, via: r.via, applied: r.applied, os: r.plan.os, format: r.plan.format, warnings: r.warnings ?? [], files: r.plan.files, applyScript: r.plan.applyScript, rollbackScript: r.plan.rollbackScript, interfaces: r.interfaces }, text };
      }),
    );

  guest
    .command('auto-push <on|off>')
    .description('let `ipvisor serve` push the network into the guest whenever it changes (per VM or per network)')
    .option('--vm <vm>', 'this VM (wins over its networks)')
    .option('--network <network>', 'every VM with a VIF on this network')
    .option('--socket <path>', "the VM's qemu-ga socket (default: libvirt agent channel / XAPI); 'none' to forget it")
    .action(
      runAction(async (ctx, state: string, o: { vm?: string; network?: string; socket?: string }) => {
        if (state !== 'on' && state !== 'off') throw invalid('state', `'${state}' is not on or off`);
        if (!!o.vm === !!o.network) throw invalid('vm', 'give exactly one of --vm VM or --network NETWORK');
        if (o.socket !== undefined && !o.vm) throw invalid('socket', '--socket goes with --vm');
        const store = await ctx.store();
        const target: { vm: Vm } | { network: Network } = await store.transaction(async (tx) => (o.vm ? { vm: await vmRef(tx, o.vm) } : { network: await networkRef(tx, o.network!) }));
        await setGuestAutoPush(store, target, state === 'on', ctx.actor, { socket: o.socket === 'none' ? null : o.socket });
        const name = 'vm' in target ? `VM ${target.vm.name}` : `network ${target.network.name}`;
        const last = 'vm' in target ? (await store.getDoc<GuestPushRecord>(GUEST_PUSH_DOC, target.vm.uuid))?.value ?? null : null;
        return { json: { target: name, autoPush: state === 'on', lastPush: last }, text: `guest auto-push ${state} for ${name}` };
      }),
    );
}

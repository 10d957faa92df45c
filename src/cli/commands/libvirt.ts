// libvirt/KVM commands: install/uninstall the hooks, sync, the hooks themselves, routed-ips import.
import { existsSync, readFileSync } from 'node:fs';
import { isAbsolute, join, resolve } from 'node:path';
import type { Command } from 'commander';
import { invalid } from '../../core/model/errors.js';
import { ensureCommand, runAction, table } from '../context.js';

export function registerLibvirtCommands(program: Command): void {
  const lv = program.command('libvirt').description('libvirt/KVM integration: hooks, discovery');

  lv.command('install')
    .description('install the libvirt hooks (network.d/ipvisor, qemu.d/ipvisor) and enable the hardened unit: ipvisor-serve.service on one box, ipvisor-agent.service on an agent host (--agent, or an agent ran here); the packaged unit, else the shipped one; libvirtd must be restarted to pick up new hooks')
    .option('--hooks-dir <dir>', 'libvirt hooks directory', '/etc/libvirt/hooks')
    .option('--systemd-dir <dir>', 'admin unit directory (drop-ins; the unit itself for a source checkout)', '/etc/systemd/system')
    .option('--no-systemd', 'leave systemd units alone')
    .option('--entry <path>', 'hook entry point (default: dist/libvirt-hook.cjs of this install)')
    .option('--node <path>', 'node binary the hooks run (default: this one)')
    .option('--log <path>', 'hook log file', '/var/log/ipvisor/libvirt-hooks.log')
    .option('--run-dir <dir>', 'run directory the hooks use (host lock, enforced-store record; default: IPVISOR_RUN_DIR, else /run/ipvisor)')
    .option('--refuse-disabled', 'refuse to start a domain whose VIF is disabled (qemu prepare hook)')
    .option('--no-refuse-disabled', 'start domains with disabled VIFs (their traffic is still dropped)')
    .option('--agent', 'this is an agent host (ipvisor agent under ipvisor server): hooks talk to the local agent, no store')
    .option('--host <name>', 'with --agent: this host (default: the running agent\'s, else the hostname)')
    .option('--state-dir <dir>', "with --agent: the agent's state directory (default: the running agent's, else $IPVISOR_STATE_DIR or /var/lib/ipvisor)")
    .action(runAction(async (ctx, o: { hooksDir: string; systemdDir: string; systemd: boolean; entry?: string; node?: string; log: string; runDir?: string; refuseDisabled?: boolean; agent?: boolean; host?: string; stateDir?: string }) => {
      const { installHooks, defaultHookEntry, installServeUnit, installAgentUnit, serveUnitTemplate, agentUnitTemplate, packageRoot, SERVE_UNIT, AGENT_UNIT } = await import('../../agent/libvirt/install.js');
      const { readAgentMarker } = await import('../../agent/local-socket.js');
      const { validateName } = await import('../../core/model/validate.js');
      const marker = readAgentMarker(o.stateDir ? { ...ctx.io.env, IPVISOR_STATE_DIR: o.stateDir } : ctx.io.env);
      const agentHost = !!(o.agent || marker);
      if (!agentHost && (o.host !== undefined || o.stateDir !== undefined)) throw invalid(o.host !== undefined ? 'host' : 'state-dir', 'goes with --agent (an agent host)');
      if (agentHost && o.refuseDisabled !== undefined) throw invalid('refuse-disabled', 'is a setting of one-box hooks, which record into a store; an agent host has none');
      let agent: { host: string; stateDir: string } | undefined;
      if (agentHost) {
        const { thisHost } = await import('../../core/host-identity.js');
        agent = { host: validateName(o.host ?? marker?.host ?? thisHost(), 'host'), stateDir: resolve(o.stateDir ?? marker?.stateDir ?? ctx.io.env.IPVISOR_STATE_DIR ?? '/var/lib/ipvisor') };
      }
      const { defaultStorePath } = await import('../../core/store/open.js');
      const db = agent ? undefined : resolve(ctx.dbPath ?? defaultStorePath(ctx.io.env));
      const entry = o.entry ? { entry: resolve(o.entry), nodeArgs: [] } : defaultHookEntry();
      const node = o.node ?? process.execPath;
      if (!isAbsolute(node)) throw invalid('node', `'${node}' must be an absolute path (libvirt gives hooks no useful PATH)`);
      if (!existsSync(node)) throw invalid('node', `${node} does not exist`);
      if (!existsSync(entry.entry)) throw invalid('entry', `${entry.entry} does not exist (run \`npm run build\`, or give --entry)`);
      // libvirtd gives hooks its own environment: a run dir other than the default goes in the script
      const runDirArg = o.runDir ?? (ctx.io.env.IPVISOR_RUN_DIR || undefined);
      const runDir = runDirArg ? resolve(runDirArg) : undefined;
      const res = installHooks({ hooksDir: resolve(o.hooksDir), command: { node, nodeArgs: entry.nodeArgs, entry: entry.entry, ...(agent ? { agent } : { db }), log: resolve(o.log), runDir } });
      let enabled: string | undefined;
      if (o.systemd) {
        const systemdDir = resolve(o.systemdDir);
        const bin = join(packageRoot(), 'bin', 'ipvisor');
        const unit = agent
          ? installAgentUnit({ systemdDir, execStart: [node, bin, 'agent'], stateDir: agent.stateDir, template: agentUnitTemplate() })
          : installServeUnit({ systemdDir, execStart: [node, bin, 'serve'], db: db!, template: serveUnitTemplate() });
        res.written.push(...unit.written);
        res.skipped.push(...unit.skipped);
        res.removed = unit.removed;
        // Enable only on a host booted with systemd and for the real unit directory (not a test's).
        if (systemdDir === '/etc/systemd/system' && existsSync('/run/systemd/system')) {
          const { createHostRunner } = await import('../../agent/host/exec.js');
          const run = createHostRunner({ netns: undefined });
          await run.run(['systemctl', 'daemon-reload']);
          enabled = agent ? AGENT_UNIT : SERVE_UNIT;
          if (agent) await run.run(['systemctl', 'disable', SERVE_UNIT], { allowFail: true });
          await run.run(['systemctl', 'enable', enabled]);
        }
      }
      if (o.refuseDisabled !== undefined) {
        const store = await ctx.store();
        const { DOC_SETTINGS } = await import('../../core/service/libvirt-facts.js');
        const prev = (await store.getDoc<Record<string, unknown>>(DOC_SETTINGS, 'hooks'))?.value ?? {};
        await store.putDoc(DOC_SETTINGS, 'hooks', { ...prev, refuseDisabledVifs: o.refuseDisabled });
      }
      const text = [
        ...(agent ? [`agent host ${agent.host}: the hooks hand their events to the local agent (state ${agent.stateDir})`] : []),
        ...res.written.map((f) => `wrote ${f}`),
        ...res.skipped.map((f) => `skipped ${f}`),
        ...(res.removed ?? []).map((f) => `removed ${f}`),
        ...(enabled ? [`enabled ${enabled} (start it: systemctl start ${enabled.replace(/\.service$/, '')})`] : []),
        ...(agent ? ['set --server and --token-file in /etc/default/ipvisor-agent (IPVISOR_AGENT_ARGS)'] : []),
        'restart libvirtd to pick up new hooks (libvirt looks for hook scripts only when it starts)',
      ].join('\n');
      return { json: { ...res, enabled: !!enabled, unit: enabled ?? null, restartRequired: true, ...(agent ? { agent } : { db }), entry: entry.entry }, text };
    }));

  lv.command('uninstall')
    .description("remove ipvisor's libvirt hooks, and the serve or agent unit and drop-in libvirt install wrote (never a packaged unit; other hooks stay)")
    .option('--hooks-dir <dir>', 'libvirt hooks directory', '/etc/libvirt/hooks')
    .option('--systemd-dir <dir>', 'where ipvisor-serve.service / ipvisor-agent.service are', '/etc/systemd/system')
    .option('--no-systemd', 'leave the systemd units')
    .action(runAction(async (_ctx, o: { hooksDir: string; systemdDir: string; systemd: boolean }) => {
      const { uninstallHooks } = await import('../../agent/libvirt/install.js');
      const res = uninstallHooks({ hooksDir: resolve(o.hooksDir), systemdDir: o.systemd ? resolve(o.systemdDir) : null });
      const text = [...res.removed.map((f) => `removed ${f}`), ...res.skipped.map((f) => `skipped ${f}`)].join('\n') || 'nothing to remove';
      return { json: res, text };
    }));

  lv.command('sync')
    .description('discover libvirt networks, domains, interfaces and MACs into the store (virsh; $IPVISOR_LIBVIRT_URI picks the connection)')
    .action(runAction(async (ctx) => {
      const { syncLibvirt } = await import('../../agent/libvirt/sync.js');
      const res = await syncLibvirt(await ctx.store(), ctx.actor);
      for (const p of res.problems) ctx.stderr(`ipvisor: warning: invalid fact not stored as given: ${p}`);
      const text = [
        res.networks.length ? table(['NETWORK', 'UUID', 'ACTION', 'NOTE'], res.networks.map((n) => [n.name, n.uuid, n.action, n.note])) : 'no libvirt networks',
        res.domains.length ? table(['DOMAIN', 'STATE', 'VIFS'], res.domains.map((d) => [d.name, d.running ? 'running' : 'shut off', d.vifs.map((v) => `${v.mac}@${v.network}${v.ifname ? `=${v.ifname}` : ''}`).join(' ')])) : 'no domains',
      ].join('\n\n');
      return { json: res, text };
    }));

  const hook = ensureCommand(program, 'hook', 'entry points run by hypervisors (libvirt hooks); not for interactive use');
  for (const kind of ['network', 'qemu'] as const) {
    hook.command(`libvirt-${kind}`)
      .description(`libvirt ${kind} hook: argv from libvirt, XML on stdin; prints nothing on stdout`)
      .argument('[args...]', "libvirt's arguments (object operation sub-operation extra)")
      .allowUnknownOption()
      .helpOption(false)
      .action((...actionArgs: unknown[]) => {
        // Nothing on stdout, not even with --json: libvirt reads stdout on migrate/restore.
        let root = actionArgs[actionArgs.length - 1] as Command;
        while (root.parent) root = root.parent;
        root.setOptionValue('json', false);
        return runAction(async (ctx, args: string[]) => {
          const { hookMain } = await import('../../agent/libvirt/hook-main.js');
          const code = await hookMain([`libvirt-${kind}`, ...(ctx.dbPath ? ['--db', ctx.dbPath] : []), '--', ...args.filter((a) => a !== '--')]);
          return { json: undefined, text: '', exitCode: code };
        })(...actionArgs);
      });
  }

  const imp = ensureCommand(program, 'import', 'import configuration from other tools');
  imp.command('routed-ips <file>')
    .description("libvirt-nethook-helper's routed-ips file: '<ip> <network> [VM[:DEVICE]]' per line (any driver's network; a bare VM is its first VIF there), '#' comments")
    .option('--no-apply', 'only record; do not make the host match now')
    .action(runAction(async (ctx, file: string, o: { apply: boolean }) => {
      let text: string;
      try {
        text = readFileSync(file, 'utf8');
      } catch (err) {
        throw invalid('file', `cannot read '${file}': ${(err as NodeJS.ErrnoException).code ?? (err as Error).message}`);
      }
      const store = await ctx.store();
      const { importRoutedIps } = await import('../../agent/libvirt/routed-import.js');
      const res = await importRoutedIps(store, text, file, ctx.actor);
      for (const w of res.warnings) ctx.stderr(`ipvisor: warning: ${w}`);
      let applied = false;
      if (o.apply && res.imported.some((i) => i.action !== 'exists')) {
        const { applyHost } = await import('../../agent/host/apply.js');
        try {
          await applyHost(store, { actor: ctx.actor, log: (m) => ctx.stderr(m) });
          applied = true;
        } catch (err) {
          ctx.stderr(`ipvisor: warning: recorded, but applying to the host failed: ${(err as Error).message}`);
        }
      }
      const out = res.imported.length ? table(['ADDRESS', 'NETWORK', 'VIF', 'ACTION'], res.imported.map((i) => [i.cidr, i.network, i.vif, i.action])) : 'no addresses in file';
      return { json: { ...res, applied }, text: out };
    }));
}

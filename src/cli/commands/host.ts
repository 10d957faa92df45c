// Host enforcement commands: plan / apply / status / serve / teardown (all enforcers), and the
// host's own default route (`host gateway`).
import type { Command } from 'commander';
import type { EnforcerContext, PlanChange } from '../../core/enforcer.js';
import { enforcerStatus, formatPlanChange, runEnforcers, type EnforcerFailure } from '../../core/enforcer.js';
import { loadEnforcers } from '../../drivers/index.js';
import { DEFAULT_GATEWAY_METRIC, type HostGatewaySetting } from '../../core/compile/host-plan.js';
import { thisHost } from '../../core/host-identity.js';
import { validateName } from '../../core/model/validate.js';
import { IpvisorError, asIpvisorError, invalid } from '../../core/model/errors.js';
import { ensureCommand, runAction, table } from '../context.js';
import type { CommandContext } from '../context.js';

async function enforcerContext(ctx: CommandContext, dryRun: boolean, warnings: string[] = [], force = false): Promise<EnforcerContext> {
  // warnings go to stderr as they come, and into the JSON result (a monitoring script reads those)
  const log = (m: string) => {
    if (m.startsWith('warning: ')) warnings.push(m.slice('warning: '.length));
    ctx.stderr(m);
  };
  return { store: await ctx.store(), actor: ctx.actor, dryRun, log, force };
}

function changesText(changes: Array<PlanChange & { enforcer: string }>, none: string): string {
  return changes.length ? changes.map(formatPlanChange).join('\n') : none;
}

async function runAll(ctx: CommandContext, what: 'plan' | 'apply' | 'teardown', warnings: string[] = [], force = false) {
  if (what !== 'teardown') {
    const onAgent = await agentHostRun(ctx, what, warnings);
    if (onAgent) return onAgent;
  }
  return runEnforcers(await loadEnforcers(), await enforcerContext(ctx, what === 'plan', warnings, force), what);
}

/** plan/apply: every enforcer runs; the changes are printed and applied even when one enforcer
 * fails (an XAPI pool unreachable), whose error is reported beside them with exit status 1. */
async function runAllReporting(ctx: CommandContext, what: 'plan' | 'apply', warnings: string[], force = false) {
  const onAgent = await agentHostRun(ctx, what, warnings);
  if (onAgent) return { changes: onAgent as Array<PlanChange & { enforcer: string }>, errors: [] };
  const failures: EnforcerFailure[] = [];
  const changes = await runEnforcers(await loadEnforcers(), await enforcerContext(ctx, what === 'plan', warnings, force), what, failures);
  const errors = failures.map((f) => ({ enforcer: f.enforcer, ...asIpvisorError(f.error).toJSON() }));
  for (const e of errors) ctx.stderr(`ipvisor: ${e.message}`);
  return { changes, errors };
}

/** On an agent host (ipvisor agent left its marker in the state directory), plan/apply/status work on
 * the agent's local copy: through the running agent, or from the copy on disk when none answers. */
async function agentHostRun(ctx: CommandContext, what: 'plan' | 'apply' | 'status', warnings: string[] = []): Promise<any> {
  const { readAgentMarker, askLocalAgent } = await import('../../agent/local-socket.js');
  const marker = readAgentMarker(ctx.io.env);
  if (!marker) return undefined;
  const reply = await askLocalAgent<any>({ kind: what });
  if (reply && !reply.ok) throw new IpvisorError('HOST_COMMAND', `the local agent failed: ${reply.error}`);
  let result = reply;
  if (!result) {
    ctx.stderr('ipvisor: no local agent answered; working on the desired state on disk');
    const [{ Agent, OFFLINE }, { openHostState }] = await Promise.all([import('../../agent/agent.js'), import('../../agent/state.js')]);
    const agent = new Agent({ host: marker.host, controlPlane: OFFLINE, local: openHostState(marker.stateDir), log: (m) => ctx.stderr(m) });
    if (what === 'plan') {
      const run = await agent.plan();
      result = { changes: run.changes, warnings: run.warnings };
    } else if (what === 'apply') result = { changes: await agent.applyNow() };
    else result = { host: await agent.status(), agent: agent.state };
  }
  if (what === 'status') return result;
  warnings.push(...(result.warnings ?? []));
  return (result.changes as PlanChange[]).map((c) => ({ ...c, enforcer: 'host' }));
}

/** The XAPI enforcer's status as text: one table per connected pool; nothing when none is connected. */
export function xapiStatusLines(s: any): string[] {
  const lines: string[] = [];
  for (const p of s.pools ?? []) {
    lines.push(`xapi pool ${p.connection}${p.licenceRestricted ? ' (VIF locking restricted by licence)' : ''}:`);
    lines.push(table(['VIF', 'LOCKING', 'IPV4', 'IPV6', 'PENDING', 'DRIFT'], (p.vifs ?? []).map((v: any) => [v.vif, v.locking, (v.ipv4 ?? []).join(','), (v.ipv6 ?? []).join(','), v.pending ?? '', (Array.isArray(v.drift) ? v.drift.join('; ') : v.drift) || ''])));
    for (const w of p.warnings ?? []) lines.push(`warning: ${w}`);
  }
  for (const u of s.unreachable ?? []) lines.push(`xapi pool ${u.connection}: unreachable (${u.error}); VIF locking not checked`);
  return lines;
}

function gatewayHost(name: string | undefined): string {
  return name !== undefined ? validateName(name, 'host') : thisHost();
}

export function registerHostCommands(program: Command): void {
  program
    .command('plan')
    .description('show what apply would change on this host (+ add, - remove, ~ change); nothing is applied')
    .option('--exit-code', 'exit 3 when changes are pending')
    .action(
      runAction(async (ctx, opts: { exitCode?: boolean }) => {
        const warnings: string[] = [];
        const { changes, errors } = await runAllReporting(ctx, 'plan', warnings);
        // with an error, "No changes." would claim what nobody could check
        return { json: { changes, warnings, errors }, text: changesText(changes, errors.length ? '' : 'No changes.'), exitCode: errors.length ? 1 : opts.exitCode && changes.length ? 3 : 0 };
      }),
    );

  program
    .command('apply')
    .description('apply the plan to this host atomically (a second apply reports no changes)')
    .option('--force', "apply even the removals of a store that is not the one this host's enforcement came from (STORE_IDENTITY)")
    .action(
      runAction(async (ctx, opts: { force?: boolean }) => {
        const warnings: string[] = [];
        const { changes, errors } = await runAllReporting(ctx, 'apply', warnings, !!opts.force);
        return { json: { changes, warnings, errors }, text: changesText(changes, errors.length ? '' : 'No changes.'), exitCode: errors.length ? 1 : 0 };
      }),
    );

  program
    .command('status')
    .description('per VIF: effective locking mode, allowed addresses, drift found')
    .action(
      runAction(async (ctx) => {
        const onAgent = await agentHostRun(ctx, 'status');
        const out = onAgent ? { host: onAgent.host, agent: onAgent.agent } : await enforcerStatus(await loadEnforcers(), await enforcerContext(ctx, true));
        const lines: string[] = [];
        for (const [name, st] of Object.entries(out)) {
          const s = st as any;
          if (name === 'host' && s?.vifs) {
            lines.push(
              table(
                ['VIF', 'IFNAME', 'LOCKING', 'ALLOWED', 'DRIFT'],
                s.vifs.map((v: any) => [v.label, v.ifname, v.locking, v.allowed.join(','), v.drift.join('; ')]),
              ),
            );
            lines.push(s.pending.length ? `${s.pending.length} change(s) pending; run ipvisor plan` : 'host in sync');
            for (const w of s.warnings) lines.push(`warning: ${w}`);
          } else if (Array.isArray(s?.pools)) lines.push(...xapiStatusLines(s));
          else if (s !== undefined && s !== null) lines.push(`${name}: ${JSON.stringify(s)}`);
        }
        return { json: out, text: lines.join('\n') };
      }),
    );

  program
    .command('teardown')
    .description('remove everything ipvisor put on this host and restore what it changed')
    .action(
      runAction(async (ctx) => {
        const warnings: string[] = [];
        const changes = await runAll(ctx, 'teardown', warnings);
        return { json: { changes, warnings }, text: changesText(changes, 'Nothing to remove.') };
      }),
    );

  program
    .command('serve')
    .description('daemon: apply on start, re-verify periodically and on change events, repair drift')
    .option('--interval <seconds>', 're-verify interval', '5')
    .option('--listen <addr:port>', 'also serve the HTTP API (/api/v1) there')
    .option('--tls-cert <file>', 'PEM certificate for the API (HTTPS)')
    .option('--tls-key <file>', 'PEM private key for the API')
    .option('--insecure-listen', 'allow plain HTTP on a non-loopback address')
    .option('--force', "enforce even a store that is not the one this host's enforcement came from (STORE_IDENTITY)")
    .action(
      runAction(async (ctx, opts: { interval: string; listen?: string; tlsCert?: string; tlsKey?: string; insecureListen?: boolean; force?: boolean }) => {
        const seconds = Number(opts.interval);
        if (!Number.isFinite(seconds) || seconds <= 0) throw invalid('interval', `'${opts.interval}' is not a positive number of seconds`);
        const http = opts.listen !== undefined || opts.tlsCert !== undefined || opts.tlsKey !== undefined || opts.insecureListen ? await import('../../server/http.js') : undefined;
        http?.checkListenOptions(opts);
        const { serve } = await import('../../daemon/serve.js');
        const { logger, logText } = await import('../../core/log.js');
        const serveLog = logger('serve');
        const ac = new AbortController();
        const stop = () => ac.abort();
        process.once('SIGTERM', stop);
        process.once('SIGINT', stop);
        const log = (m: string) => logText(serveLog, m);
        let server: { url: string; close(): Promise<void> } | undefined;
        try {
          const store = await ctx.store();
          if (http && opts.listen) {
            server = await http.startHttpServer({ store, listen: opts.listen, tlsCert: opts.tlsCert, tlsKey: opts.tlsKey, insecureListen: opts.insecureListen });
            log(`api: listening on ${server.url}/api/v1`);
          }
          const { openStore } = await import('../../core/store/open.js');
          await serve({
            store,
            // a store file replaced under serve (a backup restored with mv) is reopened, never created
            reopen: () => openStore(ctx.dbPath, { create: false }),
            force: !!opts.force,
            actor: 'serve',
            intervalMs: seconds * 1000,
            log,
            signal: ac.signal,
          });
        } finally {
          await server?.close();
          process.off('SIGTERM', stop);
          process.off('SIGINT', stop);
        }
        return { json: { stopped: true }, text: 'stopped' };
      }),
    );

  const host = ensureCommand(program, 'host', 'this host: its own default route');
  const gateway = host.command('gateway').description("ipvisor's own default route through a VM network");
  gateway
    .command('set')
    .description('add a default route (proto ipvisor, preferred metric) once NET is up; never replaces the user\'s')
    .requiredOption('--via <ip>', 'next hop')
    .option('--when-up <network>', 'wait until this network\'s bridge is up with a same-family address')
    .option('--metric <n>', 'route metric', String(DEFAULT_GATEWAY_METRIC))
    .option('--host <name>', 'the hypervisor host (default: this one)')
    .action(
      runAction(async (ctx, opts: { via: string; whenUp?: string; metric: string; host?: string }) => {
        const host = gatewayHost(opts.host);
        type Set = { host: string; gateway: HostGatewaySetting };
        const { setHostGateway, gatewayMetric } = await import('../../core/service/hosts.js');
        // checked here too, so that a bad metric is the same one line with or without --server
        const metric = gatewayMetric(opts.metric);
        const r: Set = ctx.remote
          ? await ctx.remote.call('PUT', `/hosts/${encodeURIComponent(host)}/gateway`, { body: { via: opts.via, ...(opts.whenUp !== undefined ? { whenUp: opts.whenUp } : {}), metric } })
          : await setHostGateway(await ctx.store(), { host, via: opts.via, whenUp: opts.whenUp, metric }, ctx.actor);
        return { json: { host: r.host, ...r.gateway }, text: `${r.host}: default route via ${opts.via} metric ${r.gateway.metric}${opts.whenUp ? ` once ${opts.whenUp} is up` : ''} (run ipvisor apply)` };
      }),
    );
  gateway
    .command('unset')
    .description("remove ipvisor's default route setting")
    .option('--host <name>', 'the hypervisor host (default: this one)')
    .action(
      runAction(async (ctx, opts: { host?: string }) => {
        const host = gatewayHost(opts.host);
        const r: { host: string; unset: boolean } = ctx.remote
          ? await ctx.remote.call('DELETE', `/hosts/${encodeURIComponent(host)}/gateway`)
          : await (await import('../../core/service/hosts.js')).unsetHostGateway(await ctx.store(), host, ctx.actor);
        return { json: r, text: r.unset ? `${r.host}: gateway unset (run ipvisor apply)` : `${r.host}: no gateway was set` };
      }),
    );
  gateway
    .command('show')
    .description("show ipvisor's default route setting of a host")
    .option('--host <name>', 'the hypervisor host (default: this one)')
    .action(
      runAction(async (ctx, opts: { host?: string }) => {
        const host = gatewayHost(opts.host);
        const r: { host: string; gateway: HostGatewaySetting | null } = ctx.remote
          ? await ctx.remote.call('GET', `/hosts/${encodeURIComponent(host)}/gateway`)
          : await (await import('../../core/service/hosts.js')).getHostGateway(await ctx.store(), host);
        const v = r.gateway;
        return { json: r, text: v ? `${r.host}: default route via ${v.via} metric ${v.metric}${v.whenUp ? ` once network ${v.whenUp} is up` : ''}` : `${r.host}: no gateway set` };
      }),
    );
}

// Beyond one box: `ipvisor server` (the control plane), `ipvisor agent` (each hypervisor host) and
// the host registry (`host add|list|show|remove|rotate-token`).
import type { Command } from 'commander';
import { writeFileSync } from 'node:fs';
import { invalid } from '../../core/model/errors.js';
import { agentSideOption, ensureCommand, runAction, table, type CommandContext } from '../context.js';

async function openServerStore(ctx: CommandContext, url: string | undefined) {
  if (url === undefined) return ctx.store();
  const { openStore } = await import('../../core/store/open.js');
  return openStore(url, { create: false });
}

function positiveSeconds(text: string, field: string): number {
  const n = Number(text);
  if (!Number.isFinite(n) || n <= 0) throw invalid(field, `'${text}' is not a positive number of seconds`);
  return n;
}

function ago(iso: string | undefined): string {
  if (!iso) return 'never';
  const s = Math.round((Date.now() - Date.parse(iso)) / 1000);
  return s < 120 ? `${s}s ago` : s < 7200 ? `${Math.round(s / 60)}m ago` : `${Math.round(s / 3600)}h ago`;
}

export function registerAgentCommands(program: Command, version: string): void {
  program
    .command('server')
    .description('the control plane: store, service, XAPI enforcement and sync, the HTTP API and the agent API')
    .requiredOption('--listen <addr:port>', 'where the API and the agents connect')
    .option('--tls-cert <file>', 'PEM certificate (with --tls-key): HTTPS')
    .option('--tls-key <file>', 'PEM private key')
    .option('--insecure-listen', 'allow plain HTTP on a non-loopback address')
    .option('--store <url>', 'sqlite:PATH or postgresql://... (default: --db / $IPVISOR_DB)')
    .option('--force', "let agents replace a desired state that came from another store (a replaced database)")
    .option('--interval <seconds>', 're-verify interval of XAPI enforcement', '5')
    .action(
      runAction(async (ctx, o: { listen: string; tlsCert?: string; tlsKey?: string; insecureListen?: boolean; store?: string; force?: boolean; interval: string }) => {
        const seconds = positiveSeconds(o.interval, 'interval');
        const http = await import('../../server/http.js');
        http.checkListenOptions(o);
        const store = await openServerStore(ctx, o.store);
        const [{ StoreControlPlane }, { agentRoutes }, { serve }, { logger, logText }] = await Promise.all([
          import('../../server/control-plane.js'),
          import('../../server/agent-http.js'),
          import('../../daemon/serve.js'),
          import('../../core/log.js'),
        ]);
        const log = logger('server');
        const say = (m: string) => logText(log, m);
        const controlPlane = new StoreControlPlane(store, { requireRegistration: true, force: !!o.force });
        const server = await http.startHttpServer({ store, listen: o.listen, tlsCert: o.tlsCert, tlsKey: o.tlsKey, insecureListen: o.insecureListen, plugins: [{ plugin: agentRoutes as never, options: { controlPlane, version } }] });
        say(`listening on ${server.url} (API /api/v1, agents /agent/v1)${o.force ? '; --force: agents accept a desired state from this store even if theirs came from another' : ''}`);
        const ac = new AbortController();
        const stop = () => ac.abort();
        process.once('SIGTERM', stop);
        process.once('SIGINT', stop);
        try {
          await serve({ store, actor: 'server', agent: false, intervalMs: seconds * 1000, log: say, signal: ac.signal });
        } finally {
          process.off('SIGTERM', stop);
          process.off('SIGINT', stop);
          controlPlane.close();
          await server.close();
        }
        return { json: { stopped: true }, text: 'stopped' };
      }),
    );

  program
    .command('agent')
    .description('on each hypervisor host: enforce what the control plane says, keep enforcing it when the control plane is gone')
    .option('--server <urls>', 'control plane URL(s), comma-separated, tried in turn')
    .option('--token-file <file>', "this host's agent token (ipvisor host add); re-read on SIGHUP")
    .option('--host <name>', 'this host (default: the hostname)')
    .option('--ca <file>', 'CA certificate (PEM) that signed the server certificate')
    .option('--pin <sha256>', "trust exactly this server certificate (its SHA-256 fingerprint) instead of a CA")
    .option('--state-dir <dir>', 'the host state (desired state copy, ledger)', undefined)
    .option('--insecure-http', 'allow plain HTTP to a server that is not on loopback')
    .option('--interval <seconds>', 're-verify (drift repair) interval', '5')
    .option('--teardown', 'remove everything this host enforces (after host remove) and exit')
    .option('--listen <addr:port>', 'serve Prometheus /metrics there (loopback only)')
    .action(
      runAction(async (ctx, o: { server?: string; tokenFile?: string; host?: string; ca?: string; pin?: string; stateDir?: string; insecureHttp?: boolean; interval: string; teardown?: boolean; listen?: string }) => {
        o.server ??= agentSideOption('server');
        o.tokenFile ??= agentSideOption('tokenFile');
        const seconds = positiveSeconds(o.interval, 'interval');
        const http = o.listen !== undefined ? await import('../../server/http.js') : undefined;
        if (http && o.listen !== undefined) {
          const { host: listenHost } = http.parseListen(o.listen);
          if (!http.isLoopback(listenHost)) throw invalid('listen', `${o.listen} is not a loopback address; the agent serves /metrics on loopback only (it has no tokens to check)`);
        }
        const [{ setThisHost, thisHost }, { openHostState }, { Agent, OFFLINE }, { logger, logText }] = await Promise.all([
          import('../../core/host-identity.js'),
          import('../../agent/state.js'),
          import('../../agent/agent.js'),
          import('../../core/log.js'),
        ]);
        if (o.host !== undefined) setThisHost(o.host);
        const host = thisHost();
        const stateDir = o.stateDir ?? ctx.io.env.IPVISOR_STATE_DIR ?? '/var/lib/ipvisor';
        const log = logger('agent');
        const say = (m: string) => logText(log, m);
        const local = openHostState(stateDir);
        if (o.teardown) {
          const agent = new Agent({ host, controlPlane: OFFLINE, local, log: say });
          const changes = await agent.teardown();
          const { unlinkSync } = await import('node:fs');
          const { join } = await import('node:path');
          try {
            unlinkSync(join(stateDir, 'agent.json'));
          } catch {
            /* not there */
          }
          return { json: { changes }, text: changes.length ? changes.map((c) => `${c.op} ${c.kind} ${c.target}`).join('\n') : 'Nothing to remove.' };
        }
        if (!o.server) throw invalid('server', '--server URL is required (or --teardown)');
        if (!o.tokenFile) throw invalid('token-file', '--token-file FILE is required');
        const { HttpControlPlane } = await import('../../agent/http-control-plane.js');
        const servers = o.server.split(',').map((s) => s.trim()).filter(Boolean);
        const controlPlane = new HttpControlPlane({ servers, tokenFile: o.tokenFile, caFile: o.ca, pin: o.pin, insecureHttp: o.insecureHttp });
        const agent = new Agent({ host, controlPlane, local, log: say, intervalMs: seconds * 1000, version });
        const [{ serveLocalSocket, writeAgentMarker }, { loadWatchers }] = await Promise.all([import('../../agent/local-socket.js'), import('../../drivers/index.js')]);
        writeAgentMarker({ host, servers, stateDir });
        const socket = await serveLocalSocket(agent);
        const metrics = http && o.listen !== undefined ? await http.startMetricsServer(o.listen) : undefined;
        if (metrics) say(`metrics: ${metrics.url}/metrics`);
        const ac = new AbortController();
        const stop = () => ac.abort();
        const hup = () => {
          try {
            controlPlane.reload();
            say('token file re-read');
          } catch (e) {
            say(`token file not re-read: ${(e as Error).message}`);
          }
        };
        process.once('SIGTERM', stop);
        process.once('SIGINT', stop);
        process.on('SIGHUP', hup);
        // the agent placement's watchers (nft monitor, libvirt events, guest push), as serve runs them
        const watchers = await loadWatchers(['agent']);
        const hostPort = agent.hostPort();
        for (const w of watchers) {
          await w
            .start({ host: hostPort, actor: `agent:${host}`, requestReconcile: (r) => agent.requestReconcile(r), log: (m) => say(`${w.name}: ${m}`), signal: ac.signal })
            .catch((e) => say(`${w.name}: not started: ${(e as Error).message}`));
        }
        say(`agent for host ${host}: servers ${servers.join(', ')}; state ${stateDir}; watchers: ${watchers.map((w) => w.name).join(', ')}`);
        try {
          await agent.run(ac.signal);
        } finally {
          process.off('SIGTERM', stop);
          process.off('SIGINT', stop);
          process.off('SIGHUP', hup);
          for (const w of watchers) await w.stop().catch(() => undefined);
          socket.close();
          await metrics?.close().catch(() => undefined);
          controlPlane.close();
        }
        return { json: { stopped: true }, text: 'stopped' };
      }),
    );

  const hostCmd = ensureCommand(program, 'host', 'hypervisor hosts: agents, their tokens, their default route');
  hostCmd
    .command('add <name>')
    .description("register a hypervisor host; prints its agent token once (stored hashed)")
    .option('--token-file <file>', 'write the token there (mode 0600) instead of printing it')
    .action(
      runAction(async (ctx, name: string, o: { tokenFile?: string }) => {
        o.tokenFile ??= agentSideOption('tokenFile');
        const { addHost } = await import('../../server/hosts.js');
        const { host, token } = await addHost(await ctx.store(), name, ctx.actor);
        if (o.tokenFile) writeFileSync(o.tokenFile, token + '\n', { mode: 0o600 });
        return { json: { ...host, token: o.tokenFile ? undefined : token, tokenFile: o.tokenFile }, text: o.tokenFile ? `host ${host.name} added; token written to ${o.tokenFile}` : `host ${host.name} added; agent token (shown once):\n${token}` };
      }),
    );
  hostCmd
    .command('list')
    .description('registered hosts: last seen, revision applied, drift, agent version')
    .action(
      runAction(async (ctx) => {
        const { listHosts } = await import('../../server/hosts.js');
        const hosts = await listHosts(await ctx.store());
        return {
          json: hosts,
          text: table(
            ['HOST', 'LAST SEEN', 'REVISION', 'STATUS', 'AGENT'],
            hosts.map((h) => [h.name, ago(h.lastSeen), String(h.applied?.revision ?? '-'), h.applied ? (h.applied.refused ? 'refused' : h.applied.ok ? 'ok' : `error: ${h.applied.error}`) : '-', h.agentVersion ?? '-']),
          ),
        };
      }),
    );
  hostCmd
    .command('show <name>')
    .description("one host: its agent's last report")
    .action(
      runAction(async (ctx, name: string) => {
        const { showHost } = await import('../../server/hosts.js');
        const h = await showHost(await ctx.store(), name);
        const a = h.applied;
        const lines = [`host ${h.name}`, `added ${h.createdAt}`, `last seen ${ago(h.lastSeen)}`, `agent ${h.agentVersion ?? '-'}`];
        if (a) lines.push(`revision ${a.revision} (store ${a.storeIdentity}): ${a.ok ? 'ok' : `error: ${a.error}`}, ${a.changes} change(s) in the last run${a.drift.length ? `, drift: ${a.drift.join('; ')}` : ''}${a.refused ? `\nrefused: ${a.refused}` : ''}`);
        return { json: h, text: lines.join('\n') };
      }),
    );
  hostCmd
    .command('remove <name>')
    .description('unregister a host; its agent keeps enforcing what it has (ipvisor agent --teardown cleans up)')
    .action(
      runAction(async (ctx, name: string) => {
        const { removeHost } = await import('../../server/hosts.js');
        const h = await removeHost(await ctx.store(), name, ctx.actor);
        return { json: h, text: `host ${h.name} removed` };
      }),
    );
  hostCmd
    .command('rotate-token <name>')
    .description("a new agent token for the host (the old one stops working); the agent re-reads its file on SIGHUP")
    .option('--token-file <file>', 'write the token there (mode 0600) instead of printing it')
    .action(
      runAction(async (ctx, name: string, o: { tokenFile?: string }) => {
        o.tokenFile ??= agentSideOption('tokenFile');
        const { rotateHostToken } = await import('../../server/hosts.js');
        const { host, token } = await rotateHostToken(await ctx.store(), name, ctx.actor);
        if (o.tokenFile) writeFileSync(o.tokenFile, token + '\n', { mode: 0o600 });
        return { json: { ...host, token: o.tokenFile ? undefined : token }, text: o.tokenFile ? `new token for ${host.name} written to ${o.tokenFile}` : `new agent token for ${host.name} (shown once):\n${token}` };
      }),
    );
}

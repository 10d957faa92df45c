// `ipvisor xapi ...` and `ipvisor import vif-ip-binder`.
import type { Command } from 'commander';
import { mkdirSync, readFileSync, statSync } from 'node:fs';
import { checkSecretTarget, writeSecretFile } from '../../core/model/secret-file.js';
import { dirname, join } from 'node:path';
import { collect, ensureCommand, keyValues, runAction, storeLocation, table } from '../context.js';
import { IpvisorError, invalid } from '../../core/model/errors.js';
import { addConnection, checkConnectionInput, connectionClient, getConnection, listConnections, removeConnection, setConnection, type XapiConnection } from '../../server/xapi/connections.js';
import { XapiPoolSync, type SyncReport } from '../../server/xapi/sync.js';
import { registerXapiGuestPush } from '../../server/xapi/guest-push.js';
import { convertVifIpBinderConfig, isVifIpBinderConfig, parseDom0Config, DOM0_DEFAULT_CONFIG_PATH } from '../../agent/dom0/config.js';

interface ConnectOpts {
  url: string;
  user: string;
  passwordFile: string;
  ca?: string;
  insecure?: boolean;
  insecureHttp?: boolean;
  owner?: boolean;
  check?: boolean;
  member?: string[];
}

function connectionRow(c: XapiConnection): Array<string | null> {
  return [c.name, c.url, c.user, c.passwordFile, c.ca ?? (c.insecure ? 'insecure' : null), c.owner ? 'yes' : 'no'];
}

/** Human summary; a first import of a big pool lists only the first objects (--json has all). */
function reportText(r: SyncReport, max = 40): string {
  const lines = [`${r.connection}: ${r.created.length} created, ${r.updated.length} updated, ${r.deleted.length} deleted, ${r.released.length} address(es) released`];
  const items = [...r.created.map((c) => `  + ${c}`), ...r.updated.map((c) => `  ~ ${c}`), ...r.deleted.map((c) => `  - ${c}`), ...r.released.map((a) => `  released ${a}`)];
  lines.push(...items.slice(0, max));
  if (items.length > max) lines.push(`  ... ${items.length - max} more (use --json for all)`);
  for (const e of r.errors) lines.push(`  error: ${e}`);
  return lines.join('\n');
}

export function registerXapiCommands(program: Command): void {
  // `guest push` on an XAPI VM goes through VIF.configure_ipv4/6 (src/agent/guest/push.ts seam); it needs
  // the store of the command being run.
  let location: string | undefined;
  program.hook('preAction', (_root, action) => {
    location = storeLocation(action.optsWithGlobals() as { db?: string; store?: string }, process.env);
  });
  registerXapiGuestPush(async () => {
    const { openStore } = await import('../../core/store/open.js');
    const store = await openStore(location, { create: false });
    return { store, close: () => store.close() };
  });

  const xapi = program.command('xapi').description('XCP-ng / XenServer pools (XAPI)');

  xapi
    .command('connect <name>')
    .description('remember a pool: its master URL, user and password FILE (the password is never stored)')
    .requiredOption('--url <url>', 'https://MASTER[:PORT] (a pool member redirects to the master)')
    .requiredOption('--user <user>', 'XAPI user')
    .requiredOption('--password-file <file>', 'file holding the password (mode 600)')
    .option('--ca <file>', 'PEM CA certificate of the pool')
    .option('--insecure', 'accept any TLS certificate (self-signed hosts)')
    .option('--insecure-http', 'accept an http:// URL: the password crosses the network in clear (test setups only)')
    .option('--owner', 'ipvisor owns VIF locking on this pool: foreign changes are corrected, not only reported')
    .option('--member <address>', 'another pool member to try when the master is unreachable (HA failover); repeatable', collect)
    .option('--no-check', 'do not log in to check the connection now')
    .action(
      runAction(async (ctx, name: string, opts: ConnectOpts) => {
        const input = { name, url: opts.url, user: opts.user, passwordFile: opts.passwordFile, ca: opts.ca, insecure: opts.insecure, insecureHttp: opts.insecureHttp, owner: opts.owner, members: opts.member };
        const conn = checkConnectionInput(input);
        let master = conn.url;
        if (opts.check !== false) {
          const client = connectionClient(conn);
          try {
            await client.login();
            master = client.url;
          } finally {
            await client.logout();
          }
        }
        // A member URL is replaced by the master's (same scheme and port).
        const stored = await addConnection(await ctx.store(), { ...input, url: master }, ctx.actor);
        return { json: stored, text: `connected '${stored.name}' to ${stored.url}` };
      }),
    );

  xapi
    .command('list')
    .description('list XAPI connections')
    .action(
      runAction(async (ctx) => {
        const conns = await listConnections(await ctx.store());
        return { json: conns, text: conns.length ? table(['NAME', 'URL', 'USER', 'PASSWORD-FILE', 'TLS', 'OWNER'], conns.map(connectionRow)) : 'no XAPI connections' };
      }),
    );

  xapi
    .command('disconnect <name>')
    .description('forget a connection (synced VMs, VIFs and networks stay in the store)')
    .action(
      runAction(async (ctx, name: string) => {
        const conn = await removeConnection(await ctx.store(), name, ctx.actor);
        return { json: conn, text: `disconnected '${conn.name}'` };
      }),
    );

  xapi
    .command('set <name>')
    .description('change a connection: ownership of VIF locking, password file')
    .option('--owner', 'ipvisor owns VIF locking: correct foreign changes')
    .option('--no-owner', 'only report foreign changes')
    .option('--password-file <file>', 'file holding the password (mode 600)')
    .action(
      runAction(async (ctx, name: string, opts: { owner?: boolean; passwordFile?: string }) => {
        const c = await setConnection(await ctx.store(), name, { owner: opts.owner, passwordFile: opts.passwordFile }, ctx.actor);
        return { json: c, text: `'${c.name}': owner ${c.owner ? 'yes' : 'no'}, password file ${c.passwordFile}` };
      }),
    );

  xapi
    .command('show <name>')
    .description('show one connection')
    .action(
      runAction(async (ctx, name: string) => {
        const c = await getConnection(await ctx.store(), name);
        return { json: c, text: keyValues([['name', c.name], ['url', c.url], ['user', c.user], ['password-file', c.passwordFile], ['ca', c.ca], ['insecure', c.insecure], ['owner', c.owner], ['members', c.members ?? []]]) };
      }),
    );

  xapi
    .command('sync [name]')
    .description('read pool, hosts, VMs, VIFs and networks into the store (all connections by default)')
    .action(
      runAction(async (ctx, name: string | undefined) => {
        const store = await ctx.store();
        const conns = name ? [await getConnection(store, name)] : await listConnections(store);
        if (conns.length === 0) throw invalid('name', 'no XAPI connection; add one with `ipvisor xapi connect`');
        const reports: SyncReport[] = [];
        for (const conn of conns) {
          const client = connectionClient(conn);
          try {
            reports.push(await new XapiPoolSync(store, conn, client, (l) => ctx.stderr(l)).full());
          } finally {
            await client.logout();
          }
        }
        const failed = reports.some((r) => r.errors.length > 0);
        return { json: reports, text: reports.map((r) => reportText(r)).join('\n'), exitCode: failed ? 1 : 0 };
      }),
    );

  xapi
    .command('dom0')
    .description('run the dom0 binder (in dom0): bind addresses to private-network bridges when their VM starts')
    .option('--config <file>', 'binder configuration', DOM0_DEFAULT_CONFIG_PATH)
    .option('--teardown', "undo what the binder recorded: its addresses and default routes, the management narrowing")
    .action(
      runAction(async (ctx, opts: { config: string; teardown?: boolean }) => {
        const { runDom0, teardownDom0 } = await import('../../agent/dom0/main.js');
        if (opts.teardown) {
          const done = await teardownDom0({ configPath: opts.config });
          return { json: { changes: done }, text: done.length ? done.join('\n') : 'Nothing to undo.' };
        }
        await runDom0({ configPath: opts.config, log: (l) => ctx.stderr(`${new Date().toISOString()} ipvisor-dom0: ${l}`) });
        return { json: { stopped: true }, text: '' };
      }),
    );

  const imp = ensureCommand(program, 'import', 'import configuration from other tools');
  imp
    .command('vif-ip-binder <file>')
    .description("convert vif-ip-binder.json into the dom0 binder's configuration (password moved to a mode-600 file)")
    .option('--out <file>', 'binder configuration to write', DOM0_DEFAULT_CONFIG_PATH)
    .option('--force', 'overwrite an existing configuration')
    .action(
      runAction(async (ctx, file: string, opts: { out: string; force?: boolean }) => {
        let raw: unknown;
        let sourceMode = 0;
        try {
          raw = JSON.parse(readFileSync(file, 'utf8'));
          sourceMode = statSync(file).mode;
        } catch (err) {
          // One line: JSON.parse quotes the offending text, newlines included.
          throw invalid('file', `cannot read ${file}: ${(err as NodeJS.ErrnoException).code ?? (err as Error).message.replace(/\s+/g, ' ').trim()}`);
        }
        if (!isVifIpBinderConfig(raw)) throw invalid('file', `${file} is not a vif-ip-binder.json (no vmName/sspnName/brName)`);
        const converted = convertVifIpBinderConfig(raw) as { xapi: { url: string; user: string; password?: string; passwordFile?: string } };
        const passwordFile = join(dirname(opts.out), 'dom0.password');
        // Both targets checked before anything is written: never an overwrite without --force,
        // never a write through a symbolic link.
        checkSecretTarget(opts.out, 'out', { force: opts.force });
        checkSecretTarget(passwordFile, 'password-file', { force: opts.force });
        const password = converted.xapi.password ?? '';
        delete converted.xapi.password;
        converted.xapi.passwordFile = passwordFile;
        const cfg = parseDom0Config(converted);
        mkdirSync(dirname(opts.out), { recursive: true, mode: 0o700 });
        writeSecretFile(passwordFile, `${password}\n`, 'password-file', { force: opts.force });
        writeSecretFile(opts.out, JSON.stringify(converted, null, 2) + '\n', 'out', { force: opts.force });
        if (password && (sourceMode & 0o044) !== 0) {
          ctx.stderr(`ipvisor: warning: ${file} holds the XAPI password in clear text and is readable by ${sourceMode & 0o004 ? 'everyone' : 'its group'} (mode ${(sourceMode & 0o777).toString(8)}); delete it or chmod 600 it (the password is now in ${passwordFile})`);
        }
        const b = cfg.bindings[0]!;
        return {
          json: { config: opts.out, passwordFile, bindings: cfg.bindings, management: cfg.management, netSRs: cfg.netSRs },
          text: `wrote ${opts.out} (password in ${passwordFile}): VM '${b.vm}' on '${b.network}' gets ${b.addresses.join(', ')}; run \`ipvisor xapi dom0 --config ${opts.out}\``,
        };
      }),
    );
}

// Who may use the API: tenants (with pools and quotas), tokens and password users.
import type { Command } from 'commander';
import { readFileSync } from 'node:fs';
import { invalid } from '../../core/model/errors.js';
import { createToken, createUser, deleteUser, listTokens, listUsers, revokeToken, rotateToken, showToken, type TokenView, type UserView } from '../../core/service/auth.js';
import { createTenant, deleteTenant, listTenants, setTenant, tenantRef, tenantUsage, type Tenant, type TenantUsage } from '../../core/service/tenants.js';
import { readSecretLine } from '../../core/model/secret-file.js';
import { collect, keyValues, runAction, table } from '../context.js';

/** "P1,P2" and repeated options both work. */
const splitList = (v: string[] | undefined) => v?.flatMap((x) => x.split(',')).map((x) => x.trim()).filter(Boolean);

export function registerAccessCommands(program: Command): void {
  const tenant = program.command('tenant').description('tenants: owners of VMs, with the pools they may use and their quotas');
  tenant.command('create <name>').description('create a tenant')
    .option('--pools <p1,p2>', 'pools the tenant may see and allocate from; repeatable', collect)
    .option('--quota <key=value>', 'POOL=N | family4=N | family6=N | routed-prefix=LEN; repeatable', collect)
    .action(runAction(async (ctx, name: string, o: { pools?: string[]; quota?: string[] }) => {
      const input = { name, pools: splitList(o.pools), quota: splitList(o.quota) };
      const t: Tenant = ctx.remote ? await ctx.remote.call('POST', '/tenants', { body: input }) : await createTenant(await ctx.store(), input, ctx.actor);
      return { json: t, text: `created tenant ${t.name}` };
    }));
  tenant.command('set <name>').description('change the pools (replaces the list) or quotas (KEY= removes one) of a tenant')
    .option('--pools <p1,p2>', 'pools the tenant may use; repeatable', collect)
    .option('--quota <key=value>', 'POOL=N | family4=N | family6=N | routed-prefix=LEN; repeatable', collect)
    .action(runAction(async (ctx, name: string, o: { pools?: string[]; quota?: string[] }) => {
      const ch = { pools: splitList(o.pools), quota: splitList(o.quota) };
      const t: Tenant = ctx.remote ? await ctx.remote.call('PATCH', `/tenants/${encodeURIComponent(name)}`, { body: ch }) : await setTenant(await ctx.store(), name, ch, ctx.actor);
      return { json: t, text: `updated tenant ${t.name}` };
    }));
  tenant.command('list').description('list tenants').action(runAction(async (ctx) => {
    const rows = ctx.remote
      ? await Promise.all((await ctx.remote.all<Tenant>('/tenants')).map(async (t) => ({ ...t, vms: (await ctx.remote!.call<{ vms: string[] }>('GET', `/tenants/${encodeURIComponent(t.name)}`)).vms.length })))
      : await (await ctx.store()).transaction(async (tx) => Promise.all((await listTenants(tx)).map(async (t) => ({ ...t, vms: (await tx.listVms()).filter((v) => v.owner === t.name).length }))));
    return { json: rows, text: rows.length ? table(['NAME', 'VMS', 'POOLS'], rows.map((t) => [t.name, t.vms, t.pools.length])) : 'no tenants' };
  }));
  tenant.command('show <name>').description('show a tenant with its quota usage').action(runAction(async (ctx, name: string) => {
    return (async () => {
      const shown: Tenant & { vms: string[]; usage: TenantUsage } = ctx.remote
        ? await ctx.remote.call('GET', `/tenants/${encodeURIComponent(name)}`)
        : await (await ctx.store()).transaction(async (tx) => {
          const t = await tenantRef(tx, name);
          return { ...t, vms: (await tx.listVms()).filter((v) => v.owner === t.name).map((v) => v.name), usage: await tenantUsage(tx, t) };
        });
      const { vms, usage, ...t } = shown;
      const q = (used: number, quota: number | null) => `${used}${quota === null ? '' : ` of ${quota}`}`;
      return {
        json: { ...t, vms, usage },
        text: keyValues([
          ['name', t.name], ['uuid', t.uuid], ['vms', vms],
          ['pools', usage.pools.map((p) => `${p.pool} (${q(p.used, p.quota)})`)],
          ['ipv4', q(usage.family4.used, usage.family4.quota)], ['ipv6', q(usage.family6.used, usage.family6.quota)],
          ['routed prefix', usage.routedPrefix === null ? null : `/${usage.routedPrefix} or smaller`],
        ]),
      };
    })();
  }));
  tenant.command('delete <name>').description('delete a tenant (refused while it owns VMs unless --force)')
    .option('--force', 'leave its VMs without owner')
    .action(runAction(async (ctx, name: string, o: { force?: boolean }) => {
      const r: { tenant: Tenant; disowned: string[] } = ctx.remote ? await ctx.remote.call('DELETE', `/tenants/${encodeURIComponent(name)}`, { query: { force: o.force } }) : await deleteTenant(await ctx.store(), name, { force: o.force }, ctx.actor);
      return { json: r, text: `deleted tenant ${r.tenant.name}${r.disowned.length ? `; ${r.disowned.join(', ')} now belong to no tenant` : ''}` };
    }));

  const token = program.command('token').description('API bearer tokens (the secret is shown once)');
  token.command('create').description('create a token and print its secret once')
    .requiredOption('--name <name>', 'token name (shown in the audit log)')
    .requiredOption('--role <role>', 'admin | operator | auditor | tenant | agent')
    .option('--tenant <tenant>', 'for role tenant: the tenant')
    .option('--host <host>', 'for role agent: the host it speaks for')
    .option('--expires <when>', 'duration (30d, 12h, 90m, 2w), ISO time, or never', 'never')
    .action(runAction(async (ctx, o: { name: string; role: string; tenant?: string; host?: string; expires: string }) => {
      const input = { name: o.name, role: o.role, tenant: o.tenant, host: o.host, expires: o.expires };
      const r: { token: string; record: TokenView } = ctx.remote
        ? await ctx.remote.call<TokenView & { token: string }>('POST', '/tokens', { body: input }).then(({ token, ...record }) => ({ token, record }))
        : await createToken(await ctx.store(), input, ctx.actor);
      return { json: { ...r.record, token: r.token }, text: `${r.token}\n(token ${r.record.name}, role ${r.record.role}${r.record.tenant ? ` of ${r.record.tenant}` : ''}; shown once, store it now)` };
    }));
  token.command('list').description('list tokens (never their secrets)').action(runAction(async (ctx) => {
    const list = ctx.remote ? await ctx.remote.all<TokenView>('/tokens') : await listTokens(await ctx.store());
    return { json: list, text: list.length ? table(['NAME', 'ROLE', 'TENANT', 'STATE', 'EXPIRES', 'LAST USED'], list.map((t) => [t.name, t.role, t.tenant ?? t.host, t.state, t.expiresAt, t.lastUsedAt])) : 'no tokens' };
  }));
  token.command('show <name>').description('show a token (never its secret)').action(runAction(async (ctx, name: string) => {
    const t: TokenView = ctx.remote ? await ctx.remote.call('GET', `/tokens/${encodeURIComponent(name)}`) : await showToken(await ctx.store(), name);
    return { json: t, text: keyValues(Object.entries(t)) };
  }));
  token.command('revoke <name>').description('revoke a token: it stops working at once').action(runAction(async (ctx, name: string) => {
    const t: TokenView = ctx.remote ? await ctx.remote.call('POST', `/tokens/${encodeURIComponent(name)}/revoke`) : await revokeToken(await ctx.store(), name, ctx.actor);
    return { json: t, text: `revoked token ${t.name}` };
  }));
  token.command('rotate <name>').description('a new secret for the same name, role and expiry (printed once); the old one stops working').action(runAction(async (ctx, name: string) => {
    const r: { token: string; record: TokenView } = ctx.remote
      ? await ctx.remote.call<TokenView & { token: string }>('POST', `/tokens/${encodeURIComponent(name)}/rotate`).then(({ token, ...record }) => ({ token, record }))
      : await rotateToken(await ctx.store(), name, ctx.actor);
    return { json: { ...r.record, token: r.token }, text: `${r.token}\n(token ${r.record.name} rotated; shown once, store it now)` };
  }));

  const user = program.command('user').description('password users for the web UI');
  user.command('create <name>').description('create a user; the password comes from --password-file, else one line on stdin')
    .requiredOption('--role <role>', 'admin | operator | auditor | tenant')
    .option('--tenant <tenant>', 'for role tenant: the tenant')
    .option('--password-file <file>', 'file holding the password')
    .action(runAction(async (ctx, name: string, o: { role: string; tenant?: string; passwordFile?: string }) => {
      const password = o.passwordFile ? readSecretLine(o.passwordFile, 'password-file') : readStdinLine();
      const input = { name, role: o.role, tenant: o.tenant, password };
      const u: UserView = ctx.remote ? await ctx.remote.call('POST', '/users', { body: input }) : await createUser(await ctx.store(), input, ctx.actor);
      return { json: u, text: `created user ${u.name} (${u.role})` };
    }));
  user.command('list').description('list users').action(runAction(async (ctx) => {
    const list = ctx.remote ? await ctx.remote.all<UserView>('/users') : await listUsers(await ctx.store());
    return { json: list, text: list.length ? table(['NAME', 'ROLE', 'TENANT'], list.map((u) => [u.name, u.role, u.tenant])) : 'no users' };
  }));
  user.command('delete <name>').description('delete a user and end its sessions').action(runAction(async (ctx, name: string) => {
    const u: UserView = ctx.remote ? await ctx.remote.call('DELETE', `/users/${encodeURIComponent(name)}`) : await deleteUser(await ctx.store(), name, ctx.actor);
    return { json: u, text: `deleted user ${u.name}` };
  }));
}

function readStdinLine(): string {
  let text: string;
  try {
    text = readFileSync(0, 'utf8');
  } catch {
    throw invalid('password', 'no --password-file and nothing on stdin');
  }
  const line = text.split('\n')[0].replace(/\r$/, '');
  if (!line) throw invalid('password', 'no --password-file and an empty line on stdin');
  return line;
}

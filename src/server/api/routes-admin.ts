// Tenants, tokens, users; the session of a password login (the web UI's) and "who am I".
import type { FastifyInstance } from 'fastify';
import { Type } from '@fastify/type-provider-typebox';
import { IpvisorError } from '../../core/model/errors.js';
import { createToken, createUser, deleteUser, listTokens, listUsers, login, logout, revokeToken, rotateToken, SESSION_TTL_MS, sessionPrincipal, showToken } from '../../core/service/auth.js';
import { createTenant, deleteTenant, findTenant, listTenants, setTenant, tenantRef, tenantUsage } from '../../core/service/tenants.js';
import { readCookie, SESSION_COOKIE, sessionCookie } from './access.js';
import * as S from './schemas.js';
import { etag, idempotent, ifMatch, page, type ApiOptions } from './index.js';

const E = S.errorResponses;

export async function registerAdminRoutes(app: FastifyInstance, opts: ApiOptions): Promise<void> {
  const { store } = opts;

  // ---- tenants ----
  const TenantBody = {
    pools: Type.Optional(Type.Array(Type.String(), { description: 'pool names or UUIDs the tenant may use (replaces the list)' })),
    quota: Type.Optional(Type.Array(Type.String(), { description: 'POOL=N, family4=N, family6=N, routed-prefix=LEN (KEY= removes one)' })),
  };
  app.get('/tenants', {
    config: { access: 'admin-read' },
    schema: { tags: ['tenants'], summary: 'list tenants', querystring: Type.Object(S.PageQuery), response: { 200: S.Page(S.Tenant), ...E(400, 401, 403) } },
  }, async (req) => page(await listTenants(store), req.query as { limit?: number; cursor?: string }, (t) => t.name));
  app.get('/tenants/:tenant', {
    config: { access: 'admin-read' },
    schema: { tags: ['tenants'], summary: 'a tenant with its VMs and quota usage', params: Type.Object({ tenant: Type.String() }), querystring: Type.Object(S.FieldsQuery), response: { 200: S.TenantDetail, ...E(401, 403, 404) } },
  }, async (req, reply) => store.transaction(async (tx) => {
    const t = await tenantRef(tx, (req.params as { tenant: string }).tenant);
    etag(reply, t);
    return { ...t, vms: (await tx.listVms()).filter((v) => v.owner === t.name).map((v) => v.name), usage: await tenantUsage(tx, t) };
  }));
  app.post('/tenants', {
    config: { access: 'admin-write' },
    schema: { tags: ['tenants'], summary: 'create a tenant', body: Type.Object({ name: Type.String(), ...TenantBody }, { additionalProperties: false }), response: { 201: S.Tenant, ...E(400, 401, 403, 404, 409) } },
  }, async (req, reply) => idempotent(store, req, reply, async () => {
    const t = await createTenant(store, req.body as never, req.actor);
    etag(reply, t);
    return { status: 201, body: t };
  }));
  app.patch('/tenants/:tenant', {
    config: { access: 'admin-write' },
    schema: { tags: ['tenants'], summary: "change a tenant's pools or quotas (If-Match: its ETag)", params: Type.Object({ tenant: Type.String() }), body: Type.Object(TenantBody, { additionalProperties: false }), response: { 200: S.Tenant, ...E(400, 401, 403, 404, 412) } },
  }, async (req, reply) => {
    const t = await setTenant(store, (req.params as { tenant: string }).tenant, { ...(req.body as object), ifMatch: ifMatch(req) }, req.actor);
    etag(reply, t);
    return t;
  });
  app.delete('/tenants/:tenant', {
    config: { access: 'admin-write' },
    schema: { tags: ['tenants'], summary: 'delete a tenant (refused while it owns VMs unless force)', params: Type.Object({ tenant: Type.String() }), querystring: Type.Object({ force: Type.Optional(Type.Boolean()) }), response: { 200: Type.Object({ tenant: S.Tenant, disowned: Type.Array(Type.String()) }), ...E(401, 403, 404, 409, 412) } },
  }, async (req) => deleteTenant(store, (req.params as { tenant: string }).tenant, { force: (req.query as { force?: boolean }).force, ifMatch: ifMatch(req) }, req.actor));

  // ---- tokens ----
  app.get('/tokens', {
    config: { access: 'admin-read' },
    schema: { tags: ['tokens'], summary: 'list tokens (never their secrets)', querystring: Type.Object(S.PageQuery), response: { 200: S.Page(S.TokenView), ...E(400, 401, 403) } },
  }, async (req) => page(await listTokens(store), req.query as { limit?: number; cursor?: string }, (t) => t.name));
  app.get('/tokens/:name', {
    config: { access: 'admin-read' },
    schema: { tags: ['tokens'], summary: 'a token (never its secret)', params: Type.Object({ name: Type.String() }), response: { 200: S.TokenView, ...E(401, 403, 404) } },
  }, async (req) => showToken(store, (req.params as { name: string }).name));
  app.post('/tokens', {
    config: { access: 'admin-write' },
    schema: {
      tags: ['tokens'], summary: 'create a token; the secret is in the answer and nowhere else',
      body: Type.Object({ name: Type.String(), role: S.Role, tenant: Type.Optional(Type.String()), host: Type.Optional(Type.String()), expires: Type.Optional(Type.String({ description: '30d, 12h, 90m, 2w, an ISO time, or never' })) }, { additionalProperties: false }),
      response: { 201: S.TokenWithSecret, ...E(400, 401, 403, 404, 409) },
    },
  }, async (req, reply) => {
    const r = await createToken(store, req.body as never, req.actor);
    reply.status(201);
    return { ...r.record, token: r.token };
  });
  app.post('/tokens/:name/revoke', {
    config: { access: 'admin-write' },
    schema: { tags: ['tokens'], summary: 'revoke a token', params: Type.Object({ name: Type.String() }), response: { 200: S.TokenView, ...E(401, 403, 404) } },
  }, async (req) => revokeToken(store, (req.params as { name: string }).name, req.actor));
  app.post('/tokens/:name/rotate', {
    config: { access: 'admin-write' },
    schema: { tags: ['tokens'], summary: 'a new secret for the same token (shown once)', params: Type.Object({ name: Type.String() }), response: { 200: S.TokenWithSecret, ...E(401, 403, 404) } },
  }, async (req) => {
    const r = await rotateToken(store, (req.params as { name: string }).name, req.actor);
    return { ...r.record, token: r.token };
  });

  // ---- users ----
  app.get('/users', {
    config: { access: 'admin-read' },
    schema: { tags: ['users'], summary: 'list users', querystring: Type.Object(S.PageQuery), response: { 200: S.Page(S.UserView), ...E(400, 401, 403) } },
  }, async (req) => page(await listUsers(store), req.query as { limit?: number; cursor?: string }, (u) => u.name));
  app.post('/users', {
    config: { access: 'admin-write' },
    schema: { tags: ['users'], summary: 'create a password user (web UI)', body: Type.Object({ name: Type.String(), role: S.Role, tenant: Type.Optional(Type.String()), password: Type.String({ minLength: 8, maxLength: 1024 }) }, { additionalProperties: false }), response: { 201: S.UserView, ...E(400, 401, 403, 404, 409) } },
  }, async (req, reply) => {
    const u = await createUser(store, req.body as never, req.actor);
    reply.status(201);
    return u;
  });
  app.delete('/users/:name', {
    config: { access: 'admin-write' },
    schema: { tags: ['users'], summary: 'delete a user and end its sessions', params: Type.Object({ name: Type.String() }), response: { 200: S.UserView, ...E(401, 403, 404) } },
  }, async (req) => deleteUser(store, (req.params as { name: string }).name, req.actor));

  // ---- session (web UI) and who am I ----
  app.post('/session', {
    config: { access: 'public', login: true },
    schema: {
      tags: ['session'], summary: 'log in with a password: sets the session cookie (HttpOnly, SameSite=Strict); send csrfToken as X-CSRF-Token on changes',
      security: [],
      body: Type.Object({ name: Type.String(), password: Type.String({ maxLength: 1024 }) }, { additionalProperties: false }),
      response: { 200: Type.Object({ principal: S.Principal, csrfToken: Type.String(), expiresAt: Type.String() }), ...E(400, 401, 429) },
    },
  }, async (req, reply) => {
    const body = req.body as { name: string; password: string };
    const s = await login(store, body.name, body.password);
    if (!s) throw new IpvisorError('UNAUTHORIZED', 'wrong user name or password');
    reply.header('set-cookie', sessionCookie(s.sessionId, { secure: opts.secureCookies, maxAgeSeconds: Math.floor(SESSION_TTL_MS / 1000) }));
    return { principal: s.principal, csrfToken: s.csrf, expiresAt: s.expiresAt };
  });
  app.delete('/session', {
    config: { access: 'self' },
    schema: { tags: ['session'], summary: 'log out: ends the session', response: { 200: Type.Object({ loggedOut: Type.Boolean() }), ...E(401) } },
  }, async (req, reply) => {
    const sid = readCookie(req, SESSION_COOKIE);
    if (sid) await logout(store, sid);
    reply.header('set-cookie', sessionCookie('', { secure: opts.secureCookies, maxAgeSeconds: 0 }));
    return { loggedOut: !!sid };
  });
  app.get('/me', {
    config: { access: 'self' },
    schema: { tags: ['session'], summary: 'who the credentials are, and for a tenant its pools and quota usage; for a session, its CSRF token (a reloaded page needs it again)', response: { 200: Type.Object({ principal: S.Principal, tenant: Type.Union([S.TenantDetail, Type.Null()]), csrfToken: Type.Optional(Type.String()) }), ...E(401) } },
  }, async (req) => {
    const sid = req.headers.authorization === undefined ? readCookie(req, SESSION_COOKIE) : undefined;
    const csrf = sid ? (await sessionPrincipal(store, sid))?.csrf : undefined;
    return store.transaction(async (tx) => {
    const p = req.principal!;
    const t = p.role === 'tenant' && p.tenant ? await findTenant(tx, p.tenant) : undefined;
    return {
      ...(csrf ? { csrfToken: csrf } : {}),
      principal: p,
      tenant: t ? { ...t, vms: (await tx.listVms()).filter((v) => v.owner === t.name).map((v) => v.name), usage: await tenantUsage(tx, t) } : null,
    };
    });
  });
}

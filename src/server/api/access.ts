// Authentication and authorisation in one place. Every route declares `config.access` (and
// `config.tenant` when tenants may use it); one onRequest hook authenticates the caller (bearer
// token or session cookie), checks the role against the declaration and sets request.principal and
// request.scope. Handlers never check roles; what a tenant sees is narrowed by the scope, which the
// service layer applies inside its transactions.
import type { FastifyInstance, FastifyReply, FastifyRequest, RouteOptions } from 'fastify';
import { IpvisorError } from '../../core/model/errors.js';
import { actorOf, authenticateToken, sessionPrincipal, type Principal, type Role } from '../../core/service/auth.js';
import type { Scope } from '../../core/service/tenants.js';
import { withRequestId } from '../../core/service/context.js';
import type { Store } from '../../core/store/store.js';

/**
 * - public: no credentials (the OpenAPI document, login)
 * - self: any authenticated caller (who am I, logout)
 * - read / write: networks, pools, VMs, VIFs, addresses, events, plan, status
 * - admin-read / admin-write: tenants, tokens, users
 * - agent: the control-plane routes of agents (scoped to their host by the agent helper)
 * - metrics: /metrics; no credentials when the request came in on a loopback listener (the socket's
 *   local address, not anything the client says), otherwise like admin-read (admin, auditor)
 */
export type Access = 'public' | 'self' | 'read' | 'write' | 'admin-read' | 'admin-write' | 'agent' | 'metrics';

declare module 'fastify' {
  interface FastifyContextConfig {
    access?: Access;
    /** The route serves tenants too (narrowed to their own objects through request.scope). */
    tenant?: boolean;
    /** A public route that checks credentials itself (login): rate limited like the others. */
    login?: boolean;
  }
  interface FastifyInstance {
    /** "METHOD URL" of every route, as registered (the authorisation matrix test walks it). */
    routeTable: string[];
  }
  interface FastifyRequest {
    principal: Principal | null;
    scope: Scope;
    /** The audit log's actor: token:NAME or user:NAME. */
    actor: string;
  }
}

const BASE: Record<Access, readonly Role[]> = {
  public: [],
  self: ['admin', 'operator', 'auditor', 'tenant', 'agent'],
  read: ['admin', 'operator', 'auditor'],
  write: ['admin', 'operator'],
  'admin-read': ['admin', 'auditor'],
  'admin-write': ['admin'],
  agent: ['admin', 'agent'],
  metrics: ['admin', 'auditor'],
};

/** Whether the connection arrived on a loopback address of this host (127.0.0.0/8, ::1, or
 * ::ffff:127.x on a dual-stack socket). No socket address (an in-process inject): not loopback. */
export function arrivedOnLoopback(localAddress: string | undefined): boolean {
  if (!localAddress) return false;
  const a = localAddress.toLowerCase();
  return a === '::1' || /^(::ffff:)?127\.\d{1,3}\.\d{1,3}\.\d{1,3}$/.test(a);
}

/** The roles a route admits: the whole authorisation rule. */
export function allowedRoles(access: Access, tenant: boolean): readonly Role[] {
  const roles = BASE[access];
  return tenant && (access === 'read' || access === 'write') ? [...roles, 'tenant'] : roles;
}

export const SESSION_COOKIE = 'ipvisor_session';
export const CSRF_HEADER = 'x-csrf-token';

export function readCookie(req: FastifyRequest, name: string): string | undefined {
  const header = req.headers.cookie;
  if (!header) return undefined;
  for (const part of header.split(';')) {
    const i = part.indexOf('=');
    if (i > 0 && part.slice(0, i).trim() === name) return decodeURIComponent(part.slice(i + 1).trim());
  }
  return undefined;
}

/** The session cookie: HttpOnly, SameSite=Strict, Secure when the server speaks TLS. */
export function sessionCookie(value: string, opts: { secure: boolean; maxAgeSeconds: number }): string {
  return `${SESSION_COOKIE}=${encodeURIComponent(value)}; Path=/; HttpOnly; SameSite=Strict${opts.secure ? '; Secure' : ''}; Max-Age=${opts.maxAgeSeconds}`;
}

/** Failed authentications per source address, in a sliding window; past the limit, 429. */
export class FailedAuthLimiter {
  private readonly failures = new Map<string, number[]>();
  constructor(readonly max = 10, readonly windowMs = 60_000) {}

  /** Seconds until the source may try again, or 0 when it may now. */
  retryAfter(source: string, at = Date.now()): number {
    const list = (this.failures.get(source) ?? []).filter((t) => at - t < this.windowMs);
    if (list.length) this.failures.set(source, list);
    else this.failures.delete(source);
    return list.length >= this.max ? Math.ceil((list[0] + this.windowMs - at) / 1000) : 0;
  }

  fail(source: string, at = Date.now()): void {
    const list = this.failures.get(source) ?? [];
    list.push(at);
    this.failures.set(source, list.slice(-this.max));
  }
}

const SAFE_METHODS = new Set(['GET', 'HEAD', 'OPTIONS']);

export interface AccessOptions {
  /** The users and tokens; none (the agent's metrics-only listener): nobody can authenticate. */
  store?: Store;
  limiter: FailedAuthLimiter;
}

async function authenticate(req: FastifyRequest, store: Store): Promise<Principal | 'csrf' | undefined> {
  const auth = req.headers.authorization;
  if (auth !== undefined) {
    const m = /^Bearer\s+(\S+)\s*$/i.exec(auth);
    return m ? authenticateToken(store, m[1]) : undefined;
  }
  const sid = readCookie(req, SESSION_COOKIE);
  if (sid) {
    const s = await sessionPrincipal(store, sid);
    if (!s) return undefined;
    // A cookie is sent by the browser on its own: a change needs the session's CSRF token too.
    if (!SAFE_METHODS.has(req.method) && req.headers[CSRF_HEADER] !== s.csrf) return 'csrf';
    return s.principal;
  }
  return undefined;
}

/** Installs the declaration check (at route registration) and the one access hook. */
export function installAccess(app: FastifyInstance, opts: AccessOptions): void {
  app.decorateRequest('principal', null);
  app.decorateRequest('scope', null as never);
  app.decorateRequest('actor', 'anonymous');

  const routeTable: string[] = [];
  app.decorate('routeTable', routeTable);
  app.addHook('onRoute', (route: RouteOptions) => {
    const access = route.config?.access;
    if (!access) throw new Error(`route ${route.method} ${route.url} declares no config.access`);
    for (const m of [route.method].flat()) if (m !== 'HEAD') routeTable.push(`${m} ${route.url}`);
    // Every handler runs with its request id, so audit events written below it carry it.
    const handler = route.handler;
    route.handler = function (this: unknown, req: FastifyRequest, reply: FastifyReply) {
      return withRequestId(req.id, () => handler.call(this as never, req, reply));
    } as typeof route.handler;
  });

  app.addHook('onRequest', async (req, reply) => {
    const config = req.routeOptions.config ?? {};
    // Unknown URLs (no declaration) need credentials like everything else: no route enumeration.
    const access: Access = config.access ?? 'self';
    req.scope = { tenant: null };
    if (access === 'public' && !config.login) return;
    // a scraper on the same host needs no token; anywhere else /metrics is like admin-read
    if (access === 'metrics' && arrivedOnLoopback(req.socket?.localAddress)) return;
    const source = req.ip;
    const wait = opts.limiter.retryAfter(source);
    if (wait > 0) {
      reply.header('retry-after', String(wait));
      throw new IpvisorError('RATE_LIMITED', `too many failed authentications from ${source}; retry in ${wait} s`);
    }
    if (access === 'public') return;
    const p = opts.store ? await authenticate(req, opts.store) : undefined;
    if (p === 'csrf') throw new IpvisorError('FORBIDDEN', `${CSRF_HEADER}: a change through a session needs the session's CSRF token`, { field: CSRF_HEADER });
    if (!p) {
      reply.header('www-authenticate', 'Bearer realm="ipvisor"');
      throw new IpvisorError('UNAUTHORIZED', 'authentication required: a valid bearer token or session');
    }
    if (!allowedRoles(access, config.tenant === true).includes(p.role)) {
      throw new IpvisorError('FORBIDDEN', `role ${p.role} may not ${req.method} ${req.routeOptions.url ?? req.url}`);
    }
    req.principal = p;
    req.actor = actorOf(p);
    req.scope = { tenant: p.role === 'tenant' ? p.tenant ?? '\u0000none' : null };
  });

  // Every 401 for credentials that were given (bad token, unknown session, bad password) counts
  // against its source; a request without any (a browser opening the login page) is no failed attempt.
  app.addHook('onResponse', async (req, reply) => {
    if (reply.statusCode !== 401) return;
    const presented = req.headers.authorization !== undefined || readCookie(req, SESSION_COOKIE) !== undefined || req.routeOptions.config?.login === true;
    if (presented) opts.limiter.fail(req.ip);
  });
}

// The one HTTP server builder: the API under /api/v1 with its OpenAPI document, authentication and
// the error mapping; other parts (web UI, metrics, the agent's control-plane routes) plug in through
// `plugins`. `ipvisor serve --listen` and `ipvisor server --listen` both start it with listenHttp().
import { randomUUID } from 'node:crypto';
import { readFileSync } from 'node:fs';
import { isIP } from 'node:net';
import Fastify, { type FastifyInstance, type FastifyPluginAsync } from 'fastify';
import swagger from '@fastify/swagger';
import type { TypeBoxTypeProvider } from '@fastify/type-provider-typebox';
import { IpvisorError, invalid } from '../core/model/errors.js';
import type { Store } from '../core/store/store.js';
import type { Enforcer } from '../core/enforcer.js';
import { FailedAuthLimiter, installAccess } from './api/access.js';
import { installErrorHandling } from './api/errors.js';
import { registerApi } from './api/index.js';
import { ErrorBody } from './api/schemas.js';
import { readSecretFile } from '../core/model/secret-file.js';
import { registerWebUi, securityHeaders } from './web/plugin.js';
import { installRequestMetrics, registerMetrics } from './metrics.js';

export interface TlsFiles {
  cert: string;
  key: string;
}

export interface HttpServerOptions {
  store: Store;
  /** PEM files: the server speaks HTTPS, and the session cookie is Secure. */
  tls?: TlsFiles;
  /** Largest request body in bytes (default 64 KiB). */
  bodyLimit?: number;
  /** Failed authentications per source and minute before 429 (default 10). */
  failedAuthLimit?: number;
  /** Extra routes and plugins (web UI, metrics, agent routes). Each route must declare
   * `config.access` like the API's own (see api/access.ts). */
  plugins?: Array<{ plugin: FastifyPluginAsync<any>; options?: Record<string, unknown> }>;
  /** The enforcers plan and status run (default: the registry's). */
  enforcers?: Enforcer[];
  logger?: boolean;
}

export type HttpServer = FastifyInstance;

const REQUEST_ID_RE = /^[A-Za-z0-9._:-]{1,100}$/;

export async function buildHttpServer(opts: HttpServerOptions): Promise<HttpServer> {
  const https = opts.tls ? { cert: readFileSync(opts.tls.cert), key: readSecretFile(opts.tls.key, 'tls-key') } : null;
  const app = Fastify({
    logger: opts.logger ?? false,
    bodyLimit: opts.bodyLimit ?? 64 * 1024,
    // A client's X-Request-Id is kept (it ends up in the audit log); otherwise a fresh UUID.
    genReqId: (req: { headers: Record<string, string | string[] | undefined> }) => {
      const given = req.headers['x-request-id'];
      return typeof given === 'string' && REQUEST_ID_RE.test(given) ? given : randomUUID();
    },
    ...(https ? { https } : {}),
    ajv: { customOptions: { removeAdditional: false, coerceTypes: 'array', useDefaults: true } },
  } as never).withTypeProvider<TypeBoxTypeProvider>() as unknown as FastifyInstance;

  installErrorHandling(app);
  // JSON bodies; an empty one (a DELETE sent with a JSON content type) is no body rather than an error.
  app.removeContentTypeParser('application/json');
  app.addContentTypeParser('application/json', { parseAs: 'string' }, (_req, body, done) => {
    if (body === '') return done(null, undefined);
    try {
      done(null, JSON.parse(body as string));
    } catch {
      done(new IpvisorError('VALIDATION', 'body: not valid JSON', { field: 'body' }), undefined);
    }
  });
  installAccess(app, { store: opts.store, limiter: new FailedAuthLimiter(opts.failedAuthLimit ?? 10) });
  installRequestMetrics(app);
  app.addHook('onSend', async (req, reply, payload) => {
    reply.header('x-request-id', req.id);
    // API answers are never cached; the web UI's assets say their own policy.
    if (!reply.hasHeader('cache-control')) reply.header('cache-control', 'no-store');
    return payload;
  });
  app.addSchema(ErrorBody);
  await app.register(swagger, {
    openapi: {
      openapi: '3.1.0',
      info: { title: 'ipvisor API', version: '1', description: 'IP address management and enforcement for virtual machines. Errors: docs/errors.md.' },
      components: { securitySchemes: { bearer: { type: 'http', scheme: 'bearer' }, session: { type: 'apiKey', in: 'cookie', name: 'ipvisor_session' } } },
      security: [{ bearer: [] }, { session: [] }],
    },
    refResolver: { buildLocalReference: (json, _base, _frag, i) => (typeof json.$id === 'string' ? json.$id : `def-${i}`) },
  });
  await app.register(registerApi, { prefix: '/api/v1', store: opts.store, secureCookies: !!https, enforcers: opts.enforcers });
  securityHeaders(app, { tls: !!https });
  await app.register(registerWebUi);
  await app.register(registerMetrics, { store: opts.store });
  for (const p of opts.plugins ?? []) await app.register(p.plugin, p.options ?? {});
  await app.ready();
  return app;
}

export const isLoopback = (host: string) => host === 'localhost' || host === '::1' || (isIP(host) === 4 && host.startsWith('127.'));

/** "ADDR:PORT", "[v6]:PORT" or ":PORT" (all addresses). */
export function parseListen(text: string): { host: string; port: number } {
  const m = /^(?:\[([^\]]+)\]|([^:]*)):(\d{1,5})$/.exec(text.trim());
  if (!m) throw invalid('listen', `'${text}' is not ADDR:PORT (127.0.0.1:8080, [::1]:8080, :8443)`);
  const host = m[1] ?? (m[2] || '::');
  const port = Number(m[3]);
  if (port > 65535) throw invalid('listen', `port ${port} is out of range`);
  if (host !== 'localhost' && !isIP(host)) throw invalid('listen', `'${host}' is not an IP address`);
  return { host, port };
}

/** Opens the port. Without TLS only loopback, unless insecure is said out loud. */
export async function listenHttp(app: HttpServer, listen: string, opts: { tls: boolean; insecure?: boolean }): Promise<string> {
  const { host, port } = parseListen(listen);
  if (!opts.tls && !opts.insecure && !isLoopback(host)) {
    throw new IpvisorError('VALIDATION', `listen: ${listen} is not a loopback address; serve TLS (--tls-cert, --tls-key) or say --insecure-listen`, { field: 'listen' });
  }
  await app.listen({ host, port });
  const addr = app.server.address();
  const bound = typeof addr === 'object' && addr ? `${addr.family === 'IPv6' ? `[${addr.address}]` : addr.address}:${addr.port}` : listen;
  return `${opts.tls ? 'https' : 'http'}://${bound}`;
}

export interface ListenOptions {
  listen: string;
  tlsCert?: string;
  tlsKey?: string;
  insecureListen?: boolean;
}

/** Checks --listen/--tls-cert/--tls-key/--insecure-listen before anything starts (exit 2 on a bad one). */
export function checkListenOptions(o: Partial<ListenOptions>): void {
  if ((o.tlsCert === undefined) !== (o.tlsKey === undefined)) throw invalid(o.tlsCert === undefined ? 'tls-cert' : 'tls-key', '--tls-cert and --tls-key go together');
  if (o.listen === undefined) {
    if (o.tlsCert !== undefined || o.insecureListen) throw invalid('listen', '--tls-cert, --tls-key and --insecure-listen need --listen ADDR:PORT');
    return;
  }
  const { host } = parseListen(o.listen);
  if (o.tlsCert === undefined && !o.insecureListen && !isLoopback(host)) {
    throw invalid('listen', `${o.listen} is not a loopback address; serve TLS (--tls-cert, --tls-key) or say --insecure-listen`);
  }
}

/** Builds and starts the server for `serve --listen` / `server --listen`; returns its URL and a stop. */
export async function startHttpServer(opts: Omit<HttpServerOptions, 'tls'> & ListenOptions): Promise<{ url: string; app: HttpServer; close: () => Promise<void> }> {
  checkListenOptions(opts);
  const tls = opts.tlsCert && opts.tlsKey ? { cert: opts.tlsCert, key: opts.tlsKey } : undefined;
  const app = await buildHttpServer({ ...opts, tls });
  const url = await listenHttp(app, opts.listen, { tls: !!tls, insecure: opts.insecureListen });
  return { url, app, close: () => app.close() };
}

/** `agent --listen`: /metrics only, through the same access hook. The agent holds no users or
 * tokens to check an admin or auditor token against, so it listens on loopback only (a scraper on
 * the host, or a local proxy); the API's own listeners take tokens off loopback. */
export async function startMetricsServer(listen: string): Promise<{ url: string; app: HttpServer; close: () => Promise<void> }> {
  const { host } = parseListen(listen);
  if (!isLoopback(host)) throw invalid('listen', `${listen} is not a loopback address; the agent serves /metrics on loopback only (it has no tokens to check)`);
  const app = Fastify({ logger: false }) as unknown as FastifyInstance;
  installErrorHandling(app);
  installAccess(app, { limiter: new FailedAuthLimiter(10) });
  installRequestMetrics(app);
  app.addSchema(ErrorBody);
  await app.register(registerMetrics, {});
  await app.ready();
  const url = await listenHttp(app, listen, { tls: false });
  return { url, app, close: () => app.close() };
}

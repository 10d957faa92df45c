// The web UI: static files (one HTML shell, one ES module, one stylesheet) served under / by
// `serve --listen` and `server --listen`. The page is a client of /api/v1 with a session cookie and
// has no route of its own that the API lacks. Every response of the listener gets the security
// headers (CSP without inline script, no framing, no sniffing), API and redirects included.
import { createHash } from 'node:crypto';
import { existsSync, readFileSync, readdirSync } from 'node:fs';
import { dirname, extname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import type { FastifyInstance } from 'fastify';
import { notFound } from '../../core/model/errors.js';

export const CONTENT_SECURITY_POLICY = [
  "default-src 'none'",
  "script-src 'self'",
  "style-src 'self'",
  "img-src 'self' data:",
  "connect-src 'self'",
  "form-action 'self'",
  "frame-ancestors 'none'",
  "base-uri 'none'",
].join('; ');

const TYPES: Record<string, string> = {
  '.html': 'text/html; charset=utf-8',
  '.js': 'text/javascript; charset=utf-8',
  '.css': 'text/css; charset=utf-8',
  '.svg': 'image/svg+xml',
};

interface Asset {
  body: Buffer;
  type: string;
  etag: string;
}

/** The assets folder: beside this file in the source tree, or src/server/web/assets from the package
 * root when running from the bundle in dist/. */
export function assetsDir(): string {
  let dir = dirname(fileURLToPath(import.meta.url));
  for (let i = 0; i < 5; i++) {
    for (const c of [join(dir, 'assets'), join(dir, 'src', 'server', 'web', 'assets')]) {
      if (existsSync(join(c, 'index.html'))) return c;
    }
    dir = dirname(dir);
  }
  throw new Error('web UI assets not found (src/server/web/assets)');
}

export function loadAssets(dir = assetsDir()): Map<string, Asset> {
  const out = new Map<string, Asset>();
  for (const name of readdirSync(dir)) {
    const type = TYPES[extname(name)];
    if (!type) continue;
    const body = readFileSync(join(dir, name));
    out.set(name, { body, type, etag: `"${createHash('sha256').update(body).digest('base64url').slice(0, 22)}"` });
  }
  return out;
}

export function securityHeaders(app: FastifyInstance, opts: { tls: boolean }): void {
  app.addHook('onSend', async (_req, reply, payload) => {
    reply.header('Content-Security-Policy', CONTENT_SECURITY_POLICY);
    reply.header('X-Content-Type-Options', 'nosniff');
    reply.header('X-Frame-Options', 'DENY');
    reply.header('Referrer-Policy', 'no-referrer');
    reply.header('Cross-Origin-Opener-Policy', 'same-origin');
    if (opts.tls) reply.header('Strict-Transport-Security', 'max-age=31536000');
    return payload;
  });
}

/** Registers / (the shell) and /assets/NAME. Assets are revalidated by ETag; the shell is never cached,
 * so a new version's script is picked up at once. */
export async function registerWebUi(app: FastifyInstance, opts: { assets?: Map<string, Asset> } = {}): Promise<void> {
  const assets = opts.assets ?? loadAssets();
  const send = (name: string, cache: string) => async (req: { headers: Record<string, string | string[] | undefined> }, reply: import('fastify').FastifyReply) => {
    const a = assets.get(name);
    if (!a) throw notFound('asset', name);
    reply.header('etag', a.etag).header('cache-control', cache).type(a.type);
    if (req.headers['if-none-match'] === a.etag) return reply.code(304).send();
    return reply.send(a.body);
  };
  const html = { 200: { description: 'the page', content: { 'text/html': { schema: { type: 'string' } } } }, 304: { description: 'not modified (ETag)' } };
  app.get('/', {
    config: { access: 'public' },
    schema: { tags: ['web UI'], summary: 'the web UI (a client of this API)', security: [], response: html },
  }, send('index.html', 'no-cache'));
  app.get<{ Params: { name: string } }>('/assets/:name', {
    config: { access: 'public' },
    schema: {
      tags: ['web UI'], summary: "the web UI's script and stylesheet", security: [], params: { type: 'object', properties: { name: { type: 'string' } }, required: ['name'] },
      response: { ...html, 200: { description: 'the asset', content: { 'text/javascript': { schema: { type: 'string' } }, 'text/css': { schema: { type: 'string' } } } }, 404: { $ref: 'Error' } },
    },
  }, async (req, reply) => {
    if (!/^[a-z0-9-]+\.(js|css|svg)$/.test(req.params.name)) throw notFound('asset', req.params.name);
    return send(req.params.name, 'public, max-age=300, must-revalidate')(req, reply);
  });
}

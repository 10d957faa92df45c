// /api/v1: one plugin per area; the conventions every area shares live here (pagination, ?fields=,
// ETag, Idempotency-Key replay).
import { createHash } from 'node:crypto';
import type { FastifyInstance, FastifyReply, FastifyRequest } from 'fastify';
import { IpvisorError } from '../../core/model/errors.js';
import { versionOf } from '../../core/service/context.js';
import type { Enforcer } from '../../core/enforcer.js';
import type { Store } from '../../core/store/store.js';
import { registerAdminRoutes } from './routes-admin.js';
import { registerIpamRoutes } from './routes-ipam.js';
import { registerOpsRoutes } from './routes-ops.js';
import { registerPoolMapRoutes } from './routes-pool-map.js';
import { registerHostRoutes } from './routes-hosts.js';

export interface ApiOptions {
  store: Store;
  secureCookies: boolean;
  enforcers?: Enforcer[];
}

export const DEFAULT_PAGE = 100;

/** Cursor pagination over a list sorted by `key` (unique per item): the cursor is the last key seen. */
export function page<T>(items: T[], q: { limit?: number; cursor?: string }, key: (t: T) => string): { items: T[]; nextCursor: string | null } {
  const sorted = items.map((t) => [key(t), t] as const).sort((a, b) => (a[0] < b[0] ? -1 : a[0] > b[0] ? 1 : 0));
  let after: string | undefined;
  if (q.cursor !== undefined) {
    try {
      after = Buffer.from(q.cursor, 'base64url').toString('utf8');
    } catch {
      after = undefined;
    }
    if (!after) throw new IpvisorError('VALIDATION', `cursor: '${q.cursor}' is not a cursor this server gave out`, { field: 'cursor' });
  }
  const rest = after === undefined ? sorted : sorted.filter(([k]) => k > after!);
  const limit = q.limit ?? DEFAULT_PAGE;
  const pageItems = rest.slice(0, limit);
  const more = rest.length > limit;
  return { items: pageItems.map(([, t]) => t), nextCursor: more ? Buffer.from(pageItems[pageItems.length - 1][0], 'utf8').toString('base64url') : null };
}

/** Sets the ETag of the record a route shows or changed (versionOf: what If-Match is checked against). */
export function etag(reply: FastifyReply, record: unknown): void {
  reply.header('etag', `"${versionOf(record)}"`);
}

export function ifMatch(req: FastifyRequest): string | undefined {
  const h = req.headers['if-match'];
  return typeof h === 'string' ? h : undefined;
}

function project(value: unknown, fields: string[]): unknown {
  if (!value || typeof value !== 'object' || Array.isArray(value)) return value;
  return Object.fromEntries(Object.entries(value).filter(([k]) => fields.includes(k)));
}

const DOC_IDEMPOTENCY = 'idempotency';
const IDEMPOTENCY_TTL_MS = 24 * 3600 * 1000;

/**
 * POST with an Idempotency-Key: the first answer is kept (per caller and key) and a repeat with the
 * same body gets it again instead of a second create; another body with the same key is refused.
 * Allocation does not come through here: its key is the allocation's own request id, kept in the
 * allocation's transaction.
 */
export async function idempotent<T>(store: Store, req: FastifyRequest, reply: FastifyReply, run: () => Promise<{ status: number; body: T }>): Promise<T> {
  const key = req.headers['idempotency-key'];
  if (typeof key !== 'string') {
    const r = await run();
    reply.status(r.status);
    return r.body;
  }
  if (key.length < 1 || key.length > 200) throw new IpvisorError('VALIDATION', 'Idempotency-Key: must be 1-200 characters', { field: 'Idempotency-Key' });
  const docKey = createHash('sha256').update(`${req.actor}\u0000${key}`).digest('hex');
  const fingerprint = createHash('sha256').update(`${req.method} ${req.url}\u0000${JSON.stringify(req.body ?? null)}`).digest('hex');
  const prior = await store.getDoc<{ fingerprint: string; status: number; body: T; at: string }>(DOC_IDEMPOTENCY, docKey);
  if (prior && Date.now() - Date.parse(prior.value.at) < IDEMPOTENCY_TTL_MS) {
    if (prior.value.fingerprint !== fingerprint) throw new IpvisorError('IDEMPOTENCY_MISMATCH', `Idempotency-Key: '${key}' was already used with another request`, { field: 'Idempotency-Key' });
    reply.status(prior.value.status).header('idempotent-replayed', 'true');
    return prior.value.body;
  }
  const r = await run();
  await store.putDoc(DOC_IDEMPOTENCY, docKey, { fingerprint, status: r.status, body: r.body, at: new Date().toISOString() });
  reply.status(r.status);
  return r.body;
}

export async function registerApi(app: FastifyInstance, opts: ApiOptions): Promise<void> {
  // ?fields=a,b: the response keeps only those top-level fields (of each item of a page).
  app.addHook('onSend', async (req, reply, payload) => {
    const fields = (req.query as { fields?: string } | undefined)?.fields;
    if (!fields || reply.statusCode >= 300 || typeof payload !== 'string') return payload;
    const list = fields.split(',').map((f) => f.trim()).filter(Boolean);
    const body = JSON.parse(payload) as Record<string, unknown>;
    const out = Array.isArray(body.items) ? { ...body, items: body.items.map((i) => project(i, list)) } : project(body, list);
    return JSON.stringify(out);
  });

  app.get('/openapi.json', { config: { access: 'public' }, schema: { hide: true } }, async () => app.swagger());

  await registerIpamRoutes(app, opts);
  await registerOpsRoutes(app, opts);
  await registerAdminRoutes(app, opts);
  await registerPoolMapRoutes(app, opts);
  await registerHostRoutes(app, opts);
}

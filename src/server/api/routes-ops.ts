// The audit log (JSON and a live server-sent-event stream), plan and status.
import type { FastifyInstance } from 'fastify';
import { Type } from '@fastify/type-provider-typebox';
import { enforcerStatus, runEnforcers, type EnforcerContext } from '../../core/enforcer.js';
import { invalid } from '../../core/model/errors.js';
import type { AuditEvent } from '../../core/model/types.js';
import { eventsPage, listEvents, tenantEventFilter } from '../../core/service/views.js';
import * as S from './schemas.js';
import type { ApiOptions } from './index.js';

const E = S.errorResponses;

/** Events per SSE batch; a client far behind catches up in several. */
const STREAM_BATCH = 500;
/** A comment line this often keeps proxies from closing an idle stream. */
const KEEPALIVE_MS = 15_000;

export async function registerOpsRoutes(app: FastifyInstance, opts: ApiOptions): Promise<void> {
  const { store } = opts;
  const enforcers = async () => opts.enforcers ?? (await import('../../drivers/index.js')).loadEnforcers();

  app.get('/events', {
    config: { access: 'read', tenant: true },
    schema: {
      tags: ['events'], summary: 'the audit log, oldest first (a tenant: events about its VMs, VIFs and addresses)',
      querystring: Type.Object({
        since: Type.Optional(Type.String({ description: 'ISO time or 30m, 2h, 7d' })), object: Type.Optional(Type.String()),
        actor: Type.Optional(Type.String({ maxLength: 200, description: 'only events by this actor (token:NAME, user:NAME, cli, ...)' })),
        after: Type.Optional(Type.Integer({ minimum: 0, description: 'only events with a greater id (the cursor)' })),
        limit: Type.Optional(Type.Integer({ minimum: 1, maximum: 1000 })), fields: S.PageQuery.fields,
        newest: Type.Optional(Type.Boolean({ description: 'the newest `limit` events (still oldest first), no cursor: what an audit page shows first' })),
      }),
      response: { 200: Type.Object({ items: Type.Array(S.AuditEvent), nextCursor: Type.Union([Type.String(), Type.Null()]) }), ...E(400, 401, 403) },
    },
  }, async (req) => {
    const q = req.query as { since?: string; object?: string; actor?: string; after?: number; limit?: number; newest?: boolean };
    const limit = q.limit ?? 100;
    // The store reads only the page asked for (newest: ORDER BY id DESC LIMIT), filters in SQL.
    const f = { since: q.since, object: q.object, actor: q.actor || undefined, afterId: q.after, limit };
    if (q.newest) return { items: await store.transaction((tx) => listEvents(tx, f, req.scope)), nextCursor: null };
    const { items, more } = await store.transaction((tx) => eventsPage(tx, f, req.scope));
    return { items, nextCursor: more ? String(items[items.length - 1].id) : null };
  });

  app.get('/events/stream', {
    config: { access: 'read', tenant: true },
    schema: {
      tags: ['events'], summary: 'live audit events as server-sent events (text/event-stream); resumes after Last-Event-ID (the event id)',
      querystring: Type.Object({ after: Type.Optional(Type.Integer({ minimum: 0, description: 'start after this event id (else Last-Event-ID, else now)' })) }),
      response: { 200: Type.String({ description: 'text/event-stream: id: EVENT_ID, event: audit, data: the event as JSON' }), ...E(400, 401, 403) },
    },
  }, async (req, reply) => {
    const q = req.query as { after?: number };
    const header = req.headers['last-event-id'];
    // Without a starting point the stream starts now (the first events at or after this time).
    let last: number | undefined;
    const startedAt = new Date().toISOString();
    if (q.after !== undefined) last = q.after;
    else if (typeof header === 'string' && header !== '') {
      if (!/^\d+$/.test(header)) throw invalid('Last-Event-ID', `'${header}' is not an event id`);
      last = Number(header);
    }
    const scope = req.scope;
    reply.hijack();
    const res = reply.raw;
    res.writeHead(200, { 'content-type': 'text/event-stream; charset=utf-8', 'cache-control': 'no-store', connection: 'keep-alive', 'x-request-id': req.id });
    res.write(': ipvisor audit events\n\n');
    let closed = false;
    let pending = false;
    let running = false;
    const send = async (): Promise<void> => {
      if (running) { pending = true; return; }
      running = true;
      try {
        do {
          pending = false;
          let batch: AuditEvent[];
          do {
            // Ids grow in commit order (one writer at a time), so "after the last id sent" has no gaps.
            batch = await store.transaction(async (tx) => {
              const list = await tx.listEvents(last === undefined ? { since: startedAt, limit: STREAM_BATCH } : { afterId: last, limit: STREAM_BATCH });
              const visible = await tenantEventFilter(tx, scope);
              return list.map((e) => ({ e, show: !visible || visible(e) })).map(({ e, show }) => (show ? e : ({ ...e, hidden: true } as AuditEvent & { hidden: true })));
            });
            for (const e of batch) {
              if (closed) return;
              last = e.id;
              if ((e as { hidden?: boolean }).hidden) continue;
              res.write(`id: ${e.id}\nevent: audit\ndata: ${JSON.stringify(e)}\n\n`);
            }
          } while (batch.length === STREAM_BATCH && !closed);
        } while (pending && !closed);
      } catch (err) {
        if (!closed) res.write(`event: error\ndata: ${JSON.stringify({ error: { code: 'STORE_UNAVAILABLE', message: (err as Error).message, field: null } })}\n\n`);
      } finally {
        running = false;
      }
    };
    const stopWatch = store.watch(() => void send());
    const keepalive = setInterval(() => { res.write(': keepalive\n\n'); void send(); }, KEEPALIVE_MS);
    req.raw.on('close', () => {
      closed = true;
      stopWatch();
      clearInterval(keepalive);
    });
    await send();
  });

  const PlanChange = Type.Object({ op: Type.String(), kind: Type.String(), target: Type.String(), detail: Type.Optional(Type.String()), enforcer: Type.String() });
  const ctx = (actor: string, warnings: string[], dryRun: boolean): EnforcerContext => ({
    store, actor, dryRun, log: (m) => { if (m.startsWith('warning: ')) warnings.push(m.slice('warning: '.length)); },
  });
  app.get('/plan', {
    config: { access: 'read' },
    schema: { tags: ['host'], summary: 'what apply would change on the hosts this server enforces (nothing is applied)', response: { 200: Type.Object({ changes: Type.Array(PlanChange), warnings: Type.Array(Type.String()) }), ...E(401, 403) } },
  }, async (req) => {
    const warnings: string[] = [];
    const changes = await runEnforcers(await enforcers(), ctx(req.actor, warnings, true), 'plan');
    return { changes, warnings };
  });
  app.get('/status', {
    config: { access: 'read' },
    schema: { tags: ['host'], summary: 'per enforcer: effective locking, allowed addresses, drift', response: { 200: Type.Record(Type.String(), Type.Unknown()), ...E(401, 403) } },
  }, async (req) => enforcerStatus(await enforcers(), ctx(req.actor, [], true)));
}

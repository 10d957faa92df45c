// Hypervisor hosts as their agents last reported them (the control plane's records): last seen,
// agent version, the revision applied, drift (the differences still pending: the host's plan) and
// warnings. Read-only here; hosts are added and removed with `ipvisor host add|remove`.
import type { FastifyInstance } from 'fastify';
import { Type } from '@fastify/type-provider-typebox';
import { listHosts, showHost } from '../hosts.js';
import * as S from './schemas.js';
import { page, type ApiOptions } from './index.js';

const E = S.errorResponses;
const Applied = Type.Object({
  revision: Type.Integer(), digest: Type.String(), storeIdentity: Type.String(), ok: Type.Boolean(), error: Type.Optional(Type.String()),
  changes: Type.Integer(), drift: Type.Array(Type.String()), warnings: Type.Array(Type.String()), refused: Type.Optional(Type.String()),
  agentVersion: Type.String(), at: Type.String(),
});
const Host = Type.Object({
  name: Type.String(), createdAt: Type.String(), tokenRotatedAt: Type.Optional(Type.String()), lastSeen: Type.Optional(Type.String()),
  agentVersion: Type.Optional(Type.String()), applied: Type.Optional(Applied),
});

export async function registerHostRoutes(app: FastifyInstance, opts: ApiOptions): Promise<void> {
  const { store } = opts;
  app.get('/hosts', {
    config: { access: 'read' },
    schema: { tags: ['hosts'], summary: 'registered hypervisor hosts with their agents\' last report', querystring: Type.Object(S.PageQuery), response: { 200: S.Page(Host), ...E(400, 401, 403) } },
  }, async (req) => page(await listHosts(store), req.query as { limit?: number; cursor?: string }, (h) => h.name));
  app.get('/hosts/:host', {
    config: { access: 'read' },
    schema: { tags: ['hosts'], summary: "one host: its agent's last report (revision applied, drift still pending, warnings)", params: Type.Object({ host: Type.String() }), response: { 200: Host, ...E(400, 401, 403, 404) } },
  }, async (req) => showHost(store, (req.params as { host: string }).host));
}

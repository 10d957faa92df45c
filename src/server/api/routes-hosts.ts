// Hypervisor hosts as their agents last reported them (the control plane's records): last seen,
// agent version, the revision applied, drift (the differences still pending: the host's plan) and
// warnings; registering a host (its agent token, shown once), removing it, a new token. Agent
// tokens are credentials: admin only, as API tokens are.
import type { FastifyInstance } from 'fastify';
import { Type } from '@fastify/type-provider-typebox';
import { addHost, getHostGateway, listHosts, removeHost, rotateHostToken, setHostGateway, showHost, unsetHostGateway } from '../../core/service/hosts.js';
import * as S from './schemas.js';
import { idempotent, page, type ApiOptions } from './index.js';

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
  const WithToken = Type.Intersect([Host, Type.Object({ token: Type.String({ description: "the agent's token, shown once (stored hashed)" }) })]);
  app.post('/hosts', {
    config: { access: 'admin-write' },
    schema: { tags: ['hosts'], summary: 'register a hypervisor host; answers its agent token once', body: Type.Object({ name: Type.String() }, { additionalProperties: false }), response: { 201: WithToken, ...E(400, 401, 403, 409) } },
  }, async (req, reply) => idempotent(store, req, reply, async () => {
    const { host, token } = await addHost(store, (req.body as { name: string }).name, req.actor);
    return { status: 201, body: { ...host, token } };
  }));
  app.post('/hosts/:host/rotate-token', {
    config: { access: 'admin-write' },
    schema: { tags: ['hosts'], summary: "a new agent token for the host (the old one stops working); answered once", params: Type.Object({ host: Type.String() }), response: { 200: WithToken, ...E(400, 401, 403, 404) } },
  }, async (req) => {
    const { host, token } = await rotateHostToken(store, (req.params as { host: string }).host, req.actor);
    return { ...host, token };
  });
  app.delete('/hosts/:host', {
    config: { access: 'admin-write' },
    schema: { tags: ['hosts'], summary: 'unregister a host; its agent keeps enforcing what it has (ipvisor agent --teardown cleans up)', params: Type.Object({ host: Type.String() }), response: { 200: Host, ...E(400, 401, 403, 404) } },
  }, async (req) => removeHost(store, (req.params as { host: string }).host, req.actor));

  // a host's own default route (`ipvisor host gateway`): any host name, registered or not (the one
  // box of `serve` is not); changing it is host configuration, so admin only
  const HostParam = Type.Object({ host: Type.String() });
  const GatewaySetting = Type.Object({
    via: Type.String(),
    whenUp: Type.Union([Type.String(), Type.Null()], { description: "UUID of the network whose bridge must be up first, or null" }),
    metric: Type.Integer(),
  });
  const Gateway = Type.Object({ host: Type.String(), gateway: Type.Union([GatewaySetting, Type.Null()]) });
  app.get('/hosts/:host/gateway', {
    config: { access: 'read' },
    schema: { tags: ['hosts'], summary: "ipvisor's default route setting of a host (null when none)", params: HostParam, response: { 200: Gateway, ...E(400, 401, 403) } },
  }, async (req) => getHostGateway(store, (req.params as { host: string }).host));
  app.put('/hosts/:host/gateway', {
    config: { access: 'admin-write' },
    schema: {
      tags: ['hosts'], summary: "set a host's default route (proto ipvisor, preferred metric; never replaces the user's); the host's agent applies it",
      params: HostParam,
      body: Type.Object({
        via: Type.String({ description: 'next hop' }),
        whenUp: Type.Optional(Type.Union([Type.String(), Type.Null()], { description: "network (name or UUID) whose bridge must be up with a same-family address first" })),
        metric: Type.Optional(Type.Integer({ minimum: 0, maximum: 0xffffffff })),
      }, { additionalProperties: false }),
      response: { 200: Type.Object({ host: Type.String(), gateway: GatewaySetting }), ...E(400, 401, 403, 404) },
    },
  }, async (req) => {
    const body = req.body as { via: string; whenUp?: string | null; metric?: number };
    return setHostGateway(store, { host: (req.params as { host: string }).host, ...body }, req.actor);
  });
  app.delete('/hosts/:host/gateway', {
    config: { access: 'admin-write' },
    schema: { tags: ['hosts'], summary: "remove a host's default route setting (unset: whether there was one)", params: HostParam, response: { 200: Type.Object({ host: Type.String(), unset: Type.Boolean() }), ...E(400, 401, 403) } },
  }, async (req) => unsetHostGateway(store, (req.params as { host: string }).host, req.actor));
}

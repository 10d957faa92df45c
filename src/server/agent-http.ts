// The agent-facing HTTP routes of `ipvisor server` (the HTTP adapter of the ControlPlane port, server
// side). Authority follows the token, checked here in one place: a host's agent token reads only that
// host's desired state and reports facts only for that host; anything else is 403 and changes nothing.
//   GET  /agent/v1/hosts/:host/desired?digest=D&revision=R&store=ID&wait=MS[&full=1]
//        -> DesiredAnswer (long-poll): unchanged, a delta since R (same store), or a snapshot
//   POST /agent/v1/hosts/:host/applied                     <- AppliedReport
//   POST /agent/v1/hosts/:host/facts                       <- { facts: HostFact[] }
//   GET  /agent/v1/version                                 -> { protocol, version } (no token)
import type { FastifyInstance, FastifyReply, FastifyRequest } from 'fastify';
import type { AppliedReport, HostFact } from '../core/control-plane.js';
import { AGENT_PROTOCOL, compatible } from '../core/control-plane.js';
import { IpvisorError, invalid } from '../core/model/errors.js';
import { parseHostFact, validateName } from '../core/model/validate.js';
import type { StoreControlPlane } from './control-plane.js';
import { HostTokens } from './hosts.js';

export const PROTOCOL_HEADER = 'x-ipvisor-protocol';
const MAX_WAIT_MS = 60_000;

/**
 * The agent routes as a plugin of the HTTP server (src/server/http.ts): one port serves the API and
 * the agents. The routes are `access: 'public'` for the API's hook because agent tokens are host
 * tokens (host add), checked here, in this one place, against the host in the path.
 */
export async function agentRoutes(app: FastifyInstance, opts: { controlPlane: StoreControlPlane; version: string }): Promise<void> {
  const cp = opts.controlPlane;
  const tokens = new HostTokens(cp.store);

  /** Version, token and host scope: the whole authorisation rule of the agent API. */
  const authorise = async (req: FastifyRequest<{ Params: { host: string } }>, reply: FastifyReply): Promise<string> => {
    reply.header(PROTOCOL_HEADER, AGENT_PROTOCOL);
    const c = compatible(String(req.headers[PROTOCOL_HEADER] ?? '0.0'), AGENT_PROTOCOL);
    if (!c.ok) throw new IpvisorError('VERSION_MISMATCH', c.why);
    const auth = String(req.headers.authorization ?? '');
    const token = auth.startsWith('Bearer ') ? auth.slice(7).trim() : '';
    const owner = token ? await tokens.hostOf(token) : undefined;
    if (!owner) throw new IpvisorError('UNAUTHORIZED', 'token: missing, unknown or rotated agent token');
    const host = validateName(req.params.host, 'host');
    if (host !== owner) throw new IpvisorError('FORBIDDEN', `host: this token belongs to host ${owner}, not ${host}`);
    return host;
  };
  const config = { access: 'public' as const };

  app.get('/agent/v1/version', { config }, async (_req, reply) => {
    reply.header(PROTOCOL_HEADER, AGENT_PROTOCOL);
    return { protocol: AGENT_PROTOCOL, version: opts.version };
  });

  app.get<{ Params: { host: string }; Querystring: { digest?: string; wait?: string; revision?: string; store?: string; full?: string } }>('/agent/v1/hosts/:host/desired', { config }, async (req, reply) => {
    const host = await authorise(req, reply);
    const wait = Math.min(Number(req.query.wait ?? 0) || 0, MAX_WAIT_MS);
    let revision: number | undefined;
    if (req.query.revision !== undefined) {
      revision = Number(req.query.revision);
      if (!/^\d{1,15}$/.test(req.query.revision) || !Number.isSafeInteger(revision)) throw invalid('revision', 'a revision number');
    }
    const ac = new AbortController();
    req.raw.on('close', () => ac.abort());
    reply.raw.on('close', () => ac.abort());
    const answer = await cp.desiredState(host, { digest: req.query.digest, revision, storeIdentity: req.query.store, full: req.query.full === '1', waitMs: wait, signal: ac.signal });
    return reply.status(answer.kind === 'removed' ? 410 : 200).send(answer);
  });

  app.post<{ Params: { host: string }; Body: AppliedReport }>('/agent/v1/hosts/:host/applied', { config, bodyLimit: 1024 * 1024 }, async (req, reply) => {
    const host = await authorise(req, reply);
    const body = req.body;
    if (!body || typeof body !== 'object' || typeof body.revision !== 'number') throw invalid('body', 'an applied report');
    await cp.reportApplied(host, body);
    return { ok: true };
  });

  app.post<{ Params: { host: string }; Body: { facts?: HostFact[] } }>('/agent/v1/hosts/:host/facts', { config, bodyLimit: 8 * 1024 * 1024 }, async (req, reply) => {
    const host = await authorise(req, reply);
    const facts = req.body?.facts;
    if (!Array.isArray(facts)) throw invalid('facts', 'an array');
    // all or nothing: one bad fact, or one about another host, refuses the whole report
    const parsed = facts.map((f, i) => {
      const fact = parseHostFact(f, `facts[${i}]`);
      if (fact.host !== host) throw new IpvisorError('FORBIDDEN', `facts: host ${host}'s token cannot report for host ${fact.host}`);
      return fact;
    });
    await cp.reportFacts(host, parsed);
    return { ok: true, accepted: facts.length };
  });
}

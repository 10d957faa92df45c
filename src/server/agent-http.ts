// The agent-facing HTTP routes of `ipvisor server` (the HTTP adapter of the ControlPlane port, server
// side). Authority follows the token, checked here in one place: a host's agent token reads only that
// host's desired state and reports facts only for that host; anything else is 403 and changes nothing.
//   GET  /agent/v1/hosts/:host/desired?digest=D&wait=MS   -> DesiredAnswer (long-poll)
//   POST /agent/v1/hosts/:host/applied                     <- AppliedReport
//   POST /agent/v1/hosts/:host/facts                       <- { facts: HostFact[] }
//   GET  /agent/v1/version                                 -> { protocol, version } (no token)
import { createServer as createHttpServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import { createServer as createHttpsServer } from 'node:https';
import { readFileSync } from 'node:fs';
import type { AddressInfo } from 'node:net';
import type { AppliedReport, HostFact } from '../core/control-plane.js';
import { AGENT_PROTOCOL, compatible } from '../core/control-plane.js';
import { IpvisorError, asIpvisorError, invalid } from '../core/model/errors.js';
import { validateName } from '../core/model/validate.js';
import type { StoreControlPlane } from './control-plane.js';
import { HostTokens } from './hosts.js';
import { readSecretFile } from '../core/model/secret-file.js';

export const PROTOCOL_HEADER = 'x-ipvisor-protocol';
const MAX_BODY = 8 * 1024 * 1024;
const MAX_WAIT_MS = 60_000;

export interface AgentHttpOptions {
  controlPlane: StoreControlPlane;
  listen: { host: string; port: number };
  tls?: { cert: string; key: string };
  /** Plain HTTP on a non-loopback address needs this (--insecure-listen). */
  insecure?: boolean;
  version: string;
  log?(msg: string): void;
}

export function isLoopback(host: string): boolean {
  return host === 'localhost' || host === '::1' || /^127\./.test(host);
}

class HttpError extends Error {
  constructor(readonly status: number, readonly code: string, message: string) {
    super(message);
  }
}

async function readJson(req: IncomingMessage): Promise<unknown> {
  const chunks: Buffer[] = [];
  let size = 0;
  for await (const c of req) {
    size += (c as Buffer).length;
    if (size > MAX_BODY) throw new HttpError(413, 'VALIDATION', 'body: larger than 8 MiB');
    chunks.push(c as Buffer);
  }
  try {
    return JSON.parse(Buffer.concat(chunks).toString('utf8') || 'null');
  } catch {
    throw new HttpError(400, 'VALIDATION', 'body: not JSON');
  }
}

function send(res: ServerResponse, status: number, body: unknown): void {
  const text = JSON.stringify(body);
  res.writeHead(status, { 'content-type': 'application/json', 'content-length': Buffer.byteLength(text), [PROTOCOL_HEADER]: AGENT_PROTOCOL });
  res.end(text);
}

export interface AgentHttpServer {
  server: Server;
  url: string;
  close(): Promise<void>;
}

export async function startAgentHttp(opts: AgentHttpOptions): Promise<AgentHttpServer> {
  if (!opts.tls && !opts.insecure && !isLoopback(opts.listen.host)) {
    throw invalid('listen', `plain HTTP on ${opts.listen.host} is readable by anyone on the network: give --tls-cert and --tls-key, or --insecure-listen`);
  }
  const cp = opts.controlPlane;
  const tokens = new HostTokens(cp.store);
  const inflight = new Set<AbortController>();

  const handle = async (req: IncomingMessage, res: ServerResponse): Promise<void> => {
    const url = new URL(req.url ?? '/', 'http://agent');
    if (req.method === 'GET' && url.pathname === '/agent/v1/version') return send(res, 200, { protocol: AGENT_PROTOCOL, version: opts.version });
    const m = /^\/agent\/v1\/hosts\/([^/]+)\/(desired|applied|facts)$/.exec(url.pathname);
    if (!m) throw new HttpError(404, 'NOT_FOUND', `no route ${req.method} ${url.pathname}`);
    const agentProtocol = String(req.headers[PROTOCOL_HEADER] ?? '');
    const c = compatible(agentProtocol || '0.0', AGENT_PROTOCOL);
    if (!c.ok) throw new HttpError(426, 'VERSION_MISMATCH', c.why);
    const auth = String(req.headers.authorization ?? '');
    const token = auth.startsWith('Bearer ') ? auth.slice(7).trim() : '';
    const owner = token ? await tokens.hostOf(token) : undefined;
    if (!owner) throw new HttpError(401, 'UNAUTHORIZED', 'token: missing, unknown or rotated agent token');
    let host: string;
    try {
      host = validateName(decodeURIComponent(m[1]), 'host');
    } catch (e) {
      throw new HttpError(400, 'VALIDATION', (e as Error).message);
    }
    if (host !== owner) throw new HttpError(403, 'FORBIDDEN', `host: this token belongs to host ${owner}, not ${host}`);

    if (m[2] === 'desired' && req.method === 'GET') {
      const wait = Math.min(Number(url.searchParams.get('wait') ?? 0) || 0, MAX_WAIT_MS);
      const ac = new AbortController();
      inflight.add(ac);
      res.on('close', () => ac.abort());
      try {
        const answer = await cp.desiredState(host, { digest: url.searchParams.get('digest') ?? undefined, waitMs: wait, signal: ac.signal });
        if (!res.destroyed) send(res, answer.kind === 'removed' ? 410 : 200, answer);
      } finally {
        inflight.delete(ac);
      }
      return;
    }
    if (m[2] === 'applied' && req.method === 'POST') {
      const body = (await readJson(req)) as AppliedReport;
      if (!body || typeof body !== 'object' || typeof body.revision !== 'number') throw new HttpError(400, 'VALIDATION', 'body: an applied report');
      await cp.reportApplied(host, body);
      return send(res, 200, { ok: true });
    }
    if (m[2] === 'facts' && req.method === 'POST') {
      const body = (await readJson(req)) as { facts?: HostFact[] };
      const facts = body?.facts;
      if (!Array.isArray(facts)) throw new HttpError(400, 'VALIDATION', 'body.facts: an array');
      // all or nothing: one fact about another host refuses the whole report
      for (const f of facts) {
        if (!f || typeof f !== 'object' || (f.kind !== 'audit' && f.kind !== 'vif-bind')) throw new HttpError(400, 'VALIDATION', 'facts: unknown kind');
        if (f.host !== host) throw new HttpError(403, 'FORBIDDEN', `facts: host ${owner}'s token cannot report for host ${String(f.host)}`);
      }
      await cp.reportFacts(host, facts);
      return send(res, 200, { ok: true, accepted: facts.length });
    }
    throw new HttpError(405, 'USAGE', `${req.method} not allowed on ${url.pathname}`);
  };

  const listener = (req: IncomingMessage, res: ServerResponse) => {
    handle(req, res).catch((err) => {
      if (res.headersSent || res.destroyed) return;
      if (err instanceof HttpError) return send(res, err.status, { error: { code: err.code, message: err.message } });
      const e = err instanceof IpvisorError ? err : asIpvisorError(err);
      opts.log?.(`agent API: ${req.method} ${req.url}: ${e.message}`);
      send(res, e.httpStatus ?? 500, { error: e.toJSON() });
    });
  };
  const server: Server = opts.tls
    ? (createHttpsServer({ cert: readFileSync(opts.tls.cert), key: readSecretFile(opts.tls.key, 'tls-key') }, listener) as unknown as Server)
    : createHttpServer(listener);
  server.keepAliveTimeout = 65_000;
  server.headersTimeout = 70_000;
  server.requestTimeout = 0; // long-polls
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen(opts.listen.port, opts.listen.host, () => resolve());
  });
  const addr = server.address() as AddressInfo;
  const hostPart = addr.family === 'IPv6' ? `[${addr.address}]` : addr.address;
  return {
    server,
    url: `${opts.tls ? 'https' : 'http'}://${hostPart}:${addr.port}`,
    async close() {
      for (const ac of inflight) ac.abort();
      cp.close();
      await new Promise<void>((resolve) => server.close(() => resolve()));
      server.closeAllConnections?.();
    },
  };
}

/** "ADDR:PORT", "[v6]:PORT" or ":PORT" (all addresses). */
export function parseListen(text: string): { host: string; port: number } {
  const m = /^(?:\[([^\]]+)\]|([^:]*)):(\d+)$/.exec(text);
  if (!m) throw invalid('listen', `'${text}' is not ADDR:PORT`);
  const port = Number(m[3]);
  if (!Number.isInteger(port) || port < 0 || port > 65535) throw invalid('listen', `port ${m[3]} is out of range`);
  return { host: m[1] ?? (m[2] || '0.0.0.0'), port };
}

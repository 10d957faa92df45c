// The HTTP adapter of the ControlPlane port, agent side: talks to one or more `ipvisor server` URLs
// (two stateless servers on one PostgreSQL are the HA setup), trying each in turn; the token is read
// from its file and re-read on reload() (SIGHUP). TLS with a CA file or a pinned certificate (its
// SHA-256 fingerprint); plain HTTP only to loopback unless --insecure-http.
import { readFileSync } from 'node:fs';
import { request as httpRequest, Agent as HttpAgent } from 'node:http';
import { request as httpsRequest, Agent as HttpsAgent, type AgentOptions as HttpsAgentOptions } from 'node:https';
import { connect as tlsConnect, type ConnectionOptions } from 'node:tls';
import type { Duplex } from 'node:stream';
import type { AppliedReport, ControlPlane, DesiredAnswer, DesiredQuery, HostFact } from '../core/control-plane.js';
import { AGENT_PROTOCOL, compatible } from '../core/control-plane.js';
import { IpvisorError, invalid } from '../core/model/errors.js';
import { readSecretFile } from '../core/model/secret-file.js';

const PROTOCOL_HEADER = 'x-ipvisor-protocol';

export interface HttpControlPlaneOptions {
  servers: string[];
  tokenFile: string;
  caFile?: string;
  /** The server certificate's SHA-256 fingerprint (`sha256:AB:CD:...` or hex): trusted instead of a CA. */
  pin?: string;
  insecureHttp?: boolean;
  /** Per-request timeout besides the long-poll wait. */
  timeoutMs?: number;
  protocol?: string;
}

function loopbackUrl(u: URL): boolean {
  const h = u.hostname.replace(/^\[|\]$/g, '');
  return h === 'localhost' || h === '::1' || /^127\./.test(h);
}

export function checkServerUrls(urls: string[], insecureHttp: boolean): URL[] {
  if (!urls.length) throw invalid('server', 'at least one --server URL');
  return urls.map((s) => {
    let u: URL;
    try {
      u = new URL(s);
    } catch {
      throw invalid('server', `'${s}' is not a URL`);
    }
    if (u.protocol !== 'https:' && u.protocol !== 'http:') throw invalid('server', `'${s}': http:// or https://`);
    if (u.protocol === 'http:' && !insecureHttp && !loopbackUrl(u)) throw invalid('server', `'${s}' is plain HTTP to another machine: the token and desired state would cross the network readable; use https:// or --insecure-http`);
    return u;
  });
}

/** A pin as given (`sha256:AB:CD:..`, `sha256//AB..`, or bare hex) in Node's fingerprint256 form. */
export function parseCertificatePin(pin: string): string {
  const hex = pin.trim().replace(/^sha256(:|\/\/)?/i, '').replace(/:/g, '').toUpperCase();
  if (!/^[0-9A-F]{64}$/.test(hex)) throw invalid('pin', `'${pin}' is not a SHA-256 certificate fingerprint (64 hex digits, e.g. from openssl x509 -noout -fingerprint -sha256)`);
  return hex.match(/../g)!.join(':');
}

/**
 * HTTPS to a server whose certificate is pinned: the chain is not checked against a CA (a
 * self-signed certificate is fine) but the certificate must be exactly the pinned one. The socket is
 * handed to the request only after the check, so nothing (the token above all) is written to a
 * server that is not the pinned one.
 */
class PinnedHttpsAgent extends HttpsAgent {
  constructor(private readonly fingerprint: string, opts: HttpsAgentOptions) {
    super(opts);
  }

  override createConnection(options: ConnectionOptions, done: (err: Error | null, socket?: Duplex) => void): Duplex | undefined {
    const socket = tlsConnect({ ...options, rejectUnauthorized: false });
    const fail = (e: Error) => {
      socket.destroy();
      done(e);
    };
    socket.once('error', fail);
    socket.once('secureConnect', () => {
      socket.off('error', fail);
      const got = socket.getPeerCertificate()?.fingerprint256;
      if (got !== this.fingerprint) return fail(new IpvisorError('TLS_PIN_MISMATCH', `pin: the server's certificate (sha256 ${got ?? 'none'}) is not the pinned one (${this.fingerprint})`));
      done(null, socket);
    });
    return undefined;
  }
}

export class HttpControlPlane implements ControlPlane {
  private token: string;
  private readonly urls: URL[];
  private current = 0;
  private readonly ca: Buffer | undefined;
  private readonly httpAgent = new HttpAgent({ keepAlive: true });
  private readonly httpsAgent: HttpsAgent;
  /** The server that answered last (logs, status). */
  lastServer: string | undefined;

  constructor(private readonly opts: HttpControlPlaneOptions) {
    this.urls = checkServerUrls(opts.servers, !!opts.insecureHttp);
    this.token = this.readToken();
    this.ca = opts.caFile ? readFileSync(opts.caFile) : undefined;
    if (opts.pin && opts.caFile) throw invalid('pin', '--pin and --ca go separately: a pinned certificate needs no CA');
    this.httpsAgent = opts.pin ? new PinnedHttpsAgent(parseCertificatePin(opts.pin), { keepAlive: true }) : new HttpsAgent({ keepAlive: true, ca: this.ca });
  }

  private readToken(): string {
    // a private regular file, not a link, root's or ours (core/model/secret-file.ts)
    const t = readSecretFile(this.opts.tokenFile, 'token-file').trim();
    if (!t) throw invalid('token-file', `${this.opts.tokenFile} is empty`);
    return t;
  }

  /** SIGHUP: the token file was replaced (host rotate-token). */
  reload(): void {
    this.token = this.readToken();
  }

  close(): void {
    this.httpAgent.destroy();
    this.httpsAgent.destroy();
  }

  /** One request, to each server in turn until one answers (an HTTP error answer counts as answered). */
  private async call<T>(method: 'GET' | 'POST', path: string, body: unknown, timeoutMs: number, signal?: AbortSignal): Promise<{ status: number; json: T }> {
    let lastErr: Error | undefined;
    for (let i = 0; i < this.urls.length; i++) {
      const idx = (this.current + i) % this.urls.length;
      const base = this.urls[idx];
      try {
        const r = await this.once<T>(base, method, path, body, timeoutMs, signal);
        this.current = idx;
        this.lastServer = base.origin;
        return r;
      } catch (e) {
        if (e instanceof IpvisorError || signal?.aborted) throw e;
        lastErr = e as Error;
      }
    }
    throw new IpvisorError('CONTROL_PLANE_UNREACHABLE', `no ipvisor server answered (${this.urls.map((u) => u.origin).join(', ')}): ${lastErr?.message ?? 'no server'}`);
  }

  private once<T>(base: URL, method: string, path: string, body: unknown, timeoutMs: number, signal?: AbortSignal): Promise<{ status: number; json: T }> {
    const url = new URL(path, base);
    const https = url.protocol === 'https:';
    const payload = body === undefined ? undefined : JSON.stringify(body);
    return new Promise((resolve, reject) => {
      const req = (https ? httpsRequest : httpRequest)(
        url,
        {
          method,
          agent: https ? this.httpsAgent : this.httpAgent,
          headers: {
            authorization: `Bearer ${this.token}`,
            [PROTOCOL_HEADER]: this.opts.protocol ?? AGENT_PROTOCOL,
            ...(payload ? { 'content-type': 'application/json', 'content-length': Buffer.byteLength(payload) } : {}),
          },
          signal,
        },
        (res) => {
          const chunks: Buffer[] = [];
          res.on('data', (c) => chunks.push(c));
          res.on('end', () => {
            clearTimeout(timer);
            const serverProtocol = String(res.headers[PROTOCOL_HEADER] ?? '');
            if (serverProtocol) {
              const c = compatible(this.opts.protocol ?? AGENT_PROTOCOL, serverProtocol);
              if (!c.ok) return reject(new IpvisorError('VERSION_MISMATCH', c.why));
            }
            let json: any;
            try {
              json = JSON.parse(Buffer.concat(chunks).toString('utf8') || 'null');
            } catch {
              return reject(new Error(`${url.origin} answered ${res.statusCode} with no JSON`));
            }
            const status = res.statusCode ?? 0;
            if (status === 401) return reject(new IpvisorError('UNAUTHORIZED', json?.error?.message ?? 'agent token refused'));
            if (status === 403) return reject(new IpvisorError('FORBIDDEN', json?.error?.message ?? 'forbidden'));
            if (status === 426) return reject(new IpvisorError('VERSION_MISMATCH', json?.error?.message ?? 'protocol versions do not match'));
            if (status >= 500) return reject(new Error(`${url.origin} answered ${status}: ${json?.error?.message ?? ''}`));
            if (status >= 400 && status !== 410) return reject(new IpvisorError('VALIDATION', json?.error?.message ?? `HTTP ${status}`));
            resolve({ status, json: json as T });
          });
          res.on('error', reject);
        },
      );
      const timer = setTimeout(() => req.destroy(new Error(`no answer within ${timeoutMs} ms`)), timeoutMs);
      req.on('error', (e) => {
        clearTimeout(timer);
        reject(e);
      });
      if (payload) req.write(payload);
      req.end();
    });
  }

  async desiredState(host: string, q: DesiredQuery = {}): Promise<DesiredAnswer> {
    const params = new URLSearchParams();
    if (q.digest) params.set('digest', q.digest);
    if (q.revision !== undefined && q.storeIdentity) {
      params.set('revision', String(q.revision));
      params.set('store', q.storeIdentity);
    }
    if (q.full) params.set('full', '1');
    if (q.waitMs) params.set('wait', String(q.waitMs));
    const r = await this.call<DesiredAnswer>('GET', `/agent/v1/hosts/${encodeURIComponent(host)}/desired?${params}`, undefined, (q.waitMs ?? 0) + (this.opts.timeoutMs ?? 10_000), q.signal);
    return r.json;
  }

  async reportApplied(host: string, report: AppliedReport): Promise<void> {
    await this.call('POST', `/agent/v1/hosts/${encodeURIComponent(host)}/applied`, report, this.opts.timeoutMs ?? 10_000);
  }

  async reportFacts(host: string, facts: HostFact[]): Promise<void> {
    await this.call('POST', `/agent/v1/hosts/${encodeURIComponent(host)}/facts`, { facts }, this.opts.timeoutMs ?? 10_000);
  }
}

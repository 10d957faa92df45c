// A small XAPI client: JSON-RPC 2.0 over HTTP(S) or dom0's local Unix socket.
//
// Why not Xen Orchestra's `xen-api` package: it logs in with [user, password] only (no originator,
// so our sessions would not be grouped for XAPI's 500-sessions-per-originator cap), it brings its own
// object cache and event loop (we need ours: ref->record cache feeding the store), and its ~25
// dependencies (undici, proxy-agent, lodash, jest-diff, ...) would bloat the single-file dom0 binder.
// What we need fits here: login with an originator, HOST_IS_SLAVE redirect, re-login on
// SESSION_INVALID, floats with a fraction, both error shapes, logout.
import { request as httpRequest, Agent as HttpAgent } from 'node:http';
import { request as httpsRequest, Agent as HttpsAgent } from 'node:https';
import { IpvisorError } from '../../core/model/errors.js';

export const ORIGINATOR = 'ipvisor';
export const NULL_REF = 'OpaqueRef:NULL';

/** An XAPI error (`message` + `data` of a JSON-RPC error): a DRIVER error carrying XAPI's code. */
export class XapiError extends IpvisorError {
  readonly xapiCode: string;
  readonly params: string[];
  constructor(xapiCode: string, params: string[], method: string) {
    super('DRIVER', `XAPI ${method}: ${xapiCode}${params.length ? ` ${params.join(' ')}` : ''}`, { details: { xapiCode, params } });
    this.xapiCode = xapiCode;
    this.params = params;
  }
}

/** The host could not be reached or did not speak JSON-RPC. */
export class XapiTransportError extends IpvisorError {
  constructor(message: string, cause?: unknown) {
    super('DRIVER', message, { cause });
  }
}

class StaleSocketError extends XapiTransportError {}

/** A float parameter: written with a fraction even when integral (older XAPI rejects `30`). */
export class XapiFloat {
  constructor(readonly value: number) {}
}

export function float(value: number): XapiFloat {
  return new XapiFloat(value);
}

export interface XapiClientOptions {
  /** https://host[:port], http://host[:port] or unix:/var/lib/xcp/xapi */
  url: string;
  user: string;
  password: string;
  originator?: string;
  /** PEM text of the CA that signed the host certificate. */
  ca?: string;
  /** Accept any certificate (self-signed hosts); explicit opt-in only. */
  insecure?: boolean;
  /** Per-call HTTP timeout (ms); event.from adds its own timeout on top. */
  callTimeoutMs?: number;
  /** How many HOST_IS_SLAVE redirects to follow. */
  maxRedirects?: number;
  /** Other pool members (addresses) to try when the URL's host is unreachable (HA failover); each
   * answers HOST_IS_SLAVE with the current master or is the master itself. Same scheme and port. */
  members?: string[];
}

/** Serialises params, writing XapiFloat values with a decimal point. */
export function encodeRequest(id: number, method: string, params: unknown[]): string {
  const floats: string[] = [];
  const text = JSON.stringify({ jsonrpc: '2.0', method, params, id }, (_k, v) => {
    if (v instanceof XapiFloat) {
      if (!Number.isFinite(v.value)) throw new TypeError('XAPI float must be finite');
      const s = String(v.value);
      floats.push(/[.eE]/.test(s) ? s : `${s}.0`);
      return `\u0000F${floats.length - 1}\u0000`;
    }
    return v;
  });
  return text.replace(/"\\u0000F(\d+)\\u0000"/g, (_m, i: string) => floats[Number(i)]!);
}

/** Decodes a JSON-RPC 1.0 or 2.0 response; errors in either shape become XapiError. */
export function decodeResponse(method: string, body: unknown): unknown {
  if (typeof body !== 'object' || body === null) throw new XapiTransportError(`XAPI ${method}: response is not a JSON object`);
  const b = body as { result?: unknown; error?: unknown };
  const e = b.error;
  if (e !== undefined && e !== null) {
    if (Array.isArray(e)) throw new XapiError(String(e[0] ?? 'UNKNOWN'), e.slice(1).map(String), method);
    if (typeof e === 'object') {
      const { message, data } = e as { message?: unknown; data?: unknown };
      const params = Array.isArray(data) ? data.map(String) : data === undefined || data === null ? [] : [String(data)];
      throw new XapiError(String(message ?? 'UNKNOWN'), params, method);
    }
    throw new XapiError(String(e), [], method);
  }
  if (!('result' in b)) throw new XapiTransportError(`XAPI ${method}: response has neither result nor error`);
  return b.result;
}

/** Turns HOST_IS_SLAVE's master address into a URL on the same scheme and port. */
export function masterUrl(current: string, masterAddress: string): string {
  const u = new URL(current);
  u.hostname = masterAddress.includes(':') && !masterAddress.startsWith('[') ? `[${masterAddress}]` : masterAddress;
  return u.toString().replace(/\/$/, '');
}

export class XapiClient {
  private sessionRef: string | null = null;
  private nextId = 1;
  private currentUrl: string;
  private readonly agent: HttpAgent | HttpsAgent | undefined;
  private loggingIn: Promise<string> | null = null;

  constructor(private readonly opts: XapiClientOptions) {
    this.currentUrl = opts.url.replace(/\/+$/, '');
    if (this.currentUrl.startsWith('https:')) {
      this.agent = new HttpsAgent({ keepAlive: true, ca: opts.ca, rejectUnauthorized: !opts.insecure });
    } else {
      this.agent = new HttpAgent({ keepAlive: true });
    }
  }

  /** The URL in use (the pool master after a HOST_IS_SLAVE redirect). */
  get url(): string {
    return this.currentUrl;
  }

  get session(): string | null {
    return this.sessionRef;
  }

  /** Logs in (following HOST_IS_SLAVE to the master) unless a session exists; returns the session. */
  async login(): Promise<string> {
    if (this.sessionRef) return this.sessionRef;
    this.loggingIn ??= this.doLogin().finally(() => {
      this.loggingIn = null;
    });
    return this.loggingIn;
  }

  private async doLogin(): Promise<string> {
    try {
      return await this.loginFollowingRedirects();
    } catch (err) {
      // Only an unreachable host is failed over; a XAPI answer (bad password, ...) is final.
      if (!(err instanceof XapiTransportError) || !this.opts.members?.length || this.currentUrl.startsWith('unix:')) throw err;
      const first = this.currentUrl;
      for (const m of this.opts.members) {
        this.currentUrl = masterUrl(first, m);
        if (this.currentUrl === first) continue;
        try {
          return await this.loginFollowingRedirects();
        } catch (e) {
          if (!(e instanceof XapiTransportError)) throw e;
        }
      }
      this.currentUrl = first;
      throw err;
    }
  }

  private async loginFollowingRedirects(): Promise<string> {
    const max = this.opts.maxRedirects ?? 3;
    for (let hop = 0; ; hop++) {
      try {
        const ref = (await this.rpc('session.login_with_password', [this.opts.user, this.opts.password, '1.0', this.opts.originator ?? ORIGINATOR])) as string;
        this.sessionRef = ref;
        return ref;
      } catch (err) {
        if (err instanceof XapiError && err.xapiCode === 'HOST_IS_SLAVE' && err.params[0] && hop < max && !this.currentUrl.startsWith('unix:')) {
          this.currentUrl = masterUrl(this.currentUrl, err.params[0]);
          continue;
        }
        throw err;
      }
    }
  }

  /** Calls a method with the session prepended; logs in again once on SESSION_INVALID. */
  async call<T = unknown>(method: string, ...args: unknown[]): Promise<T> {
    const session = await this.login();
    try {
      return (await this.rpc(method, [session, ...args])) as T;
    } catch (err) {
      if (err instanceof XapiError && err.xapiCode === 'SESSION_INVALID') {
        if (this.sessionRef === session) this.sessionRef = null;
        const again = await this.login();
        return (await this.rpc(method, [again, ...args])) as T;
      }
      throw err;
    }
  }

  /** Calls without the automatic re-login (the event loop resyncs instead). */
  async callRaw<T = unknown>(method: string, args: unknown[], timeoutMs?: number): Promise<T> {
    const session = await this.login();
    try {
      return (await this.rpc(method, [session, ...args], timeoutMs)) as T;
    } catch (err) {
      if (err instanceof XapiError && err.xapiCode === 'SESSION_INVALID' && this.sessionRef === session) this.sessionRef = null;
      throw err;
    }
  }

  /** event.from with a float timeout and an HTTP timeout longer than it. */
  async eventFrom(classes: string[], token: string, timeoutSeconds: number): Promise<{ events: XapiEvent[]; token: string; valid_ref_counts?: Record<string, number> }> {
    const t = Number.isInteger(timeoutSeconds) ? timeoutSeconds + 0.001 : timeoutSeconds;
    return this.callRaw('event.from', [classes, token, float(t)], Math.ceil(t * 1100) + 5000);
  }

  async logout(): Promise<void> {
    const s = this.sessionRef;
    this.sessionRef = null;
    if (s) {
      try {
        await this.rpc('session.logout', [s], 5000);
      } catch {
        // The session may already be gone; logout is best effort.
      }
    }
    this.agent?.destroy();
  }

  private async rpc(method: string, params: unknown[], timeoutMs?: number): Promise<unknown> {
    try {
      return await this.rpcOnce(method, params, timeoutMs);
    } catch (err) {
      // A kept-alive socket the server closed while idle fails before the request reaches it: retry
      // once on a fresh socket (Node's documented pattern; XAPI closes idle connections too).
      if (err instanceof StaleSocketError) return this.rpcOnce(method, params, timeoutMs);
      throw err;
    }
  }

  private rpcOnce(method: string, params: unknown[], timeoutMs?: number): Promise<unknown> {
    const id = this.nextId++;
    const body = encodeRequest(id, method, params);
    const url = this.currentUrl;
    const timeout = timeoutMs ?? this.opts.callTimeoutMs ?? 60_000;
    return new Promise((resolve, reject) => {
      let target: { socketPath?: string; hostname?: string; port?: string | number; path: string; protocol?: string };
      let useHttps = false;
      if (url.startsWith('unix:')) {
        target = { socketPath: url.slice(5), path: '/jsonrpc' };
      } else {
        const u = new URL(url);
        useHttps = u.protocol === 'https:';
        target = { hostname: u.hostname.replace(/^\[|\]$/g, ''), port: u.port || (useHttps ? 443 : 80), path: '/jsonrpc', protocol: u.protocol };
      }
      const req = (useHttps ? httpsRequest : httpRequest)(
        {
          ...target,
          method: 'POST',
          agent: target.socketPath ? undefined : this.agent,
          headers: { 'content-type': 'application/json', 'content-length': Buffer.byteLength(body) },
        },
        (res) => {
          const chunks: Buffer[] = [];
          res.on('data', (c: Buffer) => chunks.push(c));
          res.on('error', (e) => reject(new XapiTransportError(`XAPI ${method}: ${e.message}`, e)));
          res.on('end', () => {
            const text = Buffer.concat(chunks).toString('utf8');
            const ctype = String(res.headers['content-type'] ?? '');
            if ((res.statusCode ?? 0) < 200 || (res.statusCode ?? 0) >= 300 || !ctype.includes('application/json')) {
              reject(new XapiTransportError(`XAPI ${method}: HTTP ${res.statusCode} ${ctype || 'without content-type'} from ${redact(url)}`));
              return;
            }
            let parsed: unknown;
            try {
              parsed = JSON.parse(text);
            } catch {
              reject(new XapiTransportError(`XAPI ${method}: response is not JSON`));
              return;
            }
            try {
              resolve(decodeResponse(method, parsed));
            } catch (e) {
              reject(e);
            }
          });
        },
      );
      req.setTimeout(timeout, () => req.destroy(new Error(`timed out after ${timeout} ms`)));
      req.on('error', (e: NodeJS.ErrnoException) => {
        if (req.reusedSocket && (e.code === 'ECONNRESET' || e.code === 'EPIPE')) reject(new StaleSocketError(`XAPI ${method}: ${e.message}`, e));
        else reject(e instanceof IpvisorError ? e : new XapiTransportError(`XAPI ${method}: ${redact(url)}: ${e.message}`, e));
      });
      req.end(body);
    });
  }
}

export interface XapiEvent {
  id: string;
  timestamp?: string;
  class: string;
  operation: 'add' | 'mod' | 'del';
  ref: string;
  snapshot?: Record<string, unknown>;
}

function redact(url: string): string {
  try {
    const u = new URL(url);
    u.username = '';
    u.password = '';
    return u.toString().replace(/\/$/, '');
  } catch {
    return url;
  }
}

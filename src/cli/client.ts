// The CLI as an API client (`ipvisor --server URL ...`): command handlers ask ctx.remote instead of
// opening a store, and get the same data back, so output and exit codes stay the same. Errors come
// back as the server's {"error": {...}} and are re-raised with their code (hence their exit status).
import { IpvisorError, type ErrorCode, ERROR_CODES, invalid } from '../core/model/errors.js';
import { readSecretLine } from '../core/model/secret-file.js';

export class ApiClient {
  constructor(readonly base: string, private readonly token: string) {}

  async call<T>(method: string, path: string, opts: { body?: unknown; query?: Record<string, string | number | boolean | undefined>; headers?: Record<string, string> } = {}): Promise<T> {
    const q = Object.entries(opts.query ?? {}).filter(([, v]) => v !== undefined && v !== false).map(([k, v]) => `${encodeURIComponent(k)}=${encodeURIComponent(String(v))}`);
    const url = `${this.base}/api/v1${path}${q.length ? `?${q.join('&')}` : ''}`;
    let res: Response;
    try {
      res = await fetch(url, {
        method,
        headers: { authorization: `Bearer ${this.token}`, ...(opts.body !== undefined ? { 'content-type': 'application/json' } : {}), ...opts.headers },
        body: opts.body !== undefined ? JSON.stringify(opts.body) : undefined,
      });
    } catch (err) {
      const cause = (err as { cause?: { code?: string; message?: string } }).cause;
      throw new IpvisorError('SERVER_UNREACHABLE', `server: cannot reach ${this.base}: ${cause?.code ?? cause?.message ?? (err as Error).message}`, { field: 'server' });
    }
    const text = await res.text();
    let body: unknown;
    try {
      body = text ? JSON.parse(text) : undefined;
    } catch {
      throw new IpvisorError('SERVER_UNREACHABLE', `server: ${this.base} answered ${res.status} with something that is not ipvisor's JSON`, { field: 'server' });
    }
    if (res.status >= 400) {
      const e = (body as { error?: { code?: string; message?: string; field?: string | null; details?: unknown } } | undefined)?.error;
      const code = (e?.code && e.code in ERROR_CODES ? e.code : 'INTERNAL') as ErrorCode;
      throw new IpvisorError(code, e?.message ?? `server answered ${res.status}`, { field: e?.field ?? undefined, details: e?.details });
    }
    return body as T;
  }

  /** Every item of a paged list. */
  async all<T>(path: string, query: Record<string, string | number | boolean | undefined> = {}): Promise<T[]> {
    const out: T[] = [];
    let cursor: string | undefined;
    do {
      const page = await this.call<{ items: T[]; nextCursor: string | null }>('GET', path, { query: { ...query, limit: 1000, cursor } });
      out.push(...page.items);
      cursor = page.nextCursor ?? undefined;
    } while (cursor);
    return out;
  }
}

/** From --server / IPVISOR_SERVER and --token-file / IPVISOR_TOKEN; undefined = local store. */
export function clientFrom(opts: { server?: string; tokenFile?: string }, env: NodeJS.ProcessEnv): ApiClient | undefined {
  const server = opts.server ?? env.IPVISOR_SERVER;
  if (!server) {
    if (opts.tokenFile) throw invalid('token-file', '--token-file needs --server URL (or IPVISOR_SERVER)');
    return undefined;
  }
  let url: URL;
  try {
    url = new URL(server);
  } catch {
    throw invalid('server', `'${server}' is not a URL (https://host:8443)`);
  }
  if (url.protocol !== 'https:' && url.protocol !== 'http:') throw invalid('server', `'${server}' is not an http(s) URL`);
  const token = opts.tokenFile ? readSecretLine(opts.tokenFile, 'token-file').trim() : env.IPVISOR_TOKEN;
  if (!token) throw invalid('token-file', 'the server needs a token: --token-file FILE or IPVISOR_TOKEN');
  return new ApiClient(url.origin + url.pathname.replace(/\/+$/, '').replace(/\/api\/v1$/, ''), token);
}

/** For commands that only exist locally (they act on this host or its files). */
export function localOnly(what: string): never {
  throw new IpvisorError('USAGE', `${what} is not available with --server (it acts on this host); run it without --server`);
}

// The API under test: a real server (fastify, in-process inject or a real port) on a real SQLite
// store in a temp dir, tokens for every role, and a checker that validates every response the
// suite receives against the server's own OpenAPI document.
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import AjvModule from 'ajv';

// ajv is CommonJS: its class is the default export's default under NodeNext resolution.
const Ajv = (AjvModule as unknown as { default: typeof AjvModule }).default ?? AjvModule;
import { openStore } from '../../src/core/store/open.js';
import type { Store } from '../../src/core/store/store.js';
import { createToken } from '../../src/core/service/auth.js';
import { buildHttpServer, type HttpServer, type HttpServerOptions } from '../../src/server/http.js';

export type RoleName = 'admin' | 'operator' | 'auditor' | 'tenant' | 'agent';

export interface ApiHarness {
  store: Store;
  app: HttpServer;
  dir: string;
  tokens: Record<string, string>;
  /** Sends a request (as `who`: a role's token name, a raw token, or null = none) and checks the
   * answer against the OpenAPI document. */
  req(who: string | null, method: string, url: string, body?: unknown, headers?: Record<string, string>): Promise<ApiResponse>;
  token(name: string, role: RoleName, tenant?: string): Promise<string>;
  close(): Promise<void>;
  validated: number;
}

export interface ApiResponse {
  status: number;
  headers: Record<string, string | string[] | undefined>;
  body: any;
  text: string;
}

/** Validates responses against the document the server serves: the operation is found by method and
 * the route's URL template, the schema by status code. */
export class OpenApiChecker {
  private readonly ajv = new (Ajv as any)({ strict: false, allErrors: true });
  private readonly cache = new Map<string, any>();
  constructor(readonly doc: any) {
    this.ajv.addSchema({ ...doc, $id: 'openapi' });
  }

  /** The document's path template a concrete URL matches (static segments win over parameters). */
  match(method: string, url: string): string | undefined {
    const segs = url.split('/');
    let best: { path: string; params: number } | undefined;
    for (const [path, ops] of Object.entries<any>(this.doc.paths ?? {})) {
      if (!ops[method.toLowerCase()]) continue;
      const t = path.split('/');
      if (t.length !== segs.length) continue;
      let params = 0;
      if (t.every((x, i) => (x.startsWith('{') ? (params++, segs[i] !== '') : x === segs[i])) && (!best || params < best.params)) best = { path, params };
    }
    return best?.path;
  }

  /** A fastify route URL (/api/v1/vms/:vm) as an OpenAPI path (/api/v1/vms/{vm}). */
  static pathOf(routeUrl: string): string {
    return routeUrl.replace(/:([A-Za-z0-9_]+)/g, '{$1}');
  }

  check(method: string, routeUrl: string, status: number, contentType: string | undefined, body: unknown): void {
    const path = OpenApiChecker.pathOf(routeUrl);
    const op = this.doc.paths?.[path]?.[method.toLowerCase()];
    assert.ok(op, `${method} ${path} is not in the OpenAPI document`);
    const resp = op.responses?.[String(status)];
    assert.ok(resp, `${method} ${path}: status ${status} is not documented (documented: ${Object.keys(op.responses ?? {}).join(', ')})`);
    if (!contentType?.includes('application/json')) return;
    const key = `${method} ${path} ${status}`;
    let validate = this.cache.get(key);
    if (!validate) {
      const pointer = `openapi#/paths/${path.replace(/~/g, '~0').replace(/\//g, '~1')}/${method.toLowerCase()}/responses/${status}/content/application~1json/schema`;
      validate = this.ajv.compile({ $ref: pointer });
      this.cache.set(key, validate);
    }
    assert.ok(validate(body), `${key}: the response does not match the OpenAPI document: ${this.ajv.errorsText(validate.errors)}\n${JSON.stringify(body).slice(0, 400)}`);
  }
}

export async function startApi(opts: Partial<HttpServerOptions> = {}): Promise<ApiHarness> {
  const dir = mkdtempSync(join(tmpdir(), 'ipvisor-api-'));
  const store = await openStore(join(dir, 'ipvisor.db'), { create: true });
  const app = await buildHttpServer({ store, enforcers: [], ...opts });
  const docRes = await app.inject({ url: '/api/v1/openapi.json' });
  const checker = new OpenApiChecker(docRes.json());
  const tokens: Record<string, string> = {};
  const h: ApiHarness = {
    store, app, dir, tokens, validated: 0,
    async token(name, role, tenant) {
      const t = await createToken(store, { name, role, tenant, host: role === 'agent' ? 'hv1' : undefined }, 'test');
      tokens[name] = t.token;
      return t.token;
    },
    async req(who, method, url, body, headers = {}) {
      const auth = who === null ? {} : { authorization: `Bearer ${tokens[who] ?? who}` };
      const r = await app.inject({ method: method as never, url, payload: body === undefined ? undefined : (body as object), headers: { ...auth, ...headers } });
      const text = r.body;
      let parsed: unknown = undefined;
      if (String(r.headers['content-type'] ?? '').includes('application/json')) parsed = JSON.parse(text);
      const path = checker.match(method, url.split('?')[0]);
      if (path && !url.includes('fields=')) {
        checker.check(method, path, r.statusCode, String(r.headers['content-type'] ?? ''), parsed);
        h.validated++;
      } else if (!path && url.startsWith('/api/v1/') && url !== '/api/v1/openapi.json' && r.statusCode !== 404) {
        assert.fail(`${method} ${url} answered ${r.statusCode} but matches no path of the OpenAPI document`);
      }
      return { status: r.statusCode, headers: r.headers as ApiResponse['headers'], body: parsed, text };
    },
    async close() {
      await app.close();
      await store.close();
      rmSync(dir, { recursive: true, force: true });
    },
  };
  return h;
}

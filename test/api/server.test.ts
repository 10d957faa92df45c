// The server's shape: the OpenAPI document is valid and served without credentials, everything else
// needs them, errors have the CLI's body and codes (never a stack), CORS is off, bodies are bounded.
import assert from 'node:assert/strict';
import { after, before, describe, test } from 'node:test';
import SwaggerParser from '@apidevtools/swagger-parser';
import { startApi, type ApiHarness } from '../support/api.js';

describe('API server', () => {
  let api: ApiHarness;
  before(async () => {
    api = await startApi({ bodyLimit: 4096, failedAuthLimit: 1000 });
    await api.token('adm', 'admin');
    await api.token('ops', 'operator');
    await api.token('aud', 'auditor');
  });
  after(async () => api.close());

  test('the OpenAPI 3.1 document is served without credentials and passes an OpenAPI validator', async () => {
    const r = await api.app.inject({ url: '/api/v1/openapi.json' });
    assert.equal(r.statusCode, 200);
    const doc = r.json();
    assert.equal(doc.openapi, '3.1.0');
    await SwaggerParser.validate(structuredClone(doc));
    for (const p of ['/api/v1/vms', '/api/v1/vms/{vm}', '/api/v1/addresses', '/api/v1/events', '/api/v1/events/stream', '/api/v1/tenants', '/api/v1/tokens', '/api/v1/plan', '/api/v1/status']) {
      assert.ok(doc.paths[p], `${p} documented`);
    }
  });

  test('every route but the document and login answers 401 without credentials, with the error body', async () => {
    const doc = (await api.app.inject({ url: '/api/v1/openapi.json' })).json();
    let n = 0;
    for (const [path, ops] of Object.entries<any>(doc.paths)) {
      for (const method of Object.keys(ops)) {
        // Operations documented as public (security: []): login, the web UI's shell and assets.
        if (Array.isArray(ops[method].security) && ops[method].security.length === 0) continue;
        const url = path.replace(/\{[^}]+\}/g, 'x');
        const r = await api.req(null, method.toUpperCase(), url, method === 'get' || method === 'delete' ? undefined : {});
        assert.equal(r.status, 401, `${method} ${path}`);
        assert.equal(r.body.error.code, 'UNAUTHORIZED');
        assert.match(String(r.headers['www-authenticate']), /^Bearer/);
        n++;
      }
    }
    assert.ok(n > 40, `${n} operations checked`);
    // A garbage or unknown token is no better.
    assert.equal((await api.req('ipvt_nope', 'GET', '/api/v1/vms')).status, 401);
  });

  test('coded errors keep their code, field and HTTP status; no stack trace', async () => {
    const bad = await api.req('adm', 'POST', '/api/v1/networks', { name: 'lan', subnets: ['10.0.0.1/24'] });
    assert.equal(bad.status, 400);
    assert.deepEqual(Object.keys(bad.body.error).sort(), ['code', 'field', 'message']);
    assert.equal(bad.body.error.code, 'VALIDATION');
    assert.equal(bad.body.error.field, 'subnet');
    const schema = await api.req('adm', 'POST', '/api/v1/networks', { name: 'lan', colour: 'red' });
    assert.equal(schema.status, 400);
    assert.equal(schema.body.error.code, 'VALIDATION');
    const missing = await api.req('adm', 'GET', '/api/v1/networks/nope');
    assert.equal(missing.status, 404);
    assert.deepEqual(missing.body.error, { code: 'NOT_FOUND', message: "network: no network named 'nope'", field: 'network' });
    assert.equal((await api.req('adm', 'POST', '/api/v1/networks', { name: 'lan', subnets: ['10.0.0.0/24'] })).status, 201);
    const dup = await api.req('adm', 'POST', '/api/v1/networks', { name: 'lan' });
    assert.equal(dup.status, 409);
    assert.equal(dup.body.error.code, 'ALREADY_EXISTS');
    for (const r of [bad, schema, missing, dup]) assert.doesNotMatch(r.text, /at .*\.(ts|js):\d+/);
    const forbidden = await api.req('aud', 'POST', '/api/v1/networks', { name: 'x' });
    assert.equal(forbidden.status, 403);
    assert.equal(forbidden.body.error.code, 'FORBIDDEN');
    assert.equal((await api.req('ops', 'GET', '/api/v1/tokens')).status, 403);
  });

  test('a body over the limit is 413; CORS is off; every answer carries its request id', async () => {
    const big = await api.req('adm', 'POST', '/api/v1/networks', { name: 'big', dns: Array(1000).fill('192.0.2.53') });
    assert.equal(big.status, 413);
    assert.equal(big.body.error.code, 'PAYLOAD_TOO_LARGE');
    const r = await api.req('adm', 'GET', '/api/v1/networks', undefined, { origin: 'https://evil.example', 'x-request-id': 'req-42' });
    assert.equal(r.status, 200);
    assert.equal(r.headers['access-control-allow-origin'], undefined);
    assert.equal(r.headers['x-request-id'], 'req-42');
    const pre = await api.app.inject({ method: 'OPTIONS', url: '/api/v1/networks', headers: { origin: 'https://evil.example', 'access-control-request-method': 'POST' } });
    assert.equal(pre.headers['access-control-allow-origin'], undefined);
  });

  test('the audit log names the token and the request id of an API write', async () => {
    await api.req('ops', 'POST', '/api/v1/vms', { name: 'audited', host: 'hv1' }, { 'x-request-id': 'req-audit-1' });
    const ev = (await api.store.listEvents()).find((e) => e.objectName === 'audited')!;
    assert.equal(ev.actor, 'token:ops');
    assert.equal(ev.requestId, 'req-audit-1');
  });
});

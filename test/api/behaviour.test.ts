// HTTP conventions and self-service end to end: the quota race, ETag/If-Match, Idempotency-Key
// replay, pagination and ?fields=, sessions with CSRF, failed-auth rate limiting, the event stream
// resuming after a dropped connection, and real TLS with certificates the test makes.
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { existsSync } from 'node:fs';
import { request as httpsRequest } from 'node:https';
import { join } from 'node:path';
import { after, before, describe, test } from 'node:test';
import { createNetwork } from '../../src/core/service/networks.js';
import { createPool } from '../../src/core/service/pools.js';
import { addVif, createVm } from '../../src/core/service/vms.js';
import { allocate } from '../../src/core/service/ip.js';
import { createTenant } from '../../src/core/service/tenants.js';
import { createUser } from '../../src/core/service/auth.js';
import { startHttpServer } from '../../src/server/http.js';
import { startApi, type ApiHarness } from '../support/api.js';
import { skipUnless } from '../support/skip.js';

const A = 'fixture';

describe('API behaviour', () => {
  let api: ApiHarness;
  before(async () => {
    api = await startApi({ failedAuthLimit: 5 });
    const s = api.store;
    await createNetwork(s, { name: 'lan', subnets: ['192.0.2.0/24,gateway=192.0.2.1', '2001:db8:10::/64'] }, A);
    await createNetwork(s, { name: 'pub', mode: 'routed', subnets: [] }, A);
    await createPool(s, { name: 'lan4', network: 'lan', cidrs: ['192.0.2.0/24'] }, A);
    await createPool(s, { name: 'lan6', network: 'lan', cidrs: ['2001:db8:10::/64'] }, A);
    await createPool(s, { name: 'public', network: 'lan', purpose: 'routed', cidrs: ['203.0.113.0/24'] }, A);
    await createTenant(s, { name: 'acme', pools: ['lan4', 'lan6', 'public'], quota: ['lan4=5', 'routed-prefix=29'] }, A);
    await createTenant(s, { name: 'globex', pools: ['lan4'] }, A);
    for (let i = 0; i < 8; i++) {
      await createVm(s, { name: `web${i}`, owner: 'acme', host: 'hv1' }, A);
      await addVif(s, { vm: `web${i}`, network: 'lan', mac: `52:54:00:00:01:0${i}` }, A);
    }
    await createVm(s, { name: 'db', owner: 'globex', host: 'hv1' }, A);
    await addVif(s, { vm: 'db', network: 'lan', mac: '52:54:00:00:02:01' }, A);
    await api.token('admin', 'admin');
    await api.token('acme', 'tenant', 'acme');
  });
  after(async () => api.close());

  test('quota race: eight concurrent allocations at quota minus one give one success and seven QUOTA_EXCEEDED', async () => {
    // acme may hold 5 in lan4: take 4, then race 8 requests for the last one
    for (let i = 0; i < 4; i++) assert.equal((await api.req('acme', 'POST', '/api/v1/addresses', { vif: `web${i}:0`, pool: 'lan4' })).status, 201);
    const results = await Promise.all(Array.from({ length: 8 }, (_, i) => api.req('acme', 'POST', '/api/v1/addresses', { vif: `web${i}:0`, pool: 'lan4' })));
    const statuses = results.map((r) => r.status).sort();
    assert.deepEqual(statuses, [201, 409, 409, 409, 409, 409, 409, 409]);
    for (const r of results.filter((x) => x.status === 409)) assert.equal(r.body.error.code, 'QUOTA_EXCEEDED');
    const me = await api.req('acme', 'GET', '/api/v1/me');
    assert.equal(me.body.tenant.usage.pools.find((p: any) => p.pool === 'lan4').used, 5);
    // the quota binds an operator's allocation to acme's VM too
    const op = await api.req('admin', 'POST', '/api/v1/addresses', { vif: 'web7:0', pool: 'lan4' });
    assert.equal(op.status, 409);
    assert.equal(op.body.error.code, 'QUOTA_EXCEEDED');
    // routed-prefix=29: a /28 is refused, a /29 is fine
    assert.equal((await api.req('acme', 'POST', '/api/v1/addresses', { vif: 'web0:0', pool: 'public', prefixLength: 28 })).body.error.code, 'QUOTA_EXCEEDED');
    assert.equal((await api.req('acme', 'POST', '/api/v1/addresses', { vif: 'web0:0', pool: 'public', prefixLength: 29 })).status, 201);
  });

  test('a tenant may not use a pool outside its list, nor touch another tenant\'s VIF or address', async () => {
    const other = await api.req('acme', 'POST', '/api/v1/addresses', { vif: 'db:0', pool: 'lan4' });
    assert.equal(other.status, 404);
    const missing = await api.req('acme', 'POST', '/api/v1/addresses', { vif: 'nosuch:0', pool: 'lan4' });
    // exactly as a missing one: same code, field and message (but for the name)
    assert.deepEqual(other.body.error, { ...missing.body.error, message: missing.body.error.message.replace('nosuch', 'db') });
    const dbAddr = await allocate(api.store, { vif: 'db:0', pool: 'lan4' }, A);
    const rel = await api.req('acme', 'DELETE', `/api/v1/addresses/${dbAddr.assignment.address}`);
    assert.equal(rel.status, 404);
    assert.equal((await api.req('admin', 'GET', `/api/v1/addresses/${dbAddr.assignment.address}`)).status, 200, 'still assigned');
    // the VM list, filters and counts leave globex out
    const vms = await api.req('acme', 'GET', '/api/v1/vms?owner=globex');
    assert.deepEqual(vms.body.items, []);
    assert.equal((await api.req('acme', 'GET', '/api/v1/addresses?vm=db')).status, 404);
  });

  test('ETag and If-Match: a stale version is 412 and changes nothing; the current one works', async () => {
    const r = await api.req('admin', 'GET', '/api/v1/vms/web1');
    const tag = r.headers.etag as string;
    assert.match(tag, /^"[A-Za-z0-9_-]+"$/);
    const ok = await api.req('admin', 'PATCH', '/api/v1/vms/web1', { host: 'hv2' }, { 'if-match': tag });
    assert.equal(ok.status, 200);
    assert.notEqual(ok.headers.etag, tag);
    const stale = await api.req('admin', 'PATCH', '/api/v1/vms/web1', { host: 'hv3' }, { 'if-match': tag });
    assert.equal(stale.status, 412);
    assert.equal(stale.body.error.code, 'PRECONDITION_FAILED');
    assert.equal((await api.req('admin', 'GET', '/api/v1/vms/web1')).body.host, 'hv2');
    assert.equal((await api.req('admin', 'DELETE', '/api/v1/vms/web1', undefined, { 'if-match': tag })).status, 412);
    assert.equal((await api.req('admin', 'GET', '/api/v1/vms/web1')).status, 200, 'not deleted');
  });

  test('Idempotency-Key: a repeated allocation returns the first assignment; other arguments are 422', async () => {
    const first = await api.req('admin', 'POST', '/api/v1/addresses', { vif: 'db:0', pool: 'lan6' }, { 'idempotency-key': 'order-42' });
    assert.equal(first.status, 201);
    const again = await api.req('admin', 'POST', '/api/v1/addresses', { vif: 'db:0', pool: 'lan6' }, { 'idempotency-key': 'order-42' });
    assert.equal(again.status, 200);
    assert.equal(again.body.uuid, first.body.uuid);
    assert.equal(again.body.created, false);
    const other = await api.req('admin', 'POST', '/api/v1/addresses', { vif: 'db:0', pool: 'lan4' }, { 'idempotency-key': 'order-42' });
    assert.equal(other.status, 422);
    // other creates replay their first answer
    const vm1 = await api.req('admin', 'POST', '/api/v1/vms', { name: 'idem', host: 'hv1' }, { 'idempotency-key': 'vm-idem' });
    const vm2 = await api.req('admin', 'POST', '/api/v1/vms', { name: 'idem', host: 'hv1' }, { 'idempotency-key': 'vm-idem' });
    assert.equal(vm1.status, 201);
    assert.equal(vm2.status, 201);
    assert.equal(vm2.headers['idempotent-replayed'], 'true');
    assert.equal(vm2.body.uuid, vm1.body.uuid);
    assert.equal((await api.req('admin', 'POST', '/api/v1/vms', { name: 'idem2' }, { 'idempotency-key': 'vm-idem' })).status, 422);
  });

  test('events ?newest=true: the newest `limit` events, oldest first, no cursor; without it the oldest', async () => {
    const all = (await api.req('admin', 'GET', '/api/v1/events?limit=1000')).body.items as Array<{ id: number }>;
    assert.ok(all.length > 5);
    const newest = await api.req('admin', 'GET', '/api/v1/events?limit=3&newest=true');
    assert.equal(newest.status, 200);
    assert.deepEqual(newest.body.items.map((e: { id: number }) => e.id), all.slice(-3).map((e) => e.id));
    assert.equal(newest.body.nextCursor, null);
    const oldest = await api.req('admin', 'GET', '/api/v1/events?limit=3');
    assert.deepEqual(oldest.body.items.map((e: { id: number }) => e.id), all.slice(0, 3).map((e) => e.id));
    assert.equal((await api.req('admin', 'GET', '/api/v1/events?newest=maybe')).status, 400);
  });

  test('cursor pagination walks every item once; filters and ?fields= apply', async () => {
    const seen: string[] = [];
    let cursor: string | null = null;
    do {
      const r: any = await api.req('admin', 'GET', `/api/v1/vms?limit=3${cursor ? `&cursor=${cursor}` : ''}`);
      assert.equal(r.status, 200);
      assert.ok(r.body.items.length <= 3);
      seen.push(...r.body.items.map((v: any) => v.name));
      cursor = r.body.nextCursor;
    } while (cursor);
    const all = (await api.store.listVms()).map((v) => v.name).sort();
    assert.deepEqual(seen, all);
    const byOwner = await api.req('admin', 'GET', '/api/v1/vms?owner=globex');
    assert.deepEqual(byOwner.body.items.map((v: any) => v.name), ['db']);
    const slim = await api.req('admin', 'GET', '/api/v1/vms?owner=globex&fields=name,owner');
    assert.deepEqual(slim.body.items, [{ name: 'db', owner: 'globex' }]);
    assert.equal((await api.req('admin', 'GET', '/api/v1/vms?cursor=%%%')).status, 400);
  });

  test('a password session: HttpOnly SameSite=Strict cookie; a change without the CSRF token is 403', async () => {
    await createUser(api.store, { name: 'alice', role: 'operator', password: 'correct horse battery' }, A);
    const bad = await api.req(null, 'POST', '/api/v1/session', { name: 'alice', password: 'wrong password' });
    assert.equal(bad.status, 401);
    const login = await api.req(null, 'POST', '/api/v1/session', { name: 'alice', password: 'correct horse battery' });
    assert.equal(login.status, 200);
    const cookie = String(login.headers['set-cookie']);
    assert.match(cookie, /ipvisor_session=[^;]+; Path=\/; HttpOnly; SameSite=Strict/);
    assert.doesNotMatch(cookie, /Secure/, 'no Secure without TLS');
    const jar = cookie.split(';')[0];
    assert.equal((await api.req(null, 'GET', '/api/v1/vms', undefined, { cookie: jar })).status, 200);
    const noCsrf = await api.req(null, 'POST', '/api/v1/vms', { name: 'by-cookie' }, { cookie: jar });
    assert.equal(noCsrf.status, 403);
    assert.equal(noCsrf.body.error.field, 'x-csrf-token');
    const withCsrf = await api.req(null, 'POST', '/api/v1/vms', { name: 'by-cookie' }, { cookie: jar, 'x-csrf-token': login.body.csrfToken });
    assert.equal(withCsrf.status, 201);
    const ev = (await api.store.listEvents()).find((e) => e.objectName === 'by-cookie')!;
    assert.equal(ev.actor, 'user:alice');
    assert.equal((await api.req(null, 'DELETE', '/api/v1/session', undefined, { cookie: jar, 'x-csrf-token': login.body.csrfToken })).status, 200);
    assert.equal((await api.req(null, 'GET', '/api/v1/vms', undefined, { cookie: jar })).status, 401, 'logged out');
  });

  test('failed authentication is rate limited per source: 429 with Retry-After, other sources unaffected', async () => {
    const from = (ip: string, token: string) => api.app.inject({ url: '/api/v1/vms', remoteAddress: ip, headers: { authorization: `Bearer ${token}` } });
    for (let i = 0; i < 5; i++) assert.equal((await from('192.0.2.99', 'ipvt_wrong')).statusCode, 401);
    const limited = await from('192.0.2.99', api.tokens.admin);
    assert.equal(limited.statusCode, 429, 'even a good token from that source waits');
    assert.equal(limited.json().error.code, 'RATE_LIMITED');
    assert.ok(Number(limited.headers['retry-after']) > 0);
    assert.equal((await from('192.0.2.98', api.tokens.admin)).statusCode, 200);
  });

  test('revoked and expired tokens stop working at once; last use is recorded', async () => {
    const { createToken, revokeToken } = await import('../../src/core/service/auth.js');
    const t = await createToken(api.store, { name: 'short', role: 'auditor' }, A);
    const hit = () => api.app.inject({ url: '/api/v1/vms', remoteAddress: '192.0.2.77', headers: { authorization: `Bearer ${t.token}` } });
    assert.equal((await hit()).statusCode, 200);
    assert.ok((await api.req('admin', 'GET', '/api/v1/tokens/short')).body.lastUsedAt);
    await revokeToken(api.store, 'short', A);
    assert.equal((await hit()).statusCode, 401);
    const listed = await api.req('admin', 'GET', '/api/v1/tokens');
    assert.ok(!listed.text.includes(t.token) && !listed.text.includes('hash'), 'no secret or hash in the list');
  });

  test('the event stream resumes after a dropped connection from Last-Event-ID without gaps or duplicates', async () => {
    const base = await api.app.listen({ host: '127.0.0.1', port: 0 });
    const start = (await api.store.listEvents()).at(-1)!.id;
    const received: number[] = [];
    const readEvents = async (headers: Record<string, string>, until: (ids: number[]) => boolean) => {
      const ac = new AbortController();
      const res = await fetch(`${base}/api/v1/events/stream`, { headers: { authorization: `Bearer ${api.tokens.admin}`, ...headers }, signal: ac.signal });
      assert.equal(res.status, 200);
      const reader = res.body!.getReader();
      let buf = '';
      const deadline = Date.now() + 10_000;
      try {
        while (!until(received) && Date.now() < deadline) {
          const { value, done } = await reader.read();
          if (done) break;
          buf += Buffer.from(value).toString('utf8');
          let i;
          while ((i = buf.indexOf('\n\n')) >= 0) {
            const block = buf.slice(0, i);
            buf = buf.slice(i + 2);
            const id = /^id: (\d+)$/m.exec(block);
            if (id) received.push(Number(id[1]));
          }
        }
      } finally {
        ac.abort(); // the dropped connection
      }
    };
    const writer = (async () => {
      for (let i = 0; i < 30; i++) {
        await createVm(api.store, { name: `sse-${i}`, host: 'hv1' }, A);
        if (i % 5 === 0) await new Promise((r) => setTimeout(r, 20));
      }
    })();
    await readEvents({ 'last-event-id': String(start) }, (ids) => ids.length >= 10);
    await writer; // more events while nobody listens
    const resumeFrom = received.at(-1)!;
    await readEvents({ 'last-event-id': String(resumeFrom) }, (ids) => ids.at(-1)! >= start + 30);
    const expected = Array.from({ length: 30 }, (_, i) => start + 1 + i);
    assert.deepEqual(received.slice(0, 30), expected, 'every event once, in order');
  });
});

describe('API over TLS', () => {
  test('https with a certificate the test makes; the session cookie is Secure; plain HTTP off loopback needs --insecure-listen', async (t) => {
    const reason = skipUnless(!existsSync('/usr/bin/openssl') && 'openssl is not installed');
    if (reason) return t.skip(reason);
    const api = await startApi();
    try {
      const cert = join(api.dir, 'cert.pem');
      const key = join(api.dir, 'key.pem');
      execFileSync('openssl', ['req', '-x509', '-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:prime256v1', '-nodes', '-days', '1', '-subj', '/CN=localhost', '-addext', 'subjectAltName=IP:127.0.0.1', '-keyout', key, '-out', cert], { stdio: 'ignore' });
      await createUser(api.store, { name: 'bob', role: 'auditor', password: 'long password' }, A);
      const srv = await startHttpServer({ store: api.store, listen: '127.0.0.1:0', tlsCert: cert, tlsKey: key, enforcers: [] });
      try {
        assert.match(srv.url, /^https:\/\/127\.0\.0\.1:\d+$/);
        const { readFileSync } = await import('node:fs');
        const ca = readFileSync(cert);
        const call = (method: string, path: string, body?: unknown) => new Promise<{ status: number; headers: Record<string, unknown>; body: string }>((resolve, reject) => {
          const req = httpsRequest(`${srv.url}${path}`, { method, ca, headers: body ? { 'content-type': 'application/json' } : {} }, (res) => {
            let text = '';
            res.on('data', (d) => (text += d));
            res.on('end', () => resolve({ status: res.statusCode!, headers: res.headers, body: text }));
          });
          req.on('error', reject);
          req.end(body ? JSON.stringify(body) : undefined);
        });
        assert.equal((await call('GET', '/api/v1/openapi.json')).status, 200);
        assert.equal((await call('GET', '/api/v1/vms')).status, 401);
        const login = await call('POST', '/api/v1/session', { name: 'bob', password: 'long password' });
        assert.equal(login.status, 200);
        assert.match(String(login.headers['set-cookie']), /HttpOnly; SameSite=Strict; Secure/);
        // a client that does not trust the certificate gets nowhere
        await assert.rejects(new Promise((resolve, reject) => httpsRequest(`${srv.url}/api/v1/openapi.json`, (res) => resolve(res.statusCode)).on('error', reject).end()));
      } finally {
        await srv.close();
      }
      await assert.rejects(startHttpServer({ store: api.store, listen: '0.0.0.0:0', enforcers: [] }), /not a loopback address/);
      await assert.rejects(startHttpServer({ store: api.store, listen: '127.0.0.1:0', tlsCert: cert, enforcers: [] }), /go together/);
    } finally {
      await api.close();
    }
  });
});

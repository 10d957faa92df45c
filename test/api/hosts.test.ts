// Hosts through the API: registering answers the agent token once (stored hashed: never shown
// again), the host's token authenticates as that host's agent, rotation replaces it, removal ends it.
import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
import { HostTokens } from '../../src/server/hosts.js';
import { startApi, type ApiHarness } from '../support/api.js';

let api: ApiHarness;
before(async () => {
  api = await startApi();
  await api.token('adm', 'admin');
});
after(async () => api.close());

test('POST /hosts answers the token once; it names the host; rotate and delete end it', async () => {
  const made = await api.req('adm', 'POST', '/api/v1/hosts', { name: 'hv7' });
  assert.equal(made.status, 201);
  assert.match(made.body.token, /\S{20,}/);
  const tokens = new HostTokens(api.store);
  assert.equal(await tokens.hostOf(made.body.token), 'hv7');
  const shown = await api.req('adm', 'GET', '/api/v1/hosts/hv7');
  assert.equal(shown.status, 200);
  assert.ok(!shown.text.includes(made.body.token) && !('tokenHash' in shown.body), 'neither token nor hash shown again');
  const again = await api.req('adm', 'POST', '/api/v1/hosts', { name: 'hv7' });
  assert.equal(again.status, 409);
  const bad = await api.req('adm', 'POST', '/api/v1/hosts', { name: 'hv\u001b[31m' });
  assert.equal(bad.status, 400);
  assert.equal(bad.body.error.field, 'name');
  const rotated = await api.req('adm', 'POST', '/api/v1/hosts/hv7/rotate-token');
  assert.equal(rotated.status, 200);
  assert.notEqual(rotated.body.token, made.body.token);
  assert.equal(await new HostTokens(api.store).hostOf(made.body.token), undefined, 'the old token no longer works');
  assert.equal(await new HostTokens(api.store).hostOf(rotated.body.token), 'hv7');
  assert.equal((await api.req('adm', 'DELETE', '/api/v1/hosts/hv7')).status, 200);
  assert.equal(await new HostTokens(api.store).hostOf(rotated.body.token), undefined);
  assert.equal((await api.req('adm', 'GET', '/api/v1/hosts/hv7')).status, 404);
});

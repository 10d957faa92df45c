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

test('a host\'s gateway through the API: PUT, GET, DELETE, audited with the token; bad input is 400 naming the field and stores nothing', async () => {
  const { createNetwork } = await import('../../src/core/service/networks.js');
  const net = await createNetwork(api.store, { name: 'gwnet', subnets: ['192.0.2.0/24,gateway=192.0.2.1'] }, 'test');
  assert.deepEqual((await api.req('adm', 'GET', '/api/v1/hosts/hv9/gateway')).body, { host: 'hv9', gateway: null }, 'a host that never had one, registered or not');
  const bad: Array<[unknown, string, number]> = [
    [{ via: '192.0.2.300' }, 'via', 400],
    [{ via: 'fe80::1' }, 'via', 400], // link-local without whenUp
    [{ via: '2001:db8::1', whenUp: 'gwnet' }, 'via', 400], // no IPv6 on that network
    [{ via: '192.0.2.254', metric: -1 }, 'metric', 400],
    [{ via: '192.0.2.254', metric: 'ten' }, 'metric', 400],
    [{ via: '192.0.2.254', color: 'red' }, 'color', 400],
    [{}, 'via', 400],
    [{ via: '192.0.2.254', whenUp: 'nonet' }, 'when-up', 404],
  ];
  for (const [body, field, status] of bad) {
    const r = await api.req('adm', 'PUT', '/api/v1/hosts/hv9/gateway', body);
    assert.equal(r.status, status, `${JSON.stringify(body)}: ${r.text}`);
    assert.equal(r.body.error.field, field, `${JSON.stringify(body)}: ${r.text}`);
  }
  const badHost = await api.req('adm', 'PUT', `/api/v1/hosts/${encodeURIComponent('hv\u001b[31m')}/gateway`, { via: '192.0.2.254' });
  assert.equal(badHost.status, 400);
  assert.equal(badHost.body.error.field, 'host');
  assert.deepEqual((await api.req('adm', 'GET', '/api/v1/hosts/hv9/gateway')).body.gateway, null, 'nothing stored');

  const set = await api.req('adm', 'PUT', '/api/v1/hosts/hv9/gateway', { via: '192.0.2.254', whenUp: 'gwnet', metric: 7 });
  assert.equal(set.status, 200, set.text);
  assert.deepEqual(set.body, { host: 'hv9', gateway: { via: '192.0.2.254', whenUp: net.uuid, metric: 7 } });
  assert.deepEqual((await api.req('adm', 'GET', '/api/v1/hosts/hv9/gateway')).body, set.body);
  assert.equal((await api.req('adm', 'GET', '/api/v1/hosts/hv10/gateway')).body.gateway, null, 'per host');
  const events = await api.store.listEvents({ object: 'hv9' });
  const ev = events.filter((e) => e.action === 'host.gateway.set');
  assert.equal(ev.length, 1, JSON.stringify(events));
  assert.equal(ev[0]!.actor, 'token:adm');
  assert.ok(ev[0]!.requestId, 'with the request id');

  assert.deepEqual((await api.req('adm', 'DELETE', '/api/v1/hosts/hv9/gateway')).body, { host: 'hv9', unset: true });
  assert.deepEqual((await api.req('adm', 'DELETE', '/api/v1/hosts/hv9/gateway')).body, { host: 'hv9', unset: false });
  assert.equal((await api.req('adm', 'GET', '/api/v1/hosts/hv9/gateway')).body.gateway, null);
});

test('PATCH /vifs/:vif with host binds the interface on that host and moves the VM there (vif bind --host); host goes with ifname alone', async () => {
  const { createNetwork } = await import('../../src/core/service/networks.js');
  const { addVif, createVm } = await import('../../src/core/service/vms.js');
  await createNetwork(api.store, { name: 'bindnet', subnets: ['198.51.100.0/24'] }, 'test');
  await createVm(api.store, { name: 'mover', host: 'hv1' }, 'test');
  await addVif(api.store, { vm: 'mover', network: 'bindnet', mac: '52:54:00:00:09:01' }, 'test');
  for (const body of [{ host: 'hv2' }, { host: 'hv2', ifname: 'vnet9', locking: 'locked' }, { host: 'hv2', ifname: null }]) {
    const r = await api.req('adm', 'PATCH', '/api/v1/vifs/mover:0', body);
    assert.equal(r.status, 400, JSON.stringify(body));
    assert.equal(r.body.error.field, 'host');
  }
  assert.equal((await api.store.listVms()).find((v) => v.name === 'mover')?.host, 'hv1', 'nothing changed');
  const r = await api.req('adm', 'PATCH', '/api/v1/vifs/mover:0', { host: 'hv2', ifname: 'vnet9' });
  assert.equal(r.status, 200, r.text);
  assert.equal(r.body.ifname, 'vnet9');
  assert.equal((await api.store.listVms()).find((v) => v.name === 'mover')?.host, 'hv2');
});

import { test, after, before } from 'node:test';
import assert from 'node:assert/strict';
import { request } from 'node:http';
import { XapiClient, XapiError, XapiTransportError, encodeRequest, decodeResponse, float, masterUrl } from '../../src/server/xapi/client.js';
import { startXapiSim, type XapiSim } from '../support/xapi-sim/sim.js';

let sim: XapiSim;
before(async () => {
  sim = await startXapiSim();
});
after(async () => {
  await sim.close();
});

const client = (over: Partial<ConstructorParameters<typeof XapiClient>[0]> = {}): XapiClient =>
  new XapiClient({ url: sim.url, user: 'root', password: 'secret', ...over });

test('floats are written with a fraction, other numbers unchanged', () => {
  const text = encodeRequest(1, 'event.from', ['s', ['vm'], '', float(30), 7, float(2.5)]);
  assert.match(text, /"",30\.0,7,2\.5\]/);
  assert.equal(JSON.parse(text).params[3], 30);
});

test('both error shapes decode to XapiError with code and params', () => {
  assert.throws(() => decodeResponse('m', { jsonrpc: '2.0', error: { code: 1, message: 'SESSION_INVALID', data: ['OpaqueRef:x'] }, id: 1 }), (e: unknown) => e instanceof XapiError && e.xapiCode === 'SESSION_INVALID' && e.params[0] === 'OpaqueRef:x');
  assert.throws(() => decodeResponse('m', { result: null, error: ['HOST_IS_SLAVE', '10.0.0.1'], id: 1 }), (e: unknown) => e instanceof XapiError && e.xapiCode === 'HOST_IS_SLAVE' && e.params[0] === '10.0.0.1');
  // Some mocks send data as a bare string.
  assert.throws(() => decodeResponse('m', { jsonrpc: '2.0', error: { code: 1, message: 'VM_LACKS_FEATURE', data: 'OpaqueRef:vm' }, id: 1 }), (e: unknown) => e instanceof XapiError && e.params[0] === 'OpaqueRef:vm');
  assert.equal(decodeResponse('m', { result: '', error: null, id: 'a' }), '');
});

test('masterUrl keeps scheme and port, brackets IPv6', () => {
  assert.equal(masterUrl('https://10.0.0.2:8443', '10.0.0.1'), 'https://10.0.0.1:8443');
  assert.equal(masterUrl('https://10.0.0.2', 'fd00::1'), 'https://[fd00::1]');
});

test('login sends version and originator; calls work; logout ends the session', async () => {
  const c = client({ originator: 'ipvisor-test' });
  const pools = await c.call<Record<string, { name_label: string }>>('pool.get_all_records');
  assert.equal(Object.values(pools)[0]!.name_label, 'lab-pool');
  assert.deepEqual(sim.logins.at(-1), ['root', 'secret', '1.0', 'ipvisor-test']);
  const session = c.session!;
  assert.ok(sim.sessions.has(session));
  await c.logout();
  assert.ok(!sim.sessions.has(session));
});

test('wrong password is SESSION_AUTHENTICATION_FAILED, not retried', async () => {
  const before = sim.logins.length;
  const c = client({ password: 'nope' });
  await assert.rejects(c.call('pool.get_all'), (e: unknown) => e instanceof XapiError && e.xapiCode === 'SESSION_AUTHENTICATION_FAILED' && !e.message.includes('nope'));
  assert.equal(sim.logins.length - before, 1);
  await c.logout();
});

test('SESSION_INVALID triggers one re-login and the call is replayed', async () => {
  const c = client();
  await c.call('pool.get_all');
  const first = c.session;
  sim.invalidateSessions();
  const refs = await c.call<string[]>('VM.get_all');
  assert.equal(refs.length, 3);
  assert.notEqual(c.session, first);
  await c.logout();
});

test('HOST_IS_SLAVE: the client moves to the master on the same scheme and port', async () => {
  const member = await startXapiSim({ host: '127.0.0.2', port: sim.port, slaveOf: '127.0.0.1' });
  try {
    const c = new XapiClient({ url: member.url, user: 'root', password: 'secret' });
    const hosts = await c.call<string[]>('host.get_all');
    assert.equal(hosts.length, 1);
    assert.equal(c.url, `http://127.0.0.1:${sim.port}`);
    assert.ok(member.logins.length === 1);
    await c.logout();
  } finally {
    await member.close();
  }
});

test('event.from: empty token returns every object as add; then coalesced mods with string ids, lower-case classes, del without snapshot', async () => {
  const c = client();
  const first = await c.eventFrom(['vm', 'vif'], '', 1);
  assert.ok(first.events.length >= 6);
  assert.ok(first.events.every((e) => e.operation === 'add' && (e.class === 'vm' || e.class === 'vif') && e.snapshot));
  assert.match(first.token, /^\d{20},\d{20}$/);
  const vifRef = sim.addVif('web-01', 'sspn-internal');
  sim.modify('VIF', vifRef, { MTU: 9000 });
  sim.deleteVif([...sim.table('VIF').keys()][0]!);
  const next = await c.eventFrom(['vm', 'vif'], first.token, 5);
  const added = next.events.filter((e) => e.ref === vifRef);
  assert.equal(added.length, 1, 'add + mod coalesce into one event');
  assert.equal(typeof added[0]!.id, 'string');
  assert.equal((added[0]!.snapshot as { MTU: number }).MTU, 9000);
  const del = next.events.find((e) => e.operation === 'del');
  assert.ok(del && del.class === 'vif' && del.snapshot === undefined);
  // Nothing new: returns empty after the timeout with a fresh token.
  const idle = await c.eventFrom(['vm'], next.token, 0.2);
  assert.deepEqual(idle.events, []);
  await c.logout();
});

test('event.from rejects an integer timeout (the float quirk) and old tokens after loss', async () => {
  const c = client();
  const session = await c.login();
  const body = JSON.stringify({ jsonrpc: '2.0', method: 'event.from', params: [session, ['vm'], '', 1], id: 1 });
  const res = await new Promise<string>((resolve, reject) => {
    const req = request(`${sim.url}/jsonrpc`, { method: 'POST', headers: { 'content-type': 'application/json' } }, (r) => {
      let t = '';
      r.on('data', (d) => (t += d));
      r.on('end', () => resolve(t));
    });
    req.on('error', reject);
    req.end(body);
  });
  assert.match(res, /INTERNAL_ERROR/);
  const { token } = await c.eventFrom(['vm'], '', 1);
  sim.loseEvents();
  await assert.rejects(c.eventFrom(['vm'], token, 1), (e: unknown) => e instanceof XapiError && e.xapiCode === 'EVENTS_LOST');
  await assert.rejects(c.eventFrom(['vm'], 'garbage', 1), (e: unknown) => e instanceof XapiError && e.xapiCode === 'EVENT_FROM_TOKEN_PARSE_FAILURE');
  await c.logout();
});

test('transport errors: HTML 500 on malformed requests, connection refused', async () => {
  const res = await fetch(`${sim.url}/jsonrpc`, { method: 'POST', body: '{not json' });
  assert.equal(res.status, 500);
  assert.match(res.headers.get('content-type') ?? '', /text\/html/);
  const dead = new XapiClient({ url: 'http://127.0.0.1:1', user: 'root', password: 'secret' });
  await assert.rejects(dead.call('pool.get_all'), (e: unknown) => e instanceof XapiTransportError);
});

test('alternative wire name Class_message answers too', async () => {
  const c = client();
  const s = await c.login();
  const body = JSON.stringify({ jsonrpc: '2.0', method: 'VM_get_all', params: [s], id: 5 });
  const res = await fetch(`${sim.url}/jsonrpc`, { method: 'POST', body, headers: { 'content-type': 'application/json' } });
  const json = (await res.json()) as { result: string[] };
  assert.equal(json.result.length, sim.table('VM').size);
  await c.logout();
});

test('network.set_default_locking_mode is refused with VIF_IN_USE while a VIF is attached', async () => {
  const c = client();
  const net = sim.refByName('network', 'sspn-internal');
  await assert.rejects(c.call('network.set_default_locking_mode', net, 'disabled'), (e: unknown) => e instanceof XapiError && e.xapiCode === 'VIF_IN_USE' && e.params[0] === net);
  const himn = sim.refByName('network', 'Host internal management network');
  await c.call('network.set_default_locking_mode', himn, 'disabled');
  assert.equal(sim.record('network', himn).default_locking_mode, 'disabled');
  await c.logout();
});

test('HA failover: an unreachable master is replaced by a listed member (which may redirect to the new master)', async () => {
  const master = await startXapiSim({ host: '127.0.0.4' });
  const member = await startXapiSim({ host: '127.0.0.6', port: master.port, slaveOf: '127.0.0.4' });
  try {
    // Nothing listens on 127.0.0.5: the old master is gone.
    const c = new XapiClient({ url: `http://127.0.0.5:${master.port}`, user: 'root', password: 'secret', members: ['127.0.0.6'] });
    assert.equal((await c.call<string[]>('pool.get_all')).length, 1);
    assert.equal(c.url, `http://127.0.0.4:${master.port}`);
    assert.equal(member.logins.length, 1, 'the member was asked and redirected');
    await c.logout();
    // A XAPI answer is never failed over.
    const bad = new XapiClient({ url: master.url, user: 'root', password: 'nope', members: ['127.0.0.6'] });
    await assert.rejects(bad.call('pool.get_all'), (e: unknown) => e instanceof XapiError && e.xapiCode === 'SESSION_AUTHENTICATION_FAILED');
    assert.equal(member.logins.length, 1);
  } finally {
    await member.close();
    await master.close();
  }
});

// /metrics: a real scrape of a real server (SQLite store with pools and allocations) checked by
// promtool and for the series and values it must carry; and the access rule on real listeners: no
// token on loopback, admin or auditor token on an address that is not (a listener inside a network
// namespace the test makes, so the decision is the socket's local address, nothing the client says).
import assert from 'node:assert/strict';
import { execFile, spawn, type ChildProcess } from 'node:child_process';
import { existsSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { createInterface } from 'node:readline';
import { after, before, describe, test } from 'node:test';
import { promisify } from 'node:util';
import { createNetwork } from '../../src/core/service/networks.js';
import { createPool } from '../../src/core/service/pools.js';
import { addVif, createVm } from '../../src/core/service/vms.js';
import { allocate, reserve } from '../../src/core/service/ip.js';
import { createToken } from '../../src/core/service/auth.js';
import { addHost, recordAgentReport } from '../../src/server/hosts.js';
import { openStore } from '../../src/core/store/open.js';
import type { Store } from '../../src/core/store/store.js';
import { arrivedOnLoopback } from '../../src/server/api/access.js';
import { startHttpServer, startMetricsServer } from '../../src/server/http.js';
import { cliInEnv } from '../support/cli.js';
import { netnsSkipReason, sh } from '../support/netns.js';
import { skipUnless } from '../support/skip.js';
import { guardRootNamespace } from '../support/root-guard.js';

guardRootNamespace();

const pexec = promisify(execFile);
const A = 'test';
const ROLES = ['admin', 'operator', 'auditor', 'tenant'] as const;

/** Parses the exposition text into name{labels} -> value (comments skipped). */
function samples(text: string): Map<string, number> {
  const out = new Map<string, number>();
  for (const line of text.split('\n')) {
    if (!line || line.startsWith('#')) continue;
    const i = line.lastIndexOf(' ');
    out.set(line.slice(0, i), Number(line.slice(i + 1)));
  }
  return out;
}

async function fixture(store: Store): Promise<Record<(typeof ROLES)[number], string>> {
  await createNetwork(store, { name: 'lan', subnets: ['192.0.2.0/24,gateway=192.0.2.1', '2001:db8:10::/64'] }, A);
  await createPool(store, { name: 'lan4', network: 'lan', cidrs: ['192.0.2.0/28'] }, A);
  await createPool(store, { name: 'lan6', network: 'lan', cidrs: ['2001:db8:10::/120'] }, A);
  await createVm(store, { name: 'web', owner: undefined, host: 'hv1' }, A);
  await addVif(store, { vm: 'web', network: 'lan', mac: '52:54:00:00:01:01' }, A);
  await allocate(store, { vif: 'web:0', pool: 'lan4' }, A);
  await allocate(store, { vif: 'web:0', pool: 'lan4' }, A);
  await allocate(store, { vif: 'web:0', pool: 'lan6' }, A);
  await reserve(store, { address: '192.0.2.14', pool: 'lan4' }, A);
  const tokens = {} as Record<(typeof ROLES)[number], string>;
  for (const role of ROLES) {
    if (role === 'tenant') {
      const { createTenant } = await import('../../src/core/service/tenants.js');
      await createTenant(store, { name: 'acme', pools: ['lan4'] }, A);
    }
    tokens[role] = (await createToken(store, { name: `t-${role}`, role, tenant: role === 'tenant' ? 'acme' : undefined }, A)).token;
  }
  return tokens;
}

describe('metrics', () => {
  let dir: string;
  let store: Store;
  let tokens: Record<(typeof ROLES)[number], string>;

  before(async () => {
    dir = mkdtempSync(join(tmpdir(), 'ipvisor-metrics-'));
    store = await openStore(join(dir, 'ipvisor.db'), { create: true });
    tokens = await fixture(store);
  });
  after(async () => {
    await store.close();
    rmSync(dir, { recursive: true, force: true });
  });

  test('the loopback decision reads the local address only', () => {
    for (const a of ['127.0.0.1', '127.9.8.7', '::1', '::ffff:127.0.0.1']) assert.equal(arrivedOnLoopback(a), true, a);
    for (const a of [undefined, '', '192.0.2.1', '::', '::ffff:10.0.0.1', '2001:db8::1', '1127.0.0.1']) assert.equal(arrivedOnLoopback(a), false, String(a));
  });

  test('a real scrape on loopback without a token passes promtool and carries the series with sane values', async (t) => {
    const reason = skipUnless(!existsSync('/usr/bin/promtool') && 'promtool is not installed (Debian package prometheus, .ci/apt-metrics.txt)');
    if (reason) return t.skip(reason);
    const srv = await startHttpServer({ store, listen: '127.0.0.1:0', enforcers: [] });
    try {
      // counted while this process serves /metrics: a failure by reason, an API call by route template
      await assert.rejects(allocate(store, { vif: 'web:0', address: '192.0.2.1', pool: 'lan4' }, A), /already taken|gateway|not inside|reserved/);
      await assert.rejects(allocate(store, { vif: 'web:0', address: '192.0.2.2' }, A), { code: 'ADDRESS_TAKEN' });
      await allocate(store, { vif: 'web:0', pool: 'lan4' }, A);
      const vm = await fetch(`${srv.url}/api/v1/vms/web`, { headers: { authorization: `Bearer ${tokens.auditor}` } });
      assert.equal(vm.status, 200);
      const { token: agentToken } = await addHost(store, 'hv1', A);
      assert.ok(agentToken);
      const revision = await store.currentRevision();
      await recordAgentReport(store, 'hv1', { revision: revision - 3, digest: 'd', storeIdentity: 'x', ok: true, changes: 0, drift: [], warnings: [], agentVersion: '0.1.0', at: '2026-01-02T03:04:05.000Z' });

      const res = await fetch(`${srv.url}/metrics`);
      assert.equal(res.status, 200);
      assert.match(String(res.headers.get('content-type')), /^text\/plain; version=0\.0\.4/);
      const text = await res.text();

      const check = spawn('promtool', ['check', 'metrics'], { stdio: ['pipe', 'pipe', 'pipe'] });
      let out = '';
      check.stdout.on('data', (d) => (out += d));
      check.stderr.on('data', (d) => (out += d));
      check.stdin.end(text);
      const code = await new Promise<number | null>((r) => check.on('close', r));
      assert.equal(code, 0, `promtool check metrics:\n${out}`);
      assert.equal(out.trim(), '', `promtool has findings:\n${out}`);

      for (const line of text.split('\n')) if (line.startsWith('# TYPE ')) assert.match(line, /^# TYPE ipvisor_/, 'every series is prefixed ipvisor_');
      const s = samples(text);
      const v = (k: string) => {
        assert.ok(s.has(k), `${k} in the scrape`);
        return s.get(k)!;
      };
      // lan4 is 192.0.2.0/28: 16 addresses less network and broadcast = 14 usable (poolUsage's
      // total); 3 allocated + 1 reserved used
      assert.equal(v('ipvisor_pool_addresses{network="lan",pool="lan4",family="4",state="used"}'), 4);
      assert.equal(v('ipvisor_pool_addresses{network="lan",pool="lan4",family="4",state="free"}'), 10);
      assert.ok(Math.abs(v('ipvisor_pool_utilisation_ratio{network="lan",pool="lan4",family="4"}') - 4 / 14) < 1e-9);
      const used6 = v('ipvisor_pool_addresses{network="lan",pool="lan6",family="6",state="used"}');
      const free6 = v('ipvisor_pool_addresses{network="lan",pool="lan6",family="6",state="free"}');
      assert.equal(used6, 1);
      assert.ok(free6 > 200 && free6 < 256, `lan6 free ${free6}`);
      assert.ok(Math.abs(v('ipvisor_pool_utilisation_ratio{network="lan",pool="lan6",family="6"}') - 1 / (used6 + free6)) < 1e-9);

      assert.equal(v('ipvisor_allocations_total{pool="lan4",kind="additional"}'), 1);
      assert.equal(v('ipvisor_allocation_failures_total{pool="lan4",reason="ADDRESS_TAKEN"}'), 1);
      assert.ok([...s.keys()].some((k) => k.startsWith('ipvisor_allocation_failures_total{pool="lan4"') && !k.includes('ADDRESS_TAKEN')), 'the gateway refusal is counted with its reason');

      assert.equal(v('ipvisor_http_request_duration_seconds_count{method="GET",route="/api/v1/vms/:vm",status="200"}'), 1);
      assert.ok(![...s.keys()].some((k) => k.includes('/api/v1/vms/web')), 'route templates only, never raw URLs');

      assert.equal(v('ipvisor_agent_last_seen_timestamp_seconds{host="hv1"}'), Date.parse('2026-01-02T03:04:05.000Z') / 1000);
      assert.equal(v('ipvisor_agent_revision_lag{host="hv1"}'), (await store.currentRevision()) - (revision - 3));

      // declared even before anything happened: apply, repairs, hooks, store errors
      for (const name of ['ipvisor_apply_duration_seconds', 'ipvisor_changes_applied_total', 'ipvisor_drift_repairs_total', 'ipvisor_hook_duration_seconds', 'ipvisor_store_errors_total', 'ipvisor_process_cpu_seconds_total']) {
        assert.match(text, new RegExp(`^# TYPE ${name} `, 'm'), name);
      }
      // the second scrape sees the request of the first, by its template
      const again = samples(await (await fetch(`${srv.url}/metrics`)).text());
      assert.ok((again.get('ipvisor_http_request_duration_seconds_count{method="GET",route="/metrics",status="200"}') ?? 0) >= 1);
    } finally {
      await srv.close();
    }
  });

  test('off loopback: 401 without a token, 403 for operator and tenant, 200 for admin and auditor (listener in a test namespace)', async (t) => {
    const reason = (await netnsSkipReason()) || skipUnless(!existsSync('/usr/bin/curl') && 'curl is not installed');
    if (reason) return t.skip(reason);
    const ns = `ipvm${process.pid % 100000}`;
    let child: ChildProcess | undefined;
    await sh(['ip', 'netns', 'add', ns]);
    try {
      await sh(['ip', '-n', ns, 'link', 'set', 'lo', 'up']);
      await sh(['ip', '-n', ns, 'link', 'add', 'veth-a', 'type', 'veth', 'peer', 'name', 'veth-b']);
      await sh(['ip', '-n', ns, 'addr', 'add', '198.51.100.7/24', 'dev', 'veth-a']);
      await sh(['ip', '-n', ns, 'link', 'set', 'veth-a', 'up']);
      await sh(['ip', '-n', ns, 'link', 'set', 'veth-b', 'up']);
      child = spawn('ip', ['netns', 'exec', ns, process.execPath, '--import', 'tsx', new URL('../support/metrics-listener.ts', import.meta.url).pathname, join(dir, 'ipvisor.db'), '198.51.100.7:0', '127.0.0.1:0'], { stdio: ['ignore', 'pipe', 'inherit'] });
      const lines = createInterface({ input: child.stdout! });
      const urls: string[] = [];
      for await (const line of lines) {
        urls.push(line.trim());
        if (urls.length === 2) break;
      }
      const [outside, loop] = urls;
      assert.match(outside, /^http:\/\/198\.51\.100\.7:\d+$/);
      const status = async (url: string, token?: string, extra: string[] = []) => {
        const headers = [...(token ? [`authorization: Bearer ${token}`] : []), ...extra].join('\n');
        // headers on stdin: no token on a command line
        const p = pexec('ip', ['netns', 'exec', ns, 'curl', '-s', '-o', '/dev/null', '-w', '%{http_code}', '-H', '@-', `${url}/metrics`]);
        p.child.stdin!.end(headers + '\n');
        return Number((await p).stdout);
      };
      assert.equal(await status(loop), 200, 'loopback listener in the namespace, no token');
      assert.equal(await status(outside), 401);
      // nothing the client says makes it loopback
      assert.equal(await status(outside, undefined, ['host: 127.0.0.1', 'x-forwarded-for: 127.0.0.1']), 401);
      assert.equal(await status(outside, 'ipvt_not-a-token'), 401);
      assert.equal(await status(outside, tokens.operator), 403);
      assert.equal(await status(outside, tokens.tenant), 403);
      assert.equal(await status(outside, tokens.admin), 200);
      assert.equal(await status(outside, tokens.auditor), 200);
    } finally {
      if (child?.pid) {
        child.kill('SIGTERM');
        await new Promise((r) => (child!.exitCode !== null ? r(null) : child!.on('exit', r)));
      }
      await sh(['ip', 'netns', 'del', ns], { allowFail: true });
    }
  });

  test('agent --listen: /metrics only, on loopback only (the agent has no tokens to check)', async () => {
    const srv = await startMetricsServer('127.0.0.1:0');
    try {
      const res = await fetch(`${srv.url}/metrics`);
      assert.equal(res.status, 200);
      const text = await res.text();
      assert.match(text, /^# TYPE ipvisor_apply_duration_seconds histogram$/m);
      assert.match(text, /^# TYPE ipvisor_drift_repairs_total counter$/m);
      // nothing of the API there, and a token is no use: nobody can authenticate
      assert.equal((await fetch(`${srv.url}/api/v1/vms`)).status, 401);
    } finally {
      await srv.close();
    }
    await assert.rejects(startMetricsServer('198.51.100.7:0'), { code: 'VALIDATION' });
    const tokenFile = join(dir, 'agent-token');
    writeFileSync(tokenFile, 'ipva_hv1_x\n', { mode: 0o600 });
    // refused before anything starts (no state directory, no socket, nothing enforced)
    const r = await cliInEnv(['agent', '--listen', '0.0.0.0:9999', '--server', 'http://127.0.0.1:1', '--token-file', tokenFile, '--state-dir', join(dir, 'no-state')]);
    assert.equal(r.code, 2, r.err);
    assert.match(r.err, /listen: 0\.0\.0\.0:9999 is not a loopback address/);
    assert.equal(existsSync(join(dir, 'no-state')), false);
  });
});

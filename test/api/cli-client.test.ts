// The CLI in --server mode against the CLI on a local store: the same commands (the foundation
// contract's, errors included) give the same output and the same exit status, UUIDs and times aside.
import assert from 'node:assert/strict';
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { after, before, describe, test } from 'node:test';
import { runCli } from '../../src/cli/main.js';
import { cli, tempDb } from '../support/cli.js';
import { startApi, type ApiHarness } from '../support/api.js';

async function remote(url: string, tokenFile: string, ...args: string[]) {
  let stdout = '';
  let stderr = '';
  const code = await runCli(['--server', url, '--token-file', tokenFile, ...args], {
    stdout: (s) => (stdout += s),
    stderr: (s) => (stderr += s),
    env: { ...process.env, IPVISOR_ACTOR: 'tester', IPVISOR_DB: '', IPVISOR_SERVER: '', IPVISOR_TOKEN: '' },
  });
  return { code, stdout, stderr };
}

const norm = (s: string) => s
  .replace(/[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}/g, 'UUID')
  .replace(/\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z/g, 'TIME')
  .replace(/token:tester/g, 'tester')
  // the server's store has one event more (its token) and every API write has a request id
  .replace(/"id": \d+/g, '"id": ID')
  .replace(/"requestId": ("[^"]*"|null)/g, '"requestId": RID');

const COMMANDS: string[][] = [
  ['network', 'create', 'lan', '--subnet', '192.0.2.0/24,gateway=192.0.2.1', '--subnet', '2001:db8:10::/64,gateway=fe80::1', '--dns', '192.0.2.53', '--mtu', '1450', '--default-locking', 'unlocked'],
  ['network', 'create', 'bad', '--subnet', '10.0.0.1/24'],
  ['network', 'create', 'lan'],
  ['pool', 'create', 'lan4', '--network', 'lan', '--cidr', '192.0.2.0/24', '--exclude', '192.0.2.2', '--exclude', '192.0.2.8/30'],
  ['pool', 'create', 'lan6', '--network', 'lan', '--cidr', '2001:db8:10::/64'],
  ['pool', 'create', 'public', '--network', 'lan', '--purpose', 'routed', '--cidr', '203.0.113.0/24'],
  ['tenant', 'create', 'acme'],
  ['vm', 'add', 'web1', '--owner', 'acme', '--host', 'hv1'],
  ['vm', 'add', 'web2', '--owner', 'nobody', '--host', 'hv1'],
  ['vm', 'add', 'web2', '--host', 'hv1'],
  ['vif', 'add', 'web1', '--network', 'lan', '--mac', '52:54:00:AA:BB:01'],
  ['vif', 'add', 'web2', '--network', 'lan', '--mac', '52:54:00:aa:bb:01'],
  ['vif', 'add', 'web2', '--network', 'lan', '--mac', 'zz'],
  ['vif', 'add', 'web2', '--network', 'lan', '--mac', '52:54:00:AA:BB:02'],
  ['ip', 'allocate', '--vif', 'web1:0'],
  ['ip', 'allocate', '--vif', 'web1:0', '--family', '4'],
  ['ip', 'allocate', '--vif', 'web1:0', '--family', '6', '--request-id', 'order-42'],
  ['ip', 'allocate', '--vif', 'web1:0', '--family', '6', '--request-id', 'order-42'],
  ['ip', 'allocate', '--vif', 'web1:0', '--family', '4', '--request-id', 'order-42'],
  ['ip', 'allocate', '--vif', 'web2:0', '--address', '192.0.2.3'],
  ['ip', 'allocate', '--vif', 'web2:0', '--address', '192.0.2.50'],
  ['ip', 'allocate', '--vif', 'web2:0', '--pool', 'public', '--prefix-length', '29'],
  ['ip', 'allocate', '--vif', 'nosuch:0', '--family', '4'],
  ['ip', 'reserve', '192.0.2.60', '--pool', 'lan4', '--note', 'printer'],
  ['ip', 'list'],
  ['ip', 'list', '--vm', 'web1'],
  ['ip', 'show', '192.0.2.3'],
  ['ip', 'show', '192.0.2.9'],
  ['ip', 'show', '203.0.113.0/29'],
  ['ip', 'release', '192.0.2.60'],
  ['ip', 'release', '203.0.113.0/29'],
  ['ip', 'release', '10.9.9.9'],
  ['vif', 'list'],
  ['vif', 'list', '--vm', 'web2'],
  ['vif', 'set', 'web2:0', '--locking', 'disabled'],
  ['vm', 'list'],
  ['vm', 'show', 'web1'],
  ['vm', 'show', 'nope'],
  ['vm', 'set', 'web2', '--owner', 'acme'],
  ['network', 'show', 'lan'],
  ['network', 'list'],
  ['network', 'set', 'lan', '--mtu', '1400'],
  ['network', 'host-address', 'add', 'lan', '192.0.2.254/24'],
  ['network', 'host-address', 'list', 'lan'],
  ['pool', 'list'],
  ['pool', 'show', 'lan4'],
  ['pool', 'set', 'lan4', '--exclude', '192.0.2.200'],
  ['pool', 'delete', 'lan4'],
  ['network', 'delete', 'lan'],
  // a VIF's host interface and a host's gateway: through PATCH /vifs and /hosts/:host/gateway
  ['vif', 'bind', 'web1:0', '--ifname', 'vnet3'],
  ['vif', 'bind', 'web1:0', '--ifname', 'vnet4', '--host', 'hv2'],
  ['vif', 'bind', 'web1:0', '--ifname', 'bad:name'],
  ['vif', 'bind', 'nosuch:0', '--ifname', 'vnet5'],
  ['vif', 'unbind', 'web1:0'],
  ['vm', 'show', 'web1'],
  ['host', 'gateway', 'show', '--host', 'hv1'],
  ['host', 'gateway', 'set', '--host', 'hv1', '--via', '192.0.2.254', '--when-up', 'lan', '--metric', '20'],
  ['host', 'gateway', 'show', '--host', 'hv1'],
  ['host', 'gateway', 'set', '--host', 'hv1', '--via', '192.0.2.300'],
  ['host', 'gateway', 'set', '--host', 'hv1', '--via', '192.0.2.254', '--metric', 'ten'],
  ['host', 'gateway', 'set', '--host', 'hv1', '--via', '192.0.2.254', '--when-up', 'nonet'],
  ['host', 'gateway', 'unset', '--host', 'hv1'],
  ['host', 'gateway', 'unset', '--host', 'hv1'],
  ['vif', 'delete', 'web2:0'],
  ['vm', 'delete', 'web2'],
  ['tenant', 'show', 'acme'],
  ['events', '--object', 'web1'],
];

describe('CLI in --server mode', () => {
  const local = tempDb();
  let api: ApiHarness;
  let url: string;
  let tokenFile: string;
  before(async () => {
    api = await startApi({ failedAuthLimit: 100000 });
    url = await api.app.listen({ host: '127.0.0.1', port: 0 });
    tokenFile = join(api.dir, 'token');
    writeFileSync(tokenFile, (await api.token('tester', 'admin')) + '\n', { mode: 0o600 });
    assert.equal((await cli(local.db, 'init')).code, 0);
  });
  after(async () => {
    await api.close();
    local.cleanup();
  });

  test('the foundation commands give the same output and exit status, in text and in JSON', async () => {
    for (const args of COMMANDS) {
      for (const json of [false, true]) {
        // each command once per store: JSON for the read-only ones, text for the writes, both for errors
        const a = [...args, ...(json ? ['--json'] : [])];
        const l = await cli(local.db, ...a);
        const r = await remote(url, tokenFile, ...a);
        assert.equal(r.code, l.code, `${a.join(' ')}: exit ${r.code} vs local ${l.code}\n${r.stderr}${l.stderr}`);
        if (args[0] === 'events' && !json) {
          // the actor column is token:tester on the server (wider) and UUIDs are cut: same rows
          assert.equal(r.stdout.split('\n').length, l.stdout.split('\n').length, `${a.join(' ')}: rows`);
          continue;
        }
        assert.equal(norm(r.stdout), norm(l.stdout), `${a.join(' ')}: stdout`);
        assert.equal(norm(r.stderr), norm(l.stderr), `${a.join(' ')}: stderr`);
      }
    }
  });

  test('a missing or bad token, an unreachable server and a local-only command fail with their codes', async () => {
    const bad = join(api.dir, 'bad-token');
    writeFileSync(bad, 'ipvt_nope\n', { mode: 0o600 });
    const r = await remote(url, bad, 'vm', 'list', '--json');
    assert.equal(r.code, 1);
    assert.equal(JSON.parse(r.stderr).error.code, 'UNAUTHORIZED');
    const down = await remote('http://127.0.0.1:9', tokenFile, 'vm', 'list');
    assert.equal(down.code, 1);
    assert.match(down.stderr, /cannot reach http:\/\/127\.0\.0\.1:9/);
    const plan = await remote(url, tokenFile, 'plan');
    assert.equal(plan.code, 2);
    assert.match(plan.stderr, /not available with --server/);
  });
});

// nft -j element forms -> the compiler's canonical element text (what observe diffs against).
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { elementText } from '../../src/agent/host/nft.js';
import { isRelevantNftEvent } from '../../src/agent/nft-monitor.js';
import { guardRootNamespace } from '../support/root-guard.js';

guardRootNamespace();

test('nft -j elements become the compiler\'s element text', () => {
  assert.equal(elementText({ concat: ['vnet1', '52:54:00:AA:00:01'] }), '"vnet1" . 52:54:00:aa:00:01');
  assert.equal(elementText({ concat: ['vnet1', { prefix: { addr: '203.0.113.16', len: 29 } }] }), '"vnet1" . 203.0.113.16/29');
  assert.equal(elementText({ concat: ['vnet1', { range: ['0x20010db8000000000000000000000000', '0x20010db800000000ffffffffffffffff'] }] }),
    '"vnet1" . 0x20010db8000000000000000000000000-0x20010db800000000ffffffffffffffff');
  assert.equal(elementText({ concat: ['vnet2', '0x1'] }), '"vnet2" . 0x00000000000000000000000000000001');
  assert.equal(elementText('2001:db8::5'), '2001:db8::5');
  assert.equal(elementText({ elem: { val: '10.0.0.1', counter: { packets: 0, bytes: 0 } } }), '10.0.0.1');
});

test('nft monitor lines that need a reconcile', () => {
  assert.ok(isRelevantNftEvent('flush ruleset'));
  assert.ok(isRelevantNftEvent('delete table bridge ipvisor'));
  assert.ok(isRelevantNftEvent('delete element bridge ipvisor vif_ip4 { "vnet1" . 10.0.0.5 }'));
  assert.ok(isRelevantNftEvent('delete rule inet ipvisor forward handle 4'));
  // additions by others defeat the locking as surely as deletions
  assert.ok(isRelevantNftEvent('add element bridge ipvisor vif_ip4 { "vnet1" . 10.0.0.5 }'));
  assert.ok(isRelevantNftEvent('insert rule bridge ipvisor prerouting accept'));
  assert.ok(isRelevantNftEvent('add chain inet ipvisor sneaky'));
  assert.ok(!isRelevantNftEvent('add rule inet filter input accept'));
  assert.ok(!isRelevantNftEvent('add element inet other s { 10.0.0.5 }'));
  assert.ok(!isRelevantNftEvent('# new generation 21 by process 3298 (nft)'));
  assert.ok(!isRelevantNftEvent('delete table ip filter'));
  assert.ok(!isRelevantNftEvent('delete rule ip filter FORWARD handle 9'));
});

test('serve logs a burst of reconcile reasons briefly', async () => {
  const { summariseReasons } = await import('../../src/daemon/serve.js');
  assert.equal(summariseReasons(['periodic', 'periodic']), 'periodic');
  const burst = Array.from({ length: 70 }, (_, i) => `nft: delete rule bridge ipvisor prerouting handle ${i}`);
  const why = summariseReasons(burst);
  assert.match(why, /handle 2 and 67 more$/);
  assert.ok(why.length < 200);
});

test('a missing host command is named with its Debian package', async () => {
  const { createHostRunner } = await import('../../src/agent/host/exec.js');
  const saved = process.env.PATH;
  process.env.PATH = '/nonexistent';
  try {
    await assert.rejects(createHostRunner({ netns: undefined }).run(['nft', 'list', 'tables']), (e: any) => e.code === 'HOST_COMMAND' && /nft is not installed or not on PATH \(Debian package nftables\)/.test(e.message));
  } finally {
    process.env.PATH = saved;
  }
});

test('status text for XAPI pools: a table per pool, unreachable pools named, nothing when none', async () => {
  const { xapiStatusLines } = await import('../../src/cli/commands/host.js');
  assert.deepEqual(xapiStatusLines({ pools: [] }), []);
  const lines = xapiStatusLines({
    pools: [{ connection: 'lab', licenceRestricted: false, vifs: [{ vif: 'web:0', locking: 'locked', ipv4: ['10.0.0.5'], ipv6: [], pending: null, drift: null }], warnings: [] }],
    unreachable: [{ connection: 'gone', error: 'connect ECONNREFUSED 127.0.0.1:1' }],
  }).join('\n');
  assert.match(lines, /^xapi pool lab:\nVIF +LOCKING +IPV4/);
  assert.match(lines, /web:0 +locked +10\.0\.0\.5/);
  assert.match(lines, /xapi pool gone: unreachable \(connect ECONNREFUSED 127\.0\.0\.1:1\)/);
  assert.doesNotMatch(lines, /[{}]/);
});

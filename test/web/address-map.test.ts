// The pool usage picture: each address's state follows the precedence rules, and the per-/24 summary
// of a large pool agrees with counting the cells one by one.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { blockCells, blockSummaries, largestFreeBlocks, type MapInput } from '../../src/core/ipam/address-map.js';
import { parseAddress } from '../../src/core/ipam/addr.js';

const input: MapInput = {
  pool: {
    family: 4,
    entries: [{ text: '10.20.0.0/22', first: '10.20.0.0', last: '10.20.3.255' }],
    exclusions: ['10.20.0.8/30', '10.20.2.77'],
  },
  network: {
    subnets: [{ cidr: '10.20.0.0/22', family: 4, gateway: '10.20.0.1' }],
    hostAddresses: ['10.20.0.2/22'],
  },
  assignments: [
    { address: '10.20.0.3', prefixLength: 32, family: 4, kind: 'primary', holder: 'web1:0' },
    { address: '10.20.1.16', prefixLength: 29, family: 4, kind: 'routed', holder: 'web2:0' },
    { address: '10.20.0.50', prefixLength: 32, family: 4, kind: 'reserved', holder: 'printer' },
  ],
  holds: [{ start: parseAddress('10.20.0.4').value, end: parseAddress('10.20.0.4').value, until: '2026-12-01T00:00:00Z' }],
};

test('cells of a /24 carry the state of the first rule that covers them, and their holder', () => {
  const cells = blockCells(input, '10.20.0.0/24');
  assert.equal(cells.length, 256);
  const at = (last: number) => cells[last];
  assert.deepEqual([at(0).state, at(1).state, at(2).state, at(3).state, at(4).state], ['network', 'gateway', 'host-address', 'assigned', 'held']);
  assert.equal(at(3).holder, 'web1:0');
  assert.equal(at(50).state, 'reserved');
  assert.equal(at(50).holder, 'printer');
  assert.deepEqual([8, 9, 10, 11].map((i) => at(i).state), ['excluded', 'excluded', 'excluded', 'excluded']);
  assert.equal(at(12).state, 'free');
  const last = blockCells(input, '10.20.3.0/24');
  assert.equal(last[255].state, 'broadcast');
  const routed = blockCells(input, '10.20.1.0/24').filter((c) => c.state === 'assigned');
  assert.deepEqual(routed.map((c) => c.address), ['10.20.1.16', '10.20.1.17', '10.20.1.18', '10.20.1.19', '10.20.1.20', '10.20.1.21', '10.20.1.22', '10.20.1.23']);
  const outside = blockCells({ ...input, pool: { ...input.pool, entries: [{ text: '10.20.0.100-10.20.0.199', first: '10.20.0.100', last: '10.20.0.199' }] } }, '10.20.0.0/24');
  assert.equal(outside[99].state, 'outside');
  assert.equal(outside[100].state, 'free');
  // the gateway is outside this smaller pool but still shown as the gateway
  assert.equal(outside[1].state, 'gateway');
});

test('per-/24 summaries equal the cell counts', () => {
  const summaries = blockSummaries(input);
  assert.deepEqual(summaries.map((s) => s.block), ['10.20.0.0/24', '10.20.1.0/24', '10.20.2.0/24', '10.20.3.0/24']);
  for (const s of summaries) {
    const counts: Record<string, number> = {};
    for (const c of blockCells(input, s.block)) if (c.state !== 'outside') counts[c.state] = (counts[c.state] ?? 0) + 1;
    const fromSummary = Object.fromEntries(Object.entries(s.counts).filter(([, n]) => n! > 0));
    assert.deepEqual(fromSummary, counts, s.block);
    assert.equal(s.inPool, 256);
  }
});

test('largest free blocks of an IPv6 free list, biggest first and aligned', () => {
  const v = (a: string) => parseAddress(a).value;
  const free = [
    { start: v('2001:db8::1'), end: v('2001:db8::ffff') },
    { start: v('2001:db8:0:1::'), end: v('2001:db8:0:1:ffff:ffff:ffff:ffff') },
  ];
  assert.deepEqual(largestFreeBlocks(6, free, 3), ['2001:db8:0:1::/64', '2001:db8::8000/113', '2001:db8::4000/114']);
});

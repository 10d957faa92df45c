import assert from 'node:assert/strict';
import { test } from 'node:test';
import { canonicalAddress, formatAddress, isAddress, parseAddress, parseCidr, eui64 } from '../../src/core/ipam/addr.js';
import { normalize, subtract, totalSize } from '../../src/core/ipam/intervals.js';
import { IpvisorError } from '../../src/core/model/errors.js';

test('IPv4 and IPv6 addresses parse to BigInt and format canonically', () => {
  assert.deepEqual(parseAddress('10.1.2.3'), { family: 4, value: 0x0a010203n });
  assert.equal(canonicalAddress('2001:DB8:0:0:0:0:0:1'), '2001:db8::1');
  assert.equal(formatAddress(6, (1n << 128n) - 1n), 'ffff:ffff:ffff:ffff:ffff:ffff:ffff:ffff');
  assert.equal(formatAddress(4, 0xffffffffn), '255.255.255.255');
  for (const bad of ['10.1.2', '010.1.2.3x', '256.1.1.1', '1.2.3.4.5', 'fe80::1%eth0', '', '::g']) {
    assert.throws(() => parseAddress(bad, 'address'), (e: unknown) => e instanceof IpvisorError && e.field === 'address', bad);
  }
});

test('strict CIDRs reject host bits and say what was meant', () => {
  assert.throws(() => parseCidr('10.0.0.1/24', 'subnet', { strict: true }), /did you mean 10\.0\.0\.0\/24/);
  assert.throws(() => parseCidr('10.0.0.0/33', 'subnet'), /prefix length must be 0-32/);
  assert.throws(() => parseCidr('2001:db8::/129', 'subnet'), /0-128/);
  const c = parseCidr('2001:db8:1::/48', 'subnet', { strict: true });
  assert.equal(c.prefixLength, 48);
  assert.equal(formatAddress(6, c.network), '2001:db8:1::');
});

test('interval subtraction and sizes work on IPv6-sized numbers', () => {
  const full = [{ start: 0n, end: (1n << 64n) - 1n }];
  const rest = subtract(full, [{ start: 0n, end: 0n }, { start: 10n, end: 20n }, { start: (1n << 64n) - 1n, end: (1n << 64n) - 1n }]);
  assert.deepEqual(rest, [{ start: 1n, end: 9n }, { start: 21n, end: (1n << 64n) - 2n }]);
  assert.equal(totalSize(rest), (1n << 64n) - 1n - 1n - 11n);
  assert.deepEqual(normalize([{ start: 5n, end: 6n }, { start: 1n, end: 4n }]), [{ start: 1n, end: 6n }]);
});

test('EUI-64 interface identifiers flip the universal/local bit', () => {
  assert.equal(formatAddress(6, (0xfe80n << 112n) | eui64('52:54:00:12:34:56')), 'fe80::5054:ff:fe12:3456');
});

test('IPv4 fast path accepts exactly what ipaddr.js calls a four-part decimal, with the same value', async () => {
  const ipaddr = (await import('ipaddr.js')).default;
  for (const t of ['0.0.0.0', '255.255.255.255', '10.0.0.1', '010.0.0.1', '256.1.1.1', '1.2.3', '1.2.3.4.5', '1.2.3.04', ' 1.2.3.4', '1.2.3.4 ', '999.1.1.1', '1e2.1.1.1', '192.168.001.1', '4294967295', '0x7f.0.0.1', '127.1', '1.2.3.4\n']) {
    const ok = ipaddr.IPv4.isValidFourPartDecimal(t);
    assert.equal(isAddress(t), ok, t);
    if (ok) assert.equal(parseAddress(t).value, ipaddr.IPv4.parse(t).toByteArray().reduce((v: bigint, x: number) => v * 256n + BigInt(x), 0n), t);
  }
});

import { test } from 'node:test';
import assert from 'node:assert/strict';
import { effectiveLocking, lockingReason } from '../../src/core/model/locking.js';

test('the locking reason follows the effective-locking rule case by case', () => {
  const cases: Array<[string, string, number, string, RegExp]> = [
    ['disabled', 'unlocked', 2, 'disabled', /explicit/],
    ['network_default', 'locked', 0, 'locked', /network default \(locked\)/],
    ['network_default', 'disabled', 3, 'disabled', /network default \(disabled\)/],
    ['network_default', 'unlocked', 1, 'locked', /because it holds addresses/],
    ['network_default', 'unlocked', 0, 'unlocked', /no addresses/],
  ];
  for (const [mode, def, n, eff, why] of cases) {
    const vif = { locking: mode as 'network_default' }, net = { defaultLocking: def as 'unlocked' };
    assert.equal(effectiveLocking(vif, net, n), eff);
    assert.match(lockingReason(vif, net, n), why);
  }
});

// runEnforcers: one failing enforcer (an XAPI pool unreachable) neither hides nor stops the others'
// changes, and the changes it made before failing are still reported.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { runEnforcers, withPartialChanges, type Enforcer, type EnforcerContext, type EnforcerFailure } from '../../src/core/enforcer.js';
import { IpvisorError } from '../../src/core/model/errors.js';
import { guardRootNamespace } from '../support/root-guard.js';

guardRootNamespace();

const ctx = { store: {} as never, actor: 't', dryRun: false, log: () => undefined } satisfies EnforcerContext;

function enforcers(order: 'xapi-first' | 'host-first', applied: string[]): Enforcer[] {
  const host: Enforcer = {
    name: 'host',
    async plan() { return [{ op: '+', kind: 'route', target: '203.0.113.5/32 dev br0' }]; },
    async apply() { applied.push('host'); return [{ op: '+', kind: 'route', target: '203.0.113.5/32 dev br0' }]; },
  };
  const xapi: Enforcer = {
    name: 'xapi',
    async plan() { throw withPartialChanges(new IpvisorError('DRIVER', 'xapi gone: connect ECONNREFUSED'), [{ op: '~', kind: 'vif-locking', target: 'lab web-01:1' }]); },
    async apply() { throw new IpvisorError('DRIVER', 'xapi gone: connect ECONNREFUSED'); },
  };
  return order === 'xapi-first' ? [xapi, host] : [host, xapi];
}

test('with a failure collector, every enforcer runs and every change is reported beside the error', async () => {
  for (const order of ['xapi-first', 'host-first'] as const) {
    const applied: string[] = [];
    const failures: EnforcerFailure[] = [];
    const changes = await runEnforcers(enforcers(order, applied), ctx, 'apply', failures);
    assert.deepEqual(applied, ['host'], order);
    assert.deepEqual(changes.map((c) => `${c.enforcer} ${c.target}`), ['host 203.0.113.5/32 dev br0'], order);
    assert.deepEqual(failures.map((f) => [f.enforcer, (f.error as Error).message]), [['xapi', 'xapi gone: connect ECONNREFUSED']]);
    const planned = await runEnforcers(enforcers(order, []), { ...ctx, dryRun: true }, 'plan', []);
    assert.deepEqual(planned.map((c) => c.enforcer).sort(), ['host', 'xapi'], 'changes planned before the failure are kept');
  }
});

test('without a collector the first error is thrown (callers that want all-or-nothing)', async () => {
  await assert.rejects(runEnforcers(enforcers('xapi-first', []), ctx, 'apply'), /ECONNREFUSED/);
});

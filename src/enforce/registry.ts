// Every enforcer ipvisor runs. Other areas append theirs here with a one-line edit.
import type { Enforcer } from '../core/enforcer.js';

export async function loadEnforcers(): Promise<Enforcer[]> {
  const enforcers: Enforcer[] = [];
  enforcers.push((await import('../agent/host/enforcer.js')).hostEnforcer);
  enforcers.push((await import('../server/xapi/enforcer.js')).xapiEnforcer);
  return enforcers;
}

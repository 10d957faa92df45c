// Every enforcer ipvisor runs. Other areas append theirs here with a one-line edit.
import type { Enforcer } from './enforcer.js';

export async function loadEnforcers(): Promise<Enforcer[]> {
  const enforcers: Enforcer[] = [];
  enforcers.push((await import('../host/enforcer.js')).hostEnforcer);
  enforcers.push((await import('../drivers/xapi/enforcer.js')).xapiEnforcer);
  return enforcers;
}

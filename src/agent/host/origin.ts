// Host-local record of which store this host's enforced state came from (core/compile/
// store-switch.ts decides what a different store may do). It lives beside the host lock in the run
// directory: like the nftables tables, routes and addresses it describes, it does not survive a
// reboot, and a store restored or replaced under ipvisor cannot take it along.
import { readFileSync, renameSync, unlinkSync, writeFileSync, mkdirSync } from 'node:fs';
import { join } from 'node:path';
import type { EnforcedOrigin } from '../../core/compile/store-switch.js';
import { runDir } from './lock.js';

function originPath(): string {
  return join(runDir(), 'enforced-store.json');
}

/** The recorded origin; null when none is recorded or the record is unreadable (then the next
 * apply records the store it applies: an unreadable record must not block enforcement forever). */
export function readEnforcedOrigin(): EnforcedOrigin | null {
  let text: string;
  try {
    text = readFileSync(originPath(), 'utf8');
  } catch {
    return null;
  }
  try {
    const v = JSON.parse(text) as Partial<EnforcedOrigin>;
    return typeof v.storeId === 'string' && typeof v.location === 'string' && typeof v.since === 'string' ? { storeId: v.storeId, location: v.location, since: v.since } : null;
  } catch {
    return null;
  }
}

/** Written to a temporary file and renamed: a crash leaves the old record or the new one. */
export function writeEnforcedOrigin(origin: EnforcedOrigin): void {
  mkdirSync(runDir(), { recursive: true });
  const tmp = `${originPath()}.${process.pid}.tmp`;
  try {
    writeFileSync(tmp, JSON.stringify(origin) + '\n', { mode: 0o644 });
    renameSync(tmp, originPath());
  } catch (err) {
    try {
      unlinkSync(tmp);
    } catch {
      /* not created */
    }
    throw err;
  }
}

export function clearEnforcedOrigin(): void {
  try {
    unlinkSync(originPath());
  } catch {
    /* none recorded */
  }
}

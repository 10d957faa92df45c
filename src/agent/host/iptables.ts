// ipvisor's ACCEPTs at the top of iptables/ip6tables FORWARD, for routed addresses on libvirt
// nat/route networks: libvirt's own REJECT (in LIBVIRT_FWI/FWO, also nf_tables underneath) wins
// over any accept in ipvisor's table, so the accept has to come first in FORWARD itself. Each
// rule carries the comment "ipvisor"; ipvisor finds and removes exactly those. Store-free.
import { IPTABLES_COMMENT } from '../../core/compile/host-plan.js';
import type { PlannedIptablesRule } from '../../core/compile/host-plan.js';
import type { Family } from '../../core/model/types.js';
import type { HostRunner } from './exec.js';

const BIN: Record<Family, string> = { 4: 'iptables', 6: 'ip6tables' };

export interface IptablesChange {
  op: '+' | '-';
  kind: 'iptables';
  target: string;
  detail?: string;
}

/** FORWARD rules as `iptables -S` prints them, without "-A FORWARD ". Null when the tool is missing. */
export async function listForward(runner: HostRunner, family: Family): Promise<{ rules: string[]; policy: string } | null> {
  let res;
  try {
    res = await runner.run([BIN[family], '-w', '-S', 'FORWARD'], { allowFail: true });
  } catch {
    return null;
  }
  if (res.code !== 0) return null;
  const rules: string[] = [];
  let policy = 'ACCEPT';
  for (const line of res.stdout.split('\n')) {
    if (line.startsWith('-P FORWARD ')) policy = line.slice('-P FORWARD '.length).trim();
    else if (line.startsWith('-A FORWARD ')) rules.push(line.slice('-A FORWARD '.length).trim());
  }
  return { rules, policy };
}

function isOurs(rule: string): boolean {
  return rule.includes(`--comment ${IPTABLES_COMMENT} `) || rule.endsWith(`--comment ${IPTABLES_COMMENT}`);
}

function canonical(args: string[], family: Family): string {
  // iptables -S prints host addresses with their /32 (/128) and keeps our argument order
  return args.join(' ').replace(/^(-[ds]) ([^ /]+)( |$)/, (_m, f, a, end) => `${f} ${a}/${family === 4 ? 32 : 128}${end}`);
}

/**
 * Makes ipvisor's rules exactly `wanted`, all of them above every rule that is not ipvisor's.
 * Returns the changes (applied unless dryRun). Families whose tool is missing are skipped.
 */
export async function syncForwardAccepts(runner: HostRunner, wanted: PlannedIptablesRule[], opts: { dryRun?: boolean } = {}): Promise<IptablesChange[]> {
  const changes: IptablesChange[] = [];
  for (const family of [4, 6] as Family[]) {
    const mine = wanted.filter((r) => r.family === family);
    const present = await listForward(runner, family);
    if (!present) continue;
    const wantText = mine.map((r) => canonical(r.args, family));
    const firstForeign = present.rules.findIndex((r) => !isOurs(r));
    const topOurs = (firstForeign < 0 ? present.rules : present.rules.slice(0, firstForeign)).filter(isOurs);
    const buriedOurs = firstForeign < 0 ? [] : present.rules.slice(firstForeign).filter(isOurs);
    const removals = [...topOurs.filter((r) => !wantText.includes(r)), ...buriedOurs];
    const additions = wantText.filter((w) => !topOurs.includes(w));
    for (const r of removals) {
      changes.push({ op: '-', kind: 'iptables', target: `${BIN[family]} FORWARD ${r}` });
      if (!opts.dryRun) await runner.run([BIN[family], '-w', '-D', 'FORWARD', ...splitRule(r)]);
    }
    // each goes in at position 1, so insert the last first to keep the planned order
    for (const w of [...additions].reverse()) {
      changes.push({ op: '+', kind: 'iptables', target: `${BIN[family]} FORWARD ${w}`, detail: 'inserted at the top' });
      if (!opts.dryRun) await runner.run([BIN[family], '-w', '-I', 'FORWARD', '1', ...splitRule(w)]);
    }
  }
  return changes;
}

/** Undoes changes syncForwardAccepts made (or planned: a step that never ran fails harmlessly). */
export async function revertForwardChanges(runner: HostRunner, changes: IptablesChange[]): Promise<void> {
  for (const c of [...changes].reverse()) {
    const [bin, chain, ...rule] = c.target.split(' ');
    const argv = c.op === '+' ? [bin, '-w', '-D', chain, ...rule] : [bin, '-w', '-I', chain, '1', ...rule];
    await runner.run(argv, { allowFail: true });
  }
}

/** Splits a rule as printed by `iptables -S` (our rules have no quoted spaces). */
function splitRule(rule: string): string[] {
  return rule.split(' ').filter(Boolean);
}

/** Docker (and others) set FORWARD's policy to DROP; bridged/routed VM traffic then dies there. */
export async function forwardPolicyDrops(runner: HostRunner): Promise<Array<{ family: Family; policy: string }>> {
  const out: Array<{ family: Family; policy: string }> = [];
  for (const family of [4, 6] as Family[]) {
    const p = await listForward(runner, family);
    if (p && p.policy === 'DROP') out.push({ family, policy: p.policy });
  }
  return out;
}

// A libvirt hook on an agent host: hands the event to the local agent over its socket and returns
// once the agent has enforced it; if no agent answers, enforces by itself from the copy on disk
// (the facts wait in the on-disk queue for the agent to send). The small hook entry
// (libvirt/hook-entry.ts) sends libvirt's argv and XML as they came: the agent parses and checks
// them here (qemuHookEvent), as the full hook does when it enforces without its agent.
import { parseDomainXml } from './libvirt/xml.js';
import { askLocalAgent, type AgentMarker, type HookEvent, type LocalRequest } from './local-socket.js';
import { factLabel, isUuid, isValidIfname, normalizeMac } from '../core/model/validate.js';

const OPS = new Set(['prepare', 'start', 'started', 'reconnect', 'stopped', 'release', 'migrate', 'restore', 'attach']);

/**
 * The binding event of one qemu hook call, from libvirt's argv and domain XML, every fact checked
 * with core/model/validate.ts: an interface whose MAC or tap name is invalid is left out (and named
 * in `problems`), a domain UUID that is not one binds nothing. null: nothing to enforce for this op
 * (prepare/migrate/restore have no tap yet; bindings come with start). Throws on XML that does not parse.
 */
export function qemuHookEvent(args: string[], xml: string): { event: HookEvent | null; name: string; problems: string[] } {
  const op = args[1];
  const problems: string[] = [];
  if (!OPS.has(op) || !xml.trim()) return { event: null, name: factLabel(args[0] ?? '', 64), problems };
  const dom = parseDomainXml(xml);
  const name = factLabel(dom.name, 64);
  if (op === 'prepare' || op === 'migrate' || op === 'restore') return { event: null, name, problems };
  if (!isUuid(dom.uuid)) {
    problems.push(`domain '${name}' (${factLabel(dom.uuid, 64)}): uuid is not a UUID; its interfaces are not bound`);
    return { event: null, name, problems };
  }
  const interfaces: HookEvent['interfaces'] = [];
  dom.interfaces.forEach((i, n) => {
    if (i.mac === null) return;
    const where = `domain '${name}' interface ${n}`;
    let mac: string;
    try {
      mac = normalizeMac(i.mac, 'mac');
    } catch (err) {
      problems.push(`${where}: not bound: ${(err as Error).message}`);
      return;
    }
    if (i.target !== null && !isValidIfname(i.target)) {
      problems.push(`${where}: target dev '${factLabel(i.target, 64)}' is not a valid interface name; not bound`);
      return;
    }
    interfaces.push({ mac, ifname: i.target });
  });
  return { event: { op, vmUuid: dom.uuid.toLowerCase(), interfaces }, name, problems };
}

/** The full hook on an agent host (the small entry found no agent, or the hook runs from source). */
export async function agentQemuHook(marker: AgentMarker, args: string[], xml: string, log: (line: string) => void, opts: { agentTried?: boolean } = {}): Promise<number> {
  const { event, name, problems } = qemuHookEvent(args, xml);
  for (const p of problems) log(`qemu ${name} ${args[1]}: invalid fact: ${p}`);
  if (!event) return 0;
  const op = event.op;
  if (!opts.agentTried) {
    const req: LocalRequest = { kind: 'hook', ...event };
    const reply = await askLocalAgent<{ ok: boolean; error?: string; changes?: number }>(req);
    if (reply?.ok) {
      log(`qemu ${name} ${op}: handed to the local agent (${reply.changes ?? 0} change(s))`);
      return 0;
    }
    if (reply && !reply.ok) log(`qemu ${name} ${op}: the local agent failed (${reply.error}); enforcing from the local copy`);
  }
  const [{ Agent, OFFLINE }, { openHostState }] = await Promise.all([import('./agent.js'), import('./state.js')]);
  const agent = new Agent({ host: marker.host, controlPlane: OFFLINE, local: openHostState(marker.stateDir), log });
  const r = await agent.hookEvent(event);
  log(`qemu ${name} ${op}: no local agent answered; enforced from the local copy (${r.changes.length} change(s))`);
  return 0;
}

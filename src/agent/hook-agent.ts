// A libvirt hook on an agent host: hands the event to the local agent over its socket and returns
// once the agent has enforced it; if no agent answers, enforces by itself from the copy on disk
// (the facts wait in the on-disk queue for the agent to send).
import { parseDomainXml } from './libvirt/xml.js';
import { askLocalAgent, type AgentMarker, type LocalRequest } from './local-socket.js';

const OPS = new Set(['prepare', 'start', 'started', 'reconnect', 'stopped', 'release', 'migrate', 'restore', 'attach']);

export async function agentQemuHook(marker: AgentMarker, args: string[], xml: string, log: (line: string) => void): Promise<number> {
  const op = args[1];
  if (!OPS.has(op) || !xml.trim()) return 0;
  const dom = parseDomainXml(xml);
  // prepare/migrate/restore: the tap does not exist yet; bindings come with start
  if (op === 'prepare' || op === 'migrate' || op === 'restore') return 0;
  const interfaces = dom.interfaces.filter((i) => i.mac).map((i) => ({ mac: i.mac!, ifname: i.target }));
  const req: LocalRequest = { kind: 'hook', op, vmUuid: dom.uuid.toLowerCase(), interfaces };
  const reply = await askLocalAgent<{ ok: boolean; error?: string; changes?: number }>(req);
  if (reply?.ok) {
    log(`qemu ${dom.name} ${op}: handed to the local agent (${reply.changes ?? 0} change(s))`);
    return 0;
  }
  if (reply && !reply.ok) log(`qemu ${dom.name} ${op}: the local agent failed (${reply.error}); enforcing from the local copy`);
  const [{ Agent, OFFLINE }, { openHostState }] = await Promise.all([import('./agent.js'), import('./state.js')]);
  const agent = new Agent({ host: marker.host, controlPlane: OFFLINE, local: openHostState(marker.stateDir), log });
  const r = await agent.hookEvent(req);
  log(`qemu ${dom.name} ${op}: no local agent answered; enforced from the local copy (${r.changes.length} change(s))`);
  return 0;
}

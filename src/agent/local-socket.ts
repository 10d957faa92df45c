// The local agent's Unix socket ($IPVISOR_RUN_DIR/agent.sock): libvirt hooks hand their event to the
// running agent (which has the desired state in memory and enforces at once), and `ipvisor plan|
// apply|status` on an agent host ask it. One JSON line in, one JSON line out. When no agent answers,
// a hook enforces by itself from the copy on disk (agent/hook-agent.ts).
import { createServer, type Server } from 'node:net';
import { askAgentSocket } from './local-socket-client.js';
import { chmodSync, existsSync, mkdirSync, readFileSync, unlinkSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import type { Agent } from './agent.js';
import { runDir } from './host/lock.js';
import { normalizeMac, validateIfname, validateUuid } from '../core/model/validate.js';

export function agentSocketPath(): string {
  return join(runDir(), 'agent.sock');
}

/** One qemu hook call's bindings (hook-agent.ts's qemuHookEvent makes it from libvirt's XML). */
export interface HookEvent {
  op: string;
  vmUuid: string;
  interfaces: Array<{ mac: string; ifname: string | null }>;
}

export type LocalRequest =
  | ({ kind: 'hook' } & HookEvent)
  /** libvirt's argv and domain XML as the hook got them: the agent parses and checks them. */
  | { kind: 'hook-xml'; args: string[]; xml: string }
  | { kind: 'plan' }
  | { kind: 'apply' }
  | { kind: 'status' };

export async function serveLocalSocket(agent: Agent, path = agentSocketPath()): Promise<Server> {
  mkdirSync(join(path, '..'), { recursive: true });
  if (existsSync(path)) unlinkSync(path); // a stale socket of a previous run
  const server = createServer((conn) => {
    let buf = '';
    conn.setEncoding('utf8');
    conn.on('data', (d: string) => {
      buf += d;
      const nl = buf.indexOf('\n');
      if (nl < 0) return;
      const line = buf.slice(0, nl);
      buf = '';
      void (async () => {
        let reply: unknown;
        try {
          const req = JSON.parse(line) as LocalRequest;
          if (req.kind === 'hook') reply = { ok: true, changes: (await agent.hookEvent(checkedHookEvent(req))).changes.length };
          else if (req.kind === 'hook-xml') reply = await hookXml(agent, req);
          else if (req.kind === 'plan') {
            const run = await agent.plan();
            reply = { ok: true, changes: run.changes, warnings: run.warnings };
          } else if (req.kind === 'apply') reply = { ok: true, changes: await agent.applyNow() };
          else if (req.kind === 'status') reply = { ok: true, host: await agent.status(), agent: agent.state };
          else reply = { ok: false, error: 'unknown request' };
        } catch (e) {
          reply = { ok: false, error: (e as Error).message };
        }
        conn.end(JSON.stringify(reply) + '\n');
      })();
    });
    conn.on('error', () => undefined);
  });
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen(path, () => resolve());
  });
  chmodSync(path, 0o600);
  return server;
}

/** A hook call as libvirt made it (the small hook entry): parsed and checked here, then enforced. */
async function hookXml(agent: Agent, req: { args: unknown; xml: unknown }): Promise<unknown> {
  const { qemuHookEvent } = await import('./hook-agent.js');
  let parsed: ReturnType<typeof qemuHookEvent>;
  try {
    parsed = qemuHookEvent(Array.isArray(req.args) ? req.args.map(String) : [], String(req.xml ?? ''));
  } catch (e) {
    // the XML is wrong, not the agent: the hook logs it and does not enforce by itself
    return { ok: false, invalid: true, error: (e as Error).message.split('\n')[0] };
  }
  const { event, name, problems } = parsed;
  return { ok: true, name, problems, changes: event ? (await agent.hookEvent(event)).changes.length : 0 };
}

/** A 'hook' request from another process, checked like every entry point's input. */
function checkedHookEvent(req: HookEvent): HookEvent {
  const vmUuid = validateUuid(String(req.vmUuid), 'vmUuid').toLowerCase();
  if (!Array.isArray(req.interfaces)) throw new Error('interfaces: expected a list');
  const interfaces = req.interfaces.map((i, n) => ({ mac: normalizeMac(String(i?.mac), `interfaces[${n}].mac`), ifname: i?.ifname == null ? null : validateIfname(String(i.ifname), `interfaces[${n}].ifname`) }));
  return { op: String(req.op), vmUuid, interfaces };
}

/** Asks the local agent; undefined when none answers (no socket, refused, or no reply in time). */
export function askLocalAgent<T = any>(req: LocalRequest, timeoutMs = 30_000, path = agentSocketPath()): Promise<T | undefined> {
  return existsSync(path) ? askAgentSocket<T>(path, req, timeoutMs) : Promise.resolve(undefined);
}

/** What `ipvisor agent` leaves in its state directory so hooks and the CLI know this is an agent host. */
export interface AgentMarker {
  host: string;
  servers: string[];
  stateDir: string;
}

export const AGENT_MARKER = 'agent.json';

export function writeAgentMarker(m: AgentMarker): void {
  writeFileSync(join(m.stateDir, AGENT_MARKER), JSON.stringify(m, null, 2) + '\n', { mode: 0o600 });
}

/** The agent marker of this host, if `ipvisor agent` ran here ($IPVISOR_STATE_DIR or /var/lib/ipvisor). */
export function readAgentMarker(env: NodeJS.ProcessEnv = process.env): AgentMarker | undefined {
  const dir = env.IPVISOR_STATE_DIR || '/var/lib/ipvisor';
  try {
    return JSON.parse(readFileSync(join(dir, AGENT_MARKER), 'utf8')) as AgentMarker;
  } catch {
    return undefined;
  }
}

// The process libvirt's hook scripts exec (bundled alone to dist/libvirt-hook.cjs): Node built-ins
// only, no XML parser, no store. On an agent host (the agent's marker, agent.json, is in the state
// directory) it hands libvirt's argv and XML to the local agent over its Unix socket and returns
// once the agent has enforced them: the agent parses and checks the XML (agent/hook-agent.ts). Only
// when that cannot be done (no agent host, or no agent answered) does it load the whole hook
// (dist/libvirt-hook-full.cjs, from hook-main.ts), which enforces from the store or the local copy.
//   argv: libvirt-network|libvirt-qemu [--db PATH | --host NAME --state-dir DIR] [--log PATH] [--run-dir DIR] -- <libvirt's argv...>
// Never writes to stdout.
import { appendFileSync, existsSync, mkdirSync } from 'node:fs';
import { hostname } from 'node:os';
import { dirname, join } from 'node:path';
import { askAgentSocket } from '../local-socket-client.js';

/** How long the hook waits for the agent before enforcing by itself (a VM start waits as long). */
const AGENT_TIMEOUT_MS = 30_000;

interface AgentReply {
  ok: boolean;
  invalid?: boolean;
  error?: string;
  name?: string;
  changes?: number;
  problems?: string[];
}

function readStdin(): Promise<string> {
  if (process.stdin.isTTY) return Promise.resolve('');
  return new Promise((resolve) => {
    const chunks: Buffer[] = [];
    process.stdin.on('data', (c: Buffer) => chunks.push(c));
    process.stdin.on('end', () => resolve(Buffer.concat(chunks).toString('utf8')));
    process.stdin.on('error', () => resolve(Buffer.concat(chunks).toString('utf8')));
  });
}

/** The same line shape as the full hook's logger (core/log.ts, pino JSON): best effort. */
function logger(path: string): (msg: string) => void {
  const hookId = `${Date.now().toString(36)}-${Math.floor(Math.random() * 0x100000).toString(36)}`;
  return (msg) => {
    try {
      mkdirSync(dirname(path), { recursive: true });
      // control characters of libvirt's facts never reach the log as such
      const clean = msg.replace(/\s*\n\s*/g, ' ').replace(/[\u0000-\u001f\u007f]/g, (c) => `\\x${c.charCodeAt(0).toString(16).padStart(2, '0')}`);
      appendFileSync(path, JSON.stringify({ level: 30, time: Date.now(), pid: process.pid, host: hostname(), component: 'libvirt-hook', hookId, msg: clean }) + '\n');
    } catch {
      /* logging is best effort */
    }
  };
}

async function main(argv: string[]): Promise<number> {
  const rest = argv[0] === 'hook' ? argv.slice(1) : [...argv];
  const which = rest.shift();
  let logFile = process.env.IPVISOR_HOOK_LOG || '/var/log/ipvisor/libvirt-hooks.log';
  let stateDir = process.env.IPVISOR_STATE_DIR || '/var/lib/ipvisor';
  let runDir = process.env.IPVISOR_RUN_DIR || '/run/ipvisor';
  // the same options as hook-main.ts's parseHookInvocation
  while (rest.length && rest[0] !== '--') {
    if (['--db', '--log', '--host', '--state-dir', '--run-dir'].includes(rest[0]) && rest.length > 1) {
      if (rest[0] === '--log') logFile = rest[1];
      if (rest[0] === '--state-dir') stateDir = rest[1];
      if (rest[0] === '--run-dir') runDir = rest[1];
      rest.splice(0, 2);
    } else break;
  }
  if (rest[0] === '--') rest.shift();
  const xml = await readStdin();
  let agentTried = false;
  if (existsSync(join(stateDir, 'agent.json'))) {
    // on an agent host the network hook has nothing to do (ports are bound through the qemu hook)
    if (which === 'libvirt-network') return 0;
    const op = rest[1];
    if (which === 'libvirt-qemu' && xml.trim() && op !== 'prepare' && op !== 'migrate' && op !== 'restore') {
      const log = logger(logFile);
      const socket = join(runDir, 'agent.sock');
      // performance.now() counts from process start: Node's start-up shows up in the first figure
      const tStdin = performance.now();
      const reply = existsSync(socket) ? await askAgentSocket<AgentReply>(socket, { kind: 'hook-xml', args: rest, xml }, AGENT_TIMEOUT_MS) : undefined;
      agentTried = true;
      if (process.env.IPVISOR_HOOK_TIMING) log(`timing: agent host entry up after ${tStdin.toFixed(1)} ms (stdin read), agent answered in ${(performance.now() - tStdin).toFixed(1)} ms`);
      const what = `qemu ${reply?.name ?? String(rest[0] ?? '').slice(0, 64)} ${op}`;
      for (const p of reply?.problems ?? []) log(`${what}: invalid fact: ${p}`);
      if (reply?.ok) {
        log(`${what}: handed to the local agent (${reply.changes ?? 0} change(s))`);
        return 0;
      }
      if (reply?.invalid) {
        log(`${what}: error: ${reply.error}`);
        return 0;
      }
      if (reply) log(`${what}: the local agent failed (${reply.error}); enforcing from the local copy`);
    }
  }
  // no agent host, or no agent answered: the whole hook (loaded only now)
  const fullPath = join(__dirname, 'libvirt-hook-full.cjs');
  let full: { hookMain(argv: string[], deps: undefined, pre: { xml: string; agentTried: boolean }): Promise<number> };
  try {
    // eslint-disable-next-line @typescript-eslint/no-require-imports
    full = require(fullPath);
  } catch (err) {
    // like the hook script when its entry is missing: say so, exit 0 so libvirt goes on
    logger(logFile)(`${which ?? 'hook'} ${rest.slice(0, 3).join(' ')}: error: the whole hook ${fullPath} cannot be loaded (${(err as Error).message.split('\n')[0]}); nothing enforced`);
    return 0;
  }
  return full.hookMain(argv, undefined, { xml, agentTried });
}

main(process.argv.slice(2)).then(
  (code) => {
    process.exitCode = code;
  },
  () => {
    process.exitCode = 0;
  },
);

// Watches `nft monitor` and asks for a reconcile when anything touches ipvisor's tables, or the
// whole ruleset is flushed (flush events name no table).
import { spawn } from 'node:child_process';
import type { ChildProcess } from 'node:child_process';
import { createInterface } from 'node:readline';
import { NFT_TABLE } from '../core/compile/nft-ruleset.js';
import type { DaemonContext, DaemonWatcher } from '../core/watcher.js';

export function isRelevantNftEvent(line: string): boolean {
  if (/^flush ruleset/.test(line)) return true;
  if (/^delete table (bridge|inet) /.test(line)) return line.includes(` ${NFT_TABLE}`);
  // Additions count too: a rule inserted above ipvisor's (`accept` at the top of prerouting) or an
  // element added to a VIF's allowed set defeats the locking. ipvisor's own changes show here as
  // well and cost one verify that finds nothing to do.
  return new RegExp(`^(add|insert|replace|delete|flush) (rule|chain|set|map|element|table) (bridge|inet) ${NFT_TABLE}\\b`).test(line);
}

export function createNftMonitorWatcher(): DaemonWatcher {
  let child: ChildProcess | undefined;
  let stopped = false;
  const start = async (ctx: DaemonContext): Promise<void> => {
    const netns = process.env.IPVISOR_NETNS;
    const argv = netns ? ['ip', 'netns', 'exec', netns, 'nft', 'monitor'] : ['nft', 'monitor'];
    const launch = (): void => {
      if (stopped || ctx.signal.aborted) return;
      child = spawn(argv[0], argv.slice(1), { stdio: ['ignore', 'pipe', 'ignore'] });
      child.on('error', (e) => ctx.log(`nft monitor: ${e.message}`));
      const rl = createInterface({ input: child.stdout! });
      rl.on('line', (line) => {
        if (isRelevantNftEvent(line)) ctx.requestReconcile(`nft: ${line.slice(0, 80)}`);
      });
      child.on('exit', () => {
        if (!stopped && !ctx.signal.aborted) setTimeout(launch, 1000).unref();
      });
    };
    launch();
  };
  return {
    name: 'nft-monitor',
    start,
    async stop() {
      stopped = true;
      if (child && child.exitCode === null) {
        const c = child;
        await new Promise<void>((resolve) => {
          c.once('exit', () => resolve());
          c.kill('SIGTERM');
        });
      }
    },
  };
}

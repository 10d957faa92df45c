// A persistent `nft -i` for a long-running agent: one small element transaction per one-VIF change
// without spawning a process (a fork of the agent's big process alone costs 5-10 ms at 20,000
// VIFs, `nft -f` another few). Each script goes in as ONE line, its commands joined by ';': nft runs
// a line as one transaction (all or nothing). After it comes a line nft cannot parse, naming a
// sequence number: its syntax error on stderr (unbuffered, no kernel access) says that the script
// before it is done, and whatever stderr said in between is that script's error.
import type { ChildProcessWithoutNullStreams } from 'node:child_process';
import { IpvisorError } from '../../core/model/errors.js';
import type { HostRunner } from './exec.js';
import { nftApply } from './nft.js';

/** Scripts longer than this go through `nft -f -` (a line editor is no place for a whole table). */
const MAX_LINE = 16 * 1024;

interface Pending {
  token: string;
  resolve(): void;
  reject(e: Error): void;
}

export class NftSession {
  private child: ChildProcessWithoutNullStreams | undefined;
  private stderr = '';
  private queue: Pending[] = [];
  private seq = 0;
  /** Scripts the session applied (the rest went through `nft -f -`): tests and the bench read it. */
  applied = 0;

  constructor(private readonly runner: HostRunner) {}

  /** Runs one transaction; rejects with HOST_COMMAND (nothing applied) when nft refuses it. */
  async apply(script: string): Promise<void> {
    const lines = script.split('\n').filter((l) => l.trim());
    if (!lines.length) return;
    const line = lines.join('; ');
    if (line.length > MAX_LINE || !this.runner.start) return nftApply(this.runner, script);
    const child = this.start(this.runner.start.bind(this.runner));
    const token = `ipvisor-sync-${++this.seq}`;
    const done = new Promise<void>((resolve, reject) => this.queue.push({ token, resolve, reject }));
    child.stdin.write(`${line}\n${token}\n`);
    await done;
    this.applied++;
  }

  close(): void {
    const c = this.child;
    this.child = undefined;
    if (c) {
      c.stdin.end();
      c.kill();
    }
    this.fail(new IpvisorError('HOST_COMMAND', 'nft -i: session closed'));
  }

  private start(spawnChild: (argv: string[]) => ChildProcessWithoutNullStreams): ChildProcessWithoutNullStreams {
    if (this.child) return this.child;
    const child = spawnChild(['nft', '-i']);
    this.child = child;
    this.stderr = '';
    child.stdout.resume(); // nothing we send prints there; never let the pipe fill
    child.stderr.setEncoding('utf8');
    child.stderr.on('data', (d: string) => this.onStderr(d));
    child.stdin.on('error', () => undefined);
    const gone = (why: string) => {
      if (this.child === child) this.child = undefined;
      this.fail(new IpvisorError('HOST_COMMAND', `nft -i: ${why}`));
    };
    child.on('error', (e) => gone(e.message));
    child.on('exit', (code, signal) => gone(`exited (${signal ?? code})`));
    return child;
  }

  private onStderr(d: string): void {
    this.stderr += d;
    for (;;) {
      const head = this.queue[0];
      if (!head) {
        this.stderr = '';
        return;
      }
      const at = this.stderr.indexOf(`\n${head.token}\n`);
      if (at < 0) return;
      // the sync line's own message: "Error: syntax error ...\nTOKEN\n   ^\n"
      const end = this.stderr.indexOf('\n', at + head.token.length + 2);
      if (end < 0) return;
      const before = this.stderr.slice(0, this.stderr.lastIndexOf('Error:', at)).trim();
      this.stderr = this.stderr.slice(end + 1);
      this.queue.shift();
      if (before) head.reject(new IpvisorError('HOST_COMMAND', `nft: ${before.split('\n').slice(0, 3).join(' | ')}`, { details: { stderr: before } }));
      else head.resolve();
    }
  }

  private fail(e: Error): void {
    const q = this.queue;
    this.queue = [];
    for (const p of q) p.reject(e);
  }
}

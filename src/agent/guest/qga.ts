// QEMU guest agent client. Framing as observed on qemu-ga 7.2 (reference/guest/qga-framing.txt):
// a request is one JSON object; each reply is one line. The agent's parser state survives a client
// disconnect and a malformed request can produce two error lines, so the client resyncs with
// 0xFF + guest-sync-delimited on connect and after every timeout, discarding all bytes up to the
// 0xFF. Transports: a unix socket (qemu-ga -m unix-listen, or QEMU's chardev socket), and libvirt's
// agent channel through `virsh qemu-agent-command` (libvirt holds the socket and syncs itself).
import { execFile } from 'node:child_process';
import { createConnection, type Socket } from 'node:net';
import { IpvisorError } from '../../core/model/errors.js';
import type { GuestInterface } from '../../core/guest/push-port.js';

export class QgaError extends IpvisorError {
  readonly qgaClass: string;
  constructor(command: string, qgaClass: string, desc: string) {
    super('DRIVER', `guest agent: ${command}: ${desc}`, { details: { command, class: qgaClass } });
    this.qgaClass = qgaClass;
  }
}

export interface QgaTransport {
  /** Sends one command and returns its "return" value; throws QgaError for an "error" reply. */
  execute<T = unknown>(command: string, args?: Record<string, unknown>, opts?: { timeoutMs?: number }): Promise<T>;
  close(): Promise<void>;
  readonly description: string;
}

const DEFAULT_TIMEOUT_MS = 10_000;

/** A unix-socket connection to qemu-ga. One request at a time (the agent serves one client, in order). */
export class QgaSocket implements QgaTransport {
  readonly description: string;
  private socket: Socket | null = null;
  private buf = Buffer.alloc(0);
  private waiter: (() => void) | null = null;
  private closed = false;
  private needSync = true;
  private chain: Promise<unknown> = Promise.resolve();
  private nextId = Math.floor(Math.random() * 1e9);

  constructor(private readonly path: string) {
    this.description = `socket ${path}`;
  }

  private async connect(timeoutMs: number): Promise<void> {
    if (this.socket) return;
    await new Promise<void>((resolve, reject) => {
      const s = createConnection(this.path);
      const timer = setTimeout(() => {
        s.destroy();
        reject(new IpvisorError('DRIVER', `guest agent: no connection to ${this.path} within ${timeoutMs} ms`));
      }, timeoutMs);
      s.once('connect', () => {
        clearTimeout(timer);
        resolve();
      });
      s.once('error', (e) => {
        clearTimeout(timer);
        reject(new IpvisorError('DRIVER', `guest agent: cannot connect to ${this.path}: ${e.message}`, { cause: e }));
      });
      s.on('data', (d: Buffer) => {
        this.buf = Buffer.concat([this.buf, d]);
        this.waiter?.();
      });
      s.on('close', () => {
        this.closed = true;
        this.socket = null;
        this.waiter?.();
      });
      this.socket = s;
      this.closed = false;
    });
  }

  /** Waits until `take` can extract something from the buffer, or the deadline passes. */
  private async read<T>(take: () => T | undefined, deadline: number, what: string): Promise<T> {
    for (;;) {
      const got = take();
      if (got !== undefined) return got;
      if (this.closed) throw new IpvisorError('DRIVER', `guest agent: connection closed while waiting for ${what}`);
      const left = deadline - Date.now();
      if (left <= 0) throw new IpvisorError('DRIVER', `guest agent: no reply to ${what} within the timeout`);
      await new Promise<void>((resolve) => {
        const t = setTimeout(resolve, left);
        this.waiter = () => {
          clearTimeout(t);
          resolve();
        };
      });
      this.waiter = null;
    }
  }

  private takeLine = (): string | undefined => {
    const nl = this.buf.indexOf(0x0a);
    if (nl < 0) return undefined;
    const line = this.buf.subarray(0, nl).toString('utf8');
    this.buf = this.buf.subarray(nl + 1);
    return line;
  };

  private async sync(deadline: number): Promise<void> {
    const id = this.nextId++;
    this.buf = Buffer.alloc(0);
    this.socket!.write(Buffer.concat([Buffer.from([0xff]), Buffer.from(JSON.stringify({ execute: 'guest-sync-delimited', arguments: { id } }) + '\n')]));
    for (;;) {
      // everything before the 0xFF (e.g. the "stray '\uFFFD'" error line, stale replies) is dropped
      await this.read(() => {
        const ff = this.buf.indexOf(0xff);
        if (ff < 0) {
          this.buf = Buffer.alloc(0);
          return undefined;
        }
        this.buf = this.buf.subarray(ff + 1);
        return true;
      }, deadline, 'guest-sync-delimited (is qemu-ga running in the guest?)');
      const line = await this.read(this.takeLine, deadline, 'guest-sync-delimited');
      try {
        if ((JSON.parse(line) as { return?: unknown }).return === id) break;
      } catch {
        /* a partial line from before the sync: keep looking */
      }
    }
    this.needSync = false;
  }

  execute<T = unknown>(command: string, args?: Record<string, unknown>, opts: { timeoutMs?: number } = {}): Promise<T> {
    const run = async (): Promise<T> => {
      const deadline = Date.now() + (opts.timeoutMs ?? DEFAULT_TIMEOUT_MS);
      try {
        await this.connect(Math.max(1, deadline - Date.now()));
        if (this.needSync) await this.sync(deadline);
        const req: Record<string, unknown> = { execute: command };
        if (args) req.arguments = args;
        this.socket!.write(JSON.stringify(req) + '\n');
        const line = await this.read(this.takeLine, deadline, command);
        let reply: { return?: T; error?: { class: string; desc: string } };
        try {
          reply = JSON.parse(line);
        } catch {
          this.needSync = true;
          throw new IpvisorError('DRIVER', `guest agent: ${command}: unparsable reply '${line.slice(0, 200)}'`);
        }
        if (reply.error) {
          if (/JSON parse error/.test(reply.error.desc)) this.needSync = true;
          throw new QgaError(command, reply.error.class, reply.error.desc);
        }
        return reply.return as T;
      } catch (e) {
        if (!(e instanceof QgaError)) this.needSync = true; // a late reply may still arrive: resync first
        throw e;
      }
    };
    const p = this.chain.then(run, run);
    this.chain = p.catch(() => undefined);
    return p;
  }

  async close(): Promise<void> {
    const s = this.socket;
    this.socket = null;
    if (!s) return;
    await new Promise<void>((resolve) => {
      s.once('close', () => resolve());
      s.end();
      setTimeout(() => {
        s.destroy();
        resolve();
      }, 500).unref();
    });
  }
}

/** libvirt's agent channel: `virsh qemu-agent-command DOMAIN JSON` (argv, no shell). */
export class QgaVirsh implements QgaTransport {
  readonly description: string;
  constructor(
    private readonly domain: string,
    private readonly opts: { uri?: string; virsh?: string } = {},
  ) {
    this.description = `libvirt domain ${domain}`;
  }

  execute<T = unknown>(command: string, args?: Record<string, unknown>, opts: { timeoutMs?: number } = {}): Promise<T> {
    const req: Record<string, unknown> = { execute: command };
    if (args) req.arguments = args;
    const timeoutSec = Math.max(1, Math.ceil((opts.timeoutMs ?? DEFAULT_TIMEOUT_MS) / 1000));
    const argv = [...(this.opts.uri ? ['-c', this.opts.uri] : []), 'qemu-agent-command', this.domain, JSON.stringify(req), '--timeout', String(timeoutSec)];
    return new Promise<T>((resolve, reject) => {
      execFile(this.opts.virsh ?? 'virsh', argv, { maxBuffer: 64 * 1024 * 1024 }, (err, stdout, stderr) => {
        if (err) {
          const msg = (stderr || err.message).trim().replace(/^error: /gm, '').split('\n').join('; ');
          const cls = /has been disabled|has not been found/.test(msg) ? 'CommandNotFound' : 'GenericError';
          reject(new QgaError(command, cls, msg));
          return;
        }
        try {
          resolve((JSON.parse(stdout) as { return: T }).return);
        } catch {
          reject(new IpvisorError('DRIVER', `guest agent: ${command}: unparsable reply from virsh '${stdout.slice(0, 200)}'`));
        }
      });
    });
  }

  async close(): Promise<void> {}
}

// ---- typed calls ----

/** An interface as qemu-ga reports it (guest-network-get-interfaces). */
export type QgaInterface = GuestInterface;

export interface QgaOsInfo {
  id?: string;
  name?: string;
  'pretty-name'?: string;
  'version-id'?: string;
  'kernel-release'?: string;
}

export interface ExecResult {
  exitcode: number | null;
  signal: number | null;
  stdout: string;
  stderr: string;
}

/** The RPCs a live push needs. */
export const PUSH_RPCS = ['guest-file-open', 'guest-file-write', 'guest-file-read', 'guest-file-close', 'guest-exec', 'guest-exec-status', 'guest-network-get-interfaces'];

export class GuestAgent {
  constructor(readonly transport: QgaTransport) {}

  ping(timeoutMs?: number): Promise<unknown> {
    return this.transport.execute('guest-ping', undefined, { timeoutMs });
  }

  async info(): Promise<{ version: string; supported_commands: { name: string; enabled: boolean }[] }> {
    return this.transport.execute('guest-info');
  }

  /** Fails with one clear message naming every RPC the agent blocks or lacks. */
  async requireCommands(names: string[]): Promise<void> {
    const info = await this.info();
    const byName = new Map(info.supported_commands.map((c) => [c.name, c.enabled]));
    const blocked = names.filter((n) => byName.get(n) === false);
    const missing = names.filter((n) => !byName.has(n));
    if (blocked.length || missing.length) {
      const parts = [];
      if (blocked.length) parts.push(`blocks ${blocked.join(', ')}`);
      if (missing.length) parts.push(`does not have ${missing.join(', ')}`);
      throw new IpvisorError(
        'DRIVER',
        `guest agent ${info.version} ${parts.join(' and ')}: a live push needs them. Allow them in the guest (qemu-ga --block-rpcs / block-rpcs= in /etc/qemu/qemu-ga.conf; on RHEL-family guests BLACKLIST_RPC or QEMU_GA_ARGS in /etc/sysconfig/qemu-ga), or apply the rendered files another way (ipvisor guest render)`,
        { details: { blocked, missing } },
      );
    }
  }

  async osInfo(): Promise<QgaOsInfo | null> {
    try {
      return await this.transport.execute<QgaOsInfo>('guest-get-osinfo');
    } catch (e) {
      if (e instanceof QgaError && e.qgaClass === 'CommandNotFound') return null;
      throw e;
    }
  }

  interfaces(): Promise<QgaInterface[]> {
    return this.transport.execute<QgaInterface[]>('guest-network-get-interfaces');
  }

  /** Returns null when the file does not exist. */
  async readFile(path: string): Promise<Buffer | null> {
    let handle: number;
    try {
      handle = await this.transport.execute<number>('guest-file-open', { path, mode: 'r' });
    } catch (e) {
      if (e instanceof QgaError && /No such file|not found/i.test(e.message)) return null;
      throw e;
    }
    const chunks: Buffer[] = [];
    try {
      for (;;) {
        const r = await this.transport.execute<{ count: number; 'buf-b64': string; eof: boolean }>('guest-file-read', { handle, count: 1 << 20 });
        chunks.push(Buffer.from(r['buf-b64'], 'base64'));
        if (r.eof || r.count === 0) break;
      }
    } finally {
      await this.transport.execute('guest-file-close', { handle });
    }
    return Buffer.concat(chunks);
  }

  async writeFile(path: string, content: string | Buffer): Promise<void> {
    const data = typeof content === 'string' ? Buffer.from(content) : content;
    const handle = await this.transport.execute<number>('guest-file-open', { path, mode: 'w' });
    try {
      // chunks far below the agent's 48 MiB per-call limit
      for (let off = 0; off < data.length; ) {
        const chunk = data.subarray(off, off + (4 << 20));
        const r = await this.transport.execute<{ count: number }>('guest-file-write', { handle, 'buf-b64': chunk.toString('base64') });
        if (r.count <= 0) throw new IpvisorError('DRIVER', `guest agent: guest-file-write to ${path} wrote nothing`);
        off += r.count;
      }
    } finally {
      await this.transport.execute('guest-file-close', { handle });
    }
  }

  /** Starts a process in the guest; returns its pid without waiting. */
  async spawn(path: string, args: string[] = [], opts: { input?: string; capture?: boolean } = {}): Promise<number> {
    const a: Record<string, unknown> = { path, arg: args, 'capture-output': opts.capture ?? false };
    if (opts.input !== undefined) a['input-data'] = Buffer.from(opts.input).toString('base64');
    const r = await this.transport.execute<{ pid: number }>('guest-exec', a);
    return r.pid;
  }

  async wait(pid: number, timeoutMs: number): Promise<ExecResult> {
    const deadline = Date.now() + timeoutMs;
    let delay = 5;
    for (;;) {
      const s = await this.transport.execute<{ exited: boolean; exitcode?: number; signal?: number; 'out-data'?: string; 'err-data'?: string }>('guest-exec-status', { pid });
      if (s.exited) {
        return {
          exitcode: s.exitcode ?? null,
          signal: s.signal ?? null,
          stdout: Buffer.from(s['out-data'] ?? '', 'base64').toString('utf8'),
          stderr: Buffer.from(s['err-data'] ?? '', 'base64').toString('utf8'),
        };
      }
      if (Date.now() > deadline) throw new IpvisorError('DRIVER', `guest agent: guest process ${pid} still running after ${timeoutMs} ms`);
      await new Promise((r) => setTimeout(r, delay));
      delay = Math.min(delay * 2, 200);
    }
  }

  async exec(path: string, args: string[] = [], opts: { input?: string; timeoutMs?: number } = {}): Promise<ExecResult> {
    const pid = await this.spawn(path, args, { input: opts.input, capture: true });
    return this.wait(pid, opts.timeoutMs ?? DEFAULT_TIMEOUT_MS);
  }

  close(): Promise<void> {
    return this.transport.close();
  }
}

// The client side of the local agent's socket: one JSON line out, one JSON line back. Node
// built-ins only, so that the small libvirt hook entry (dist/libvirt-hook.cjs) can bundle it
// without the agent's code.
import { createConnection } from 'node:net';

/** undefined when no agent answers (refused, closed without a JSON reply, or no reply in time). */
export function askAgentSocket<T>(path: string, req: unknown, timeoutMs: number): Promise<T | undefined> {
  return new Promise((resolve) => {
    const conn = createConnection(path);
    let buf = '';
    const timer = setTimeout(() => (conn.destroy(), resolve(undefined)), timeoutMs);
    conn.setEncoding('utf8');
    conn.on('connect', () => conn.write(JSON.stringify(req) + '\n'));
    conn.on('data', (d: string) => (buf += d));
    conn.on('end', () => {
      clearTimeout(timer);
      try {
        resolve(JSON.parse(buf) as T);
      } catch {
        resolve(undefined);
      }
    });
    conn.on('error', () => {
      clearTimeout(timer);
      resolve(undefined);
    });
  });
}

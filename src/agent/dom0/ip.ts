// The few iproute2/ping operations the dom0 binder needs, parsing plain `ip -o` text rather than
// `ip -j`, because XCP-ng 8.x dom0 ships an iproute2 that predates JSON output. argv arrays only.
import type { HostRunner } from '../host/exec.js';

/** Same protocol number as compile/host-plan.ts (IPVISOR_RT_PROTO): ipvisor's routes are tagged. */
export const DOM0_RT_PROTO = '250';

export interface RouteLine {
  via: string | null;
  dev: string | null;
  proto: string | null;
  metric: number;
  text: string;
}

export class Dom0Ip {
  constructor(
    private readonly runner: HostRunner,
    private readonly ip = 'ip',
    private readonly ping = 'ping',
  ) {}

  /** Addresses on a device as "ADDR/LEN", or null when the device does not exist. */
  async addresses(dev: string): Promise<string[] | null> {
    const res = await this.runner.run([this.ip, '-o', 'addr', 'show', 'dev', dev], { allowFail: true });
    if (res.code !== 0) return null;
    const out: string[] = [];
    for (const line of res.stdout.split('\n')) {
      const m = /\binet6?\s+(\S+)/.exec(line);
      if (m) out.push(m[1]!);
    }
    return out;
  }

  async addAddress(dev: string, cidr: string): Promise<void> {
    await this.runner.run([this.ip, 'addr', 'add', cidr, 'dev', dev]);
  }

  async delAddress(dev: string, cidr: string): Promise<void> {
    await this.runner.run([this.ip, 'addr', 'del', cidr, 'dev', dev]);
  }

  async defaultRoutes(family: 4 | 6): Promise<RouteLine[]> {
    const res = await this.runner.run([this.ip, family === 6 ? '-6' : '-4', 'route', 'show', 'default'], { allowFail: true });
    if (res.code !== 0) return [];
    return res.stdout
      .split('\n')
      .filter((l) => l.startsWith('default'))
      .map((text) => ({
        via: /\bvia\s+(\S+)/.exec(text)?.[1] ?? null,
        dev: /\bdev\s+(\S+)/.exec(text)?.[1] ?? null,
        proto: /\bproto\s+(\S+)/.exec(text)?.[1] ?? null,
        metric: Number(/\bmetric\s+(\d+)/.exec(text)?.[1] ?? 0),
        text: text.trim(),
      }));
  }

  async replaceDefault(family: 4 | 6, via: string, dev: string, metric: number): Promise<void> {
    await this.runner.run([this.ip, family === 6 ? '-6' : '-4', 'route', 'replace', 'default', 'via', via, 'dev', dev, 'proto', DOM0_RT_PROTO, 'metric', String(metric)]);
  }

  async delRoute(family: 4 | 6, route: RouteLine): Promise<void> {
    const argv = [this.ip, family === 6 ? '-6' : '-4', 'route', 'del', 'default'];
    if (route.via) argv.push('via', route.via);
    if (route.dev) argv.push('dev', route.dev);
    argv.push('metric', String(route.metric));
    await this.runner.run(argv, { allowFail: true });
  }

  /** One echo request; true when answered within timeoutSeconds. */
  async pingOnce(target: string, timeoutSeconds: number): Promise<boolean> {
    const argv = [this.ping, ...(target.includes(':') ? ['-6'] : []), '-c', '1', '-n', '-W', String(Math.max(1, Math.round(timeoutSeconds))), target];
    const res = await this.runner.run(argv, { allowFail: true });
    return res.code === 0;
  }
}

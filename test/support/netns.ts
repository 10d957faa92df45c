// Network-namespace topology for host-enforcement tests: a "host" namespace with a bridge, each VM
// a namespace attached by a veth whose host end is the VIF, optional upstream namespace. Frames
// are crafted here (Buffers) and sent/received with a tiny python3 AF_PACKET helper (stdlib only).
import { execFile, spawn } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { promisify } from 'node:util';
import { skipUnless } from './skip.js';

const pexec = promisify(execFile);

export async function sh(argv: string[], opts: { allowFail?: boolean; input?: string } = {}): Promise<string> {
  try {
    const { stdout } = await pexec(argv[0], argv.slice(1), { maxBuffer: 64 * 1024 * 1024 });
    return stdout;
  } catch (e) {
    if (opts.allowFail) return '';
    const err = e as { stderr?: string; message: string };
    throw new Error(`${argv.join(' ')}: ${err.stderr?.trim() || err.message}`);
  }
}

/** Why root netns tests cannot run here, or null when they can. */
export async function netnsSkipReason(): Promise<string | false> {
  return skipUnless(await netnsMissing());
}

async function netnsMissing(): Promise<string | null> {
  if (process.getuid?.() !== 0) return 'needs root';
  for (const tool of [['ip', '-V'], ['nft', '--version'], ['python3', '--version']]) {
    try {
      await pexec(tool[0], tool.slice(1));
    } catch {
      return `${tool[0]} is not installed`;
    }
  }
  return null;
}

export interface VmNs {
  name: string;
  ns: string;
  /** Host-side veth end: the VIF's ifname. */
  vif: string;
  mac: string;
}

export class Topology {
  readonly prefix = `iv${randomBytes(2).toString('hex')}`;
  readonly host = `${this.prefix}h`;
  readonly bridge = `${this.prefix}br`;
  private namespaces: string[] = [];

  async create(): Promise<void> {
    await this.addNs(this.host);
    await this.inHost(['ip', 'link', 'set', 'lo', 'up']);
    await this.inHost(['ip', 'link', 'add', this.bridge, 'type', 'bridge', 'stp_state', '0', 'forward_delay', '0', 'mcast_snooping', '0']);
    await this.inHost(['ip', 'link', 'set', this.bridge, 'up']);
  }

  private async addNs(ns: string): Promise<void> {
    await sh(['ip', 'netns', 'add', ns]);
    this.namespaces.push(ns);
  }

  inHost(argv: string[], opts: { allowFail?: boolean } = {}): Promise<string> {
    return sh(['ip', 'netns', 'exec', this.host, ...argv], opts);
  }

  inNs(ns: string, argv: string[], opts: { allowFail?: boolean } = {}): Promise<string> {
    return sh(['ip', 'netns', 'exec', ns, ...argv], opts);
  }

  /** A VM namespace whose eth0 (MAC `mac`) is plugged into the bridge through VIF `${prefix}${name}`. */
  async addVm(name: string, mac: string, opts: { addresses?: string[]; gateway4?: string; bridge?: string } = {}): Promise<VmNs> {
    const ns = `${this.prefix}${name}`;
    const vif = `${this.prefix}${name}`;
    await this.addNs(ns);
    await this.inHost(['ip', 'link', 'add', vif, 'type', 'veth', 'peer', 'name', 'eth0', 'netns', ns]);
    await this.inHost(['ip', 'link', 'set', vif, 'master', opts.bridge ?? this.bridge, 'up']);
    await this.inNs(ns, ['ip', 'link', 'set', 'eth0', 'address', mac]);
    // no DAD/RS noise from the VM's own stack: the tests send what they mean to
    await this.inNs(ns, ['sysctl', '-q', '-w', 'net.ipv6.conf.eth0.accept_dad=0']);
    await this.inNs(ns, ['sysctl', '-q', '-w', 'net.ipv6.conf.eth0.router_solicitations=0']);
    await this.inNs(ns, ['ip', 'link', 'set', 'lo', 'up']);
    await this.inNs(ns, ['ip', 'link', 'set', 'eth0', 'up']);
    for (const a of opts.addresses ?? []) await this.inNs(ns, ['ip', 'addr', 'add', a, 'dev', 'eth0', ...(a.includes(':') ? ['nodad'] : [])]);
    if (opts.gateway4) await this.inNs(ns, ['ip', 'route', 'add', 'default', 'via', opts.gateway4]);
    return { name, ns, vif, mac };
  }

  /** An upstream namespace linked to the host by a veth whose host end is returned (the uplink). */
  async addUpstream(hostAddr: string, upstreamAddrs: string[]): Promise<{ ns: string; uplink: string }> {
    const ns = `${this.prefix}up`;
    const uplink = `${this.prefix}upl`;
    await this.addNs(ns);
    await this.inHost(['ip', 'link', 'add', uplink, 'type', 'veth', 'peer', 'name', 'eth0', 'netns', ns]);
    await this.inHost(['ip', 'addr', 'add', hostAddr, 'dev', uplink, ...(hostAddr.includes(':') ? ['nodad'] : [])]);
    await this.inHost(['ip', 'link', 'set', uplink, 'up']);
    await this.inNs(ns, ['ip', 'link', 'set', 'lo', 'up']);
    for (const a of upstreamAddrs) await this.inNs(ns, ['ip', 'addr', 'add', a, 'dev', 'eth0', ...(a.includes(':') ? ['nodad'] : [])]);
    await this.inNs(ns, ['ip', 'link', 'set', 'eth0', 'up']);
    return { ns, uplink };
  }

  async destroy(): Promise<void> {
    for (const ns of this.namespaces.reverse()) await sh(['ip', 'netns', 'del', ns], { allowFail: true });
    this.namespaces = [];
  }
}

// ---------------------------------------------------------------------------------------------
// Raw frames.

const PY = `
import socket, sys, time, select, binascii
cmd, ifname = sys.argv[1], sys.argv[2]
if cmd == 'send':
    s = socket.socket(socket.AF_PACKET, socket.SOCK_RAW)
    s.bind((ifname, 0))
    for h in sys.argv[3:]:
        s.send(binascii.unhexlify(h))
        time.sleep(0.002)
else:
    secs = float(sys.argv[3])
    s = socket.socket(socket.AF_PACKET, socket.SOCK_RAW, socket.htons(3))
    s.bind((ifname, 0))
    print('ready', flush=True)
    end = time.time() + secs
    while True:
        left = end - time.time()
        if left <= 0: break
        r, _, _ = select.select([s], [], [], left)
        if not r: continue
        data, addr = s.recvfrom(65535)
        if addr[2] == socket.PACKET_OUTGOING: continue
        print(binascii.hexlify(data).decode(), flush=True)
`;

export async function sendFrames(ns: string, ifname: string, frames: Buffer[]): Promise<void> {
  await sh(['ip', 'netns', 'exec', ns, 'python3', '-c', PY, 'send', ifname, ...frames.map((f) => f.toString('hex'))]);
}

/** Starts a listener; resolves once it is ready. `done()` resolves with the hex of every frame received. */
export async function listen(ns: string, ifname: string, seconds: number): Promise<{ done: () => Promise<string[]> }> {
  const child = spawn('ip', ['netns', 'exec', ns, 'python3', '-c', PY, 'listen', ifname, String(seconds)], { stdio: ['ignore', 'pipe', 'pipe'] });
  let buf = '';
  const lines: string[] = [];
  let readyResolve!: () => void;
  const ready = new Promise<void>((r) => (readyResolve = r));
  child.stdout.on('data', (d: Buffer) => {
    buf += d.toString();
    let i;
    while ((i = buf.indexOf('\n')) >= 0) {
      const line = buf.slice(0, i);
      buf = buf.slice(i + 1);
      if (line === 'ready') readyResolve();
      else lines.push(line);
    }
  });
  const exited = new Promise<void>((r) => child.on('close', () => (readyResolve(), r())));
  await ready;
  return { done: async () => (await exited, lines) };
}

/** Sends frames from one namespace and returns which markers arrived at the listener. */
export async function deliver(from: { ns: string; ifname: string }, to: { ns: string; ifname: string }, frames: Array<{ marker: string; frame: Buffer }>): Promise<Set<string>> {
  const l = await listen(to.ns, to.ifname, 1.2);
  await sendFrames(from.ns, from.ifname, frames.map((f) => f.frame));
  const got = await l.done();
  const arrived = new Set<string>();
  for (const f of frames) {
    const hex = Buffer.from(f.marker).toString('hex');
    if (got.some((g) => g.includes(hex))) arrived.add(f.marker);
  }
  return arrived;
}

function mac(s: string): Buffer {
  return Buffer.from(s.split(':').map((x) => parseInt(x, 16)));
}

function ip4(s: string): Buffer {
  return Buffer.from(s.split('.').map(Number));
}

function ip6(s: string): Buffer {
  const [head, tail] = s.includes('::') ? s.split('::') : [s, undefined];
  const h = head ? head.split(':') : [];
  const t = tail !== undefined && tail ? tail.split(':') : [];
  const groups = tail === undefined ? h : [...h, ...Array(8 - h.length - t.length).fill('0'), ...t];
  const b = Buffer.alloc(16);
  groups.forEach((g, i) => b.writeUInt16BE(parseInt(g, 16), i * 2));
  return b;
}

function csum(buf: Buffer): number {
  let sum = 0;
  for (let i = 0; i < buf.length; i += 2) sum += (buf[i] << 8) + (i + 1 < buf.length ? buf[i + 1] : 0);
  while (sum >> 16) sum = (sum & 0xffff) + (sum >> 16);
  return ~sum & 0xffff;
}

export function eth(dst: string, src: string, type: number, payload: Buffer): Buffer {
  const h = Buffer.alloc(14);
  mac(dst).copy(h, 0);
  mac(src).copy(h, 6);
  h.writeUInt16BE(type, 12);
  return Buffer.concat([h, payload]);
}

export function ipv4(src: string, dst: string, proto: number, payload: Buffer): Buffer {
  const h = Buffer.alloc(20);
  h[0] = 0x45;
  h.writeUInt16BE(20 + payload.length, 2);
  h[8] = 64;
  h[9] = proto;
  ip4(src).copy(h, 12);
  ip4(dst).copy(h, 16);
  h.writeUInt16BE(csum(h), 10);
  return Buffer.concat([h, payload]);
}

export function udp(sport: number, dport: number, payload: Buffer): Buffer {
  const h = Buffer.alloc(8);
  h.writeUInt16BE(sport, 0);
  h.writeUInt16BE(dport, 2);
  h.writeUInt16BE(8 + payload.length, 4);
  return Buffer.concat([h, payload]);
}

export function ipv6(src: string, dst: string, next: number, payload: Buffer): Buffer {
  const h = Buffer.alloc(40);
  h.writeUInt32BE(0x60000000, 0);
  h.writeUInt16BE(payload.length, 4);
  h[6] = next;
  h[7] = 255;
  ip6(src).copy(h, 8);
  ip6(dst).copy(h, 24);
  if (next === 58) {
    const pseudo = Buffer.concat([ip6(src), ip6(dst), Buffer.from([0, 0, (payload.length >> 8) & 0xff, payload.length & 0xff, 0, 0, 0, 58]), payload]);
    payload.writeUInt16BE(csum(pseudo), 2);
  }
  return Buffer.concat([h, payload]);
}

export function icmpv6(type: number, body: Buffer): Buffer {
  return Buffer.concat([Buffer.from([type, 0, 0, 0]), body]);
}

/** Neighbour solicitation (135) / advertisement (136) body for `target`. */
export function ndBody(type: 135 | 136, target: string): Buffer {
  const flags = Buffer.alloc(4);
  if (type === 136) flags[0] = 0x20; // override
  return icmpv6(type, Buffer.concat([flags, ip6(target)]));
}

export function arp(op: 1 | 2, sha: string, spa: string, tha: string, tpa: string): Buffer {
  const h = Buffer.from([0, 1, 0x08, 0x00, 6, 4, 0, op]);
  return Buffer.concat([h, mac(sha), ip4(spa), mac(tha), ip4(tpa)]);
}

export const ETH_IP4 = 0x0800;
export const ETH_ARP = 0x0806;
export const ETH_IP6 = 0x86dd;

/** Points ipvisor's host code at a test's namespace, run dir and store; returns the undo. */
export function useHostEnv(vars: { IPVISOR_NETNS?: string; IPVISOR_RUN_DIR?: string; IPVISOR_DB?: string }): () => void {
  const saved = Object.fromEntries(Object.keys(vars).map((k) => [k, process.env[k]]));
  Object.assign(process.env, vars);
  return () => {
    for (const [k, v] of Object.entries(saved)) {
      if (v === undefined) delete process.env[k];
      else process.env[k] = v;
    }
  };
}

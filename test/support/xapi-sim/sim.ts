// A faithful-enough XAPI pool master (or member) for tests: JSON-RPC 1.0/2.0 over HTTP on 127.0.0.1
// (optionally also a Unix socket, like dom0's /var/lib/xcp/xapi), seeded from the reference fixture.
// It reproduces the quirks ipvisor must cope with (reference/xapi/NOTES.md): lower-case event
// classes, no snapshot on `del`, string event ids, "%020d,%020d" tokens, an empty token returning
// everything as `add`, coalesced events, float-only event.from timeouts, HOST_IS_SLAVE,
// SESSION_INVALID, EVENTS_LOST, VIF_IN_USE, ADDRESS_VIOLATES_LOCKING_CONSTRAINT, VM_LACKS_FEATURE and
// LICENCE_RESTRICTION. Test-control methods change the pool "from outside" (as Xen Orchestra would).
import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import { createServer as createHttpsServer } from 'node:https';
import { randomUUID } from 'node:crypto';
import { readFileSync } from 'node:fs';
import { isIP } from 'node:net';

/** A copy of reference/xapi/fixture.json, so CI needs nothing outside the repository. */
export const FIXTURE_URL = new URL('./fixture.json', import.meta.url);

export const WIRE_CLASSES = ['pool', 'host', 'VM', 'VM_guest_metrics', 'VIF', 'network', 'PIF', 'SR', 'PBD', 'VM_metrics'] as const;
export type WireClass = (typeof WIRE_CLASSES)[number];
type Rec = Record<string, any>;

export class SimFault extends Error {
  constructor(readonly code: string, readonly params: string[] = []) {
    super(`${code} ${params.join(' ')}`);
  }
}

interface SimEvent {
  id: number;
  cls: WireClass;
  op: 'add' | 'mod' | 'del';
  ref: string;
}

export interface XapiSimOptions {
  /** Fixture path or object; defaults to the shared reference fixture. */
  fixture?: string | Rec;
  user?: string;
  password?: string;
  /** When set, this "host" is a pool member: logins fail with HOST_IS_SLAVE [masterAddress]. */
  slaveOf?: string;
  /** Listen address and port (default 127.0.0.1, ephemeral); another 127.x address lets a member share the master's port. */
  host?: string;
  port?: number;
  /** Serve HTTPS with this key and certificate (PEM), like a real pool master on 443. */
  tls?: { key: string; cert: string };
  /** Also listen on this Unix socket path (dom0's local XAPI). */
  socketPath?: string;
  /** Called before a VM becomes Running (e.g. a test creates the VM's bridges here). */
  onVmStart?: (vm: Rec, sim: XapiSim) => Promise<void> | void;
  /** Called after a VM stopped (XAPI destroys PIF-less bridges with their last VIF). */
  onVmStop?: (vm: Rec, sim: XapiSim) => Promise<void> | void;
  /** Events kept for event.from; older tokens get EVENTS_LOST. */
  eventRetention?: number;
}

export interface CallLogEntry {
  method: string;
  params: unknown[];
  session?: string;
  error?: string;
}

export function loadFixture(): Rec {
  return JSON.parse(readFileSync(FIXTURE_URL, 'utf8'));
}

/** The source text of the last element of the request's params array (to see how a number was written). */
export function lastParamText(raw: string): string {
  const start = raw.indexOf('"params"');
  if (start < 0) return '';
  let i = raw.indexOf('[', start);
  let depth = 0;
  let inStr = false;
  let lastComma = i;
  for (; i < raw.length; i++) {
    const ch = raw[i];
    if (inStr) {
      if (ch === '\\') i++;
      else if (ch === '"') inStr = false;
      continue;
    }
    if (ch === '"') inStr = true;
    else if (ch === '[' || ch === '{') depth++;
    else if (ch === ']' || ch === '}') {
      depth--;
      if (depth === 0) return raw.slice(lastComma + 1, i).trim();
    } else if (ch === ',' && depth === 1) lastComma = i;
  }
  return '';
}

const NULL_REF = 'OpaqueRef:NULL';
const pad20 = (n: number): string => String(n).padStart(20, '0');

export class XapiSim {
  readonly db = new Map<WireClass, Map<string, Rec>>();
  readonly sessions = new Map<string, { user: string; originator: string }>();
  readonly calls: CallLogEntry[] = [];
  /** Every login's parameters (to check version and originator). */
  readonly logins: unknown[][] = [];
  url = '';
  port = 0;
  private server?: Server;
  private socketServer?: Server;
  private generation = 0;
  private events: SimEvent[] = [];
  private lostBefore = 0;
  private waiters = new Set<() => void>();
  private nextDomid = 10;
  /** method name -> fault to raise once (fault injection). */
  private failOnce = new Map<string, SimFault>();
  private closed = false;

  constructor(private readonly opts: XapiSimOptions = {}) {
    const fx = typeof opts.fixture === 'object' ? opts.fixture : opts.fixture ? JSON.parse(readFileSync(opts.fixture, 'utf8')) : loadFixture();
    for (const cls of WIRE_CLASSES) {
      const table = new Map<string, Rec>();
      for (const [ref, rec] of Object.entries((fx[cls] ?? {}) as Rec)) table.set(ref, structuredClone(rec));
      this.db.set(cls, table);
    }
    this.generation = 1000;
    const maxDomid = Math.max(0, ...[...this.table('VM').values()].map((v) => Number(v.domid)));
    this.nextDomid = maxDomid + 1;
  }

  // ----- lifecycle -----

  async start(): Promise<this> {
    const handler = (req: IncomingMessage, res: ServerResponse): void => void this.handle(req, res);
    this.server = this.opts.tls ? createHttpsServer({ key: this.opts.tls.key, cert: this.opts.tls.cert }, handler) : createServer(handler);
    const host = this.opts.host ?? '127.0.0.1';
    await new Promise<void>((resolve, reject) => {
      this.server!.once('error', reject);
      this.server!.listen(this.opts.port ?? 0, host, resolve);
    });
    const addr = this.server.address();
    if (addr === null || typeof addr === 'string') throw new Error('sim: no address');
    this.port = addr.port;
    this.url = `${this.opts.tls ? 'https' : 'http'}://${host}:${this.port}`;
    if (this.opts.socketPath) {
      this.socketServer = createServer((req, res) => void this.handle(req, res));
      await new Promise<void>((resolve) => this.socketServer!.listen(this.opts.socketPath, resolve));
    }
    return this;
  }

  async close(): Promise<void> {
    this.closed = true;
    for (const w of this.waiters) w();
    for (const s of [this.server, this.socketServer]) {
      if (!s) continue;
      s.closeAllConnections();
      await new Promise<void>((resolve) => s.close(() => resolve()));
    }
  }

  // ----- data helpers (also used by tests) -----

  table(cls: WireClass): Map<string, Rec> {
    return this.db.get(cls)!;
  }

  record(cls: WireClass, ref: string): Rec {
    const r = this.table(cls).get(ref);
    if (!r) throw new SimFault('HANDLE_INVALID', [cls, ref]);
    return r;
  }

  refByUuid(cls: WireClass, uuid: string): string {
    for (const [ref, r] of this.table(cls)) if (r.uuid === uuid) return ref;
    throw new SimFault('UUID_INVALID', [cls.toLowerCase(), uuid]);
  }

  refByName(cls: WireClass, name: string): string {
    for (const [ref, r] of this.table(cls)) if (r.name_label === name) return ref;
    throw new Error(`sim: no ${cls} named ${name}`);
  }

  byName(cls: WireClass, name: string): Rec {
    return this.record(cls, this.refByName(cls, name));
  }

  get poolRef(): string {
    return [...this.table('pool').keys()][0]!;
  }

  get token(): string {
    return `${pad20(this.generation)},${pad20(0)}`;
  }

  private emit(cls: WireClass, op: SimEvent['op'], ref: string): void {
    this.generation += 1;
    this.events.push({ id: this.generation, cls, op, ref });
    const keep = this.opts.eventRetention ?? 10_000;
    if (this.events.length > keep) {
      const dropped = this.events.splice(0, this.events.length - keep);
      this.lostBefore = dropped[dropped.length - 1]!.id;
    }
    for (const w of this.waiters) w();
  }

  /** Changes fields of a record and emits a `mod` event (coalesced by event.from). */
  modify(cls: WireClass, ref: string, fields: Rec): void {
    Object.assign(this.record(cls, ref), fields);
    this.emit(cls, 'mod', ref);
  }

  add(cls: WireClass, rec: Rec, ref = `OpaqueRef:${randomUUID()}`): string {
    this.table(cls).set(ref, rec);
    this.emit(cls, 'add', ref);
    return ref;
  }

  remove(cls: WireClass, ref: string): void {
    if (!this.table(cls).delete(ref)) throw new SimFault('HANDLE_INVALID', [cls, ref]);
    this.emit(cls, 'del', ref);
  }

  // ----- test controls ("from outside": Xen Orchestra, xe, the admin) -----

  /** The next call of `method` fails with this XAPI error. */
  failNext(method: string, code: string, params: string[] = []): void {
    this.failOnce.set(method, new SimFault(code, params));
  }

  /** Every session becomes invalid (as after a toolstack restart or the 24 h GC). */
  invalidateSessions(): void {
    this.sessions.clear();
  }

  /** Drops the event history: every outstanding token now gets EVENTS_LOST. */
  loseEvents(): void {
    this.generation += 1;
    this.lostBefore = this.generation;
    this.events = [];
  }

  setRestriction(key: 'restrict_vif_locking' | 'restrict_guest_ip_setting', restricted: boolean): void {
    const pool = this.record('pool', this.poolRef);
    this.modify('pool', this.poolRef, { restrictions: { ...pool.restrictions, [key]: String(restricted) } });
  }

  setGuestFeature(vmName: string, feature: string, value: string | null): void {
    const vm = this.byName('VM', vmName);
    let gm = vm.guest_metrics as string;
    if (gm === NULL_REF || !this.table('VM_guest_metrics').has(gm)) {
      gm = this.add('VM_guest_metrics', { uuid: randomUUID(), networks: {}, other: {}, other_config: {}, live: true, PV_drivers_detected: true });
      this.modify('VM', this.refByName('VM', vmName), { guest_metrics: gm });
    }
    const rec = this.record('VM_guest_metrics', gm);
    const other = { ...rec.other };
    if (value === null) delete other[feature];
    else other[feature] = value;
    this.modify('VM_guest_metrics', gm, { other });
  }

  createVm(name: string, extra: Rec = {}): string {
    const host = [...this.table('host').keys()][0]!;
    void host;
    return this.add('VM', {
      uuid: randomUUID(),
      name_label: name,
      name_description: '',
      power_state: 'Halted',
      domid: -1,
      resident_on: NULL_REF,
      is_a_template: false,
      is_a_snapshot: false,
      is_control_domain: false,
      guest_metrics: NULL_REF,
      other_config: {},
      VIFs: [],
      order: 0,
      start_delay: 0,
      domain_type: 'hvm',
      ...extra,
    });
  }

  addVif(vmName: string, networkName: string, fields: Rec = {}): string {
    const vmRef = this.refByName('VM', vmName);
    const netRef = this.refByName('network', networkName);
    const vm = this.record('VM', vmRef);
    const used = new Set((vm.VIFs as string[]).map((r) => this.table('VIF').get(r)?.device));
    let dev = 0;
    while (used.has(String(dev))) dev += 1;
    const mac = fields.MAC ?? `02:00:00:${[0, 0, 0].map(() => Math.floor(Math.random() * 256).toString(16).padStart(2, '0')).join(':')}`;
    const ref = this.add('VIF', {
      uuid: randomUUID(),
      device: String(dev),
      network: netRef,
      VM: vmRef,
      MAC: mac,
      MTU: 1500,
      other_config: {},
      currently_attached: vm.power_state === 'Running',
      locking_mode: 'network_default',
      ipv4_allowed: [],
      ipv6_allowed: [],
      ipv4_configuration_mode: 'None',
      ipv4_addresses: [],
      ipv4_gateway: '',
      ipv6_configuration_mode: 'None',
      ipv6_addresses: [],
      ipv6_gateway: '',
      ...fields,
    });
    this.modify('VM', vmRef, { VIFs: [...vm.VIFs, ref] });
    const net = this.record('network', netRef);
    this.modify('network', netRef, { VIFs: [...net.VIFs, ref] });
    return ref;
  }

  deleteVif(ref: string): void {
    const vif = this.record('VIF', ref);
    const vm = this.table('VM').get(vif.VM);
    if (vm) this.modify('VM', vif.VM, { VIFs: (vm.VIFs as string[]).filter((r) => r !== ref) });
    const net = this.table('network').get(vif.network);
    if (net) this.modify('network', vif.network, { VIFs: (net.VIFs as string[]).filter((r) => r !== ref) });
    this.remove('VIF', ref);
  }

  /** VIF.move: the VIF (same UUID, same device) now sits on another network. */
  moveVif(ref: string, networkName: string): void {
    const vif = this.record('VIF', ref);
    const to = this.refByName('network', networkName);
    const from = this.table('network').get(vif.network);
    if (from) this.modify('network', vif.network, { VIFs: (from.VIFs as string[]).filter((r) => r !== ref) });
    this.modify('network', to, { VIFs: [...(this.record('network', to).VIFs as string[]), ref] });
    this.modify('VIF', ref, { network: to });
  }

  deleteVm(name: string): void {
    const ref = this.refByName('VM', name);
    for (const vif of [...(this.record('VM', ref).VIFs as string[])]) this.deleteVif(vif);
    this.remove('VM', ref);
  }

  /** As if an admin edited the VIF in Xen Orchestra. */
  setVifLockingFromOutside(ref: string, fields: { locking_mode?: string; ipv4_allowed?: string[]; ipv6_allowed?: string[] }): void {
    this.modify('VIF', ref, fields);
  }

  async startVm(ref: string): Promise<void> {
    const vm = this.record('VM', ref);
    if (vm.power_state === 'Running') throw new SimFault('VM_BAD_POWER_STATE', [ref, 'halted', 'running']);
    const hostRef = [...this.table('host').keys()][0]!;
    if (this.record('host', hostRef).enabled === false) throw new SimFault('HOST_DISABLED', [hostRef]);
    await this.opts.onVmStart?.(vm, this);
    const domid = this.nextDomid++;
    for (const v of vm.VIFs as string[]) if (this.table('VIF').has(v)) this.modify('VIF', v, { currently_attached: true });
    this.modify('VM', ref, { power_state: 'Running', domid, resident_on: hostRef });
  }

  async stopVm(ref: string): Promise<void> {
    const vm = this.record('VM', ref);
    if (vm.power_state === 'Halted') throw new SimFault('VM_BAD_POWER_STATE', [ref, 'running', 'halted']);
    for (const v of vm.VIFs as string[]) if (this.table('VIF').has(v)) this.modify('VIF', v, { currently_attached: false });
    this.modify('VM', ref, { power_state: 'Halted', domid: -1, resident_on: NULL_REF });
    await this.opts.onVmStop?.(vm, this);
  }

  // ----- HTTP / JSON-RPC -----

  private async handle(req: IncomingMessage, res: ServerResponse): Promise<void> {
    const chunks: Buffer[] = [];
    for await (const c of req) chunks.push(c as Buffer);
    const raw = Buffer.concat(chunks).toString('utf8');
    let body: Rec;
    try {
      if (req.method !== 'POST' || req.url !== '/jsonrpc') throw new Error('not found');
      body = JSON.parse(raw);
      if (typeof body.method !== 'string' || !Array.isArray(body.params)) throw new Error('malformed');
      if (body.id === null || body.id === undefined || (typeof body.id !== 'string' && typeof body.id !== 'number')) throw new Error('bad id');
    } catch {
      // XAPI answers malformed requests with HTTP 500 and an HTML body.
      res.writeHead(500, { 'content-type': 'text/html' });
      res.end('<html><body><h1>HTTP 500 internal server error</h1>An unexpected error occurred; please wait a while and try again.</body></html>');
      return;
    }
    const v2 = body.jsonrpc === '2.0';
    const method = body.method as string;
    const entry: CallLogEntry = { method, params: body.params };
    this.calls.push(entry);
    let out: Rec;
    try {
      const result = await this.dispatch(method, body.params, raw);
      out = v2 ? { jsonrpc: '2.0', result, id: body.id } : { result, error: null, id: body.id };
    } catch (err) {
      const f = err instanceof SimFault ? err : new SimFault('INTERNAL_ERROR', [String((err as Error).message ?? err)]);
      entry.error = f.code;
      out = v2 ? { jsonrpc: '2.0', error: { code: 1, message: f.code, data: f.params }, id: body.id } : { result: null, error: [f.code, ...f.params], id: body.id };
    }
    if (this.closed) return void res.destroy();
    const text = JSON.stringify(out);
    res.writeHead(200, { 'content-type': 'application/json', 'content-length': Buffer.byteLength(text), 'access-control-allow-origin': '*' });
    res.end(text);
  }

  private session(params: unknown[]): void {
    const s = params[0];
    if (typeof s !== 'string' || !this.sessions.has(s)) throw new SimFault('SESSION_INVALID', [String(s)]);
  }

  private async dispatch(wireMethod: string, params: unknown[], raw: string): Promise<unknown> {
    // Alternative wire names: every Class.message also answers to Class_message.
    let method = wireMethod;
    if (!method.includes('.')) {
      const cls = [...WIRE_CLASSES, 'session', 'event', 'system'].find((c) => method.startsWith(c + '_'));
      if (cls) method = `${cls}.${method.slice(cls.length + 1)}`;
    }
    const injected = this.failOnce.get(method);
    if (injected) {
      this.failOnce.delete(method);
      throw injected;
    }
    if (method === 'session.login_with_password') return this.login(params);
    if (method === 'system.listMethods') return ['session.login_with_password', 'event.from', 'event.inject'];
    this.session(params);
    const args = params.slice(1);
    switch (method) {
      case 'session.logout':
        this.sessions.delete(params[0] as string);
        return '';
      case 'event.from':
        return this.eventFrom(args, raw);
      case 'event.inject': {
        const [cls, ref] = args as [string, string];
        const wc = this.wireClass(cls);
        this.record(wc, ref);
        const token = this.token;
        this.emit(wc, 'mod', ref);
        return token;
      }
      case 'event.get_current_id':
        return String(this.generation);
    }
    const dot = method.indexOf('.');
    const cls = method.slice(0, dot) as WireClass;
    const msg = method.slice(dot + 1);
    if (!this.db.has(cls)) throw new SimFault('MESSAGE_METHOD_UNKNOWN', [wireMethod]);
    const special = this.specialMethod(cls, msg, args);
    if (special !== undefined) return await special;
    return this.genericMethod(cls, msg, args, wireMethod);
  }

  private login(params: unknown[]): string {
    this.logins.push(params);
    const [user, pwd] = params as string[];
    if (params.length < 2 || params.length > 4) throw new SimFault('MESSAGE_PARAMETER_COUNT_MISMATCH', ['session.login_with_password', '4', String(params.length)]);
    if (this.opts.slaveOf) throw new SimFault('HOST_IS_SLAVE', [this.opts.slaveOf]);
    if (user !== (this.opts.user ?? 'root') || pwd !== (this.opts.password ?? 'secret')) throw new SimFault('SESSION_AUTHENTICATION_FAILED', [String(user), 'Authentication failure']);
    const ref = `OpaqueRef:${randomUUID()}`;
    this.sessions.set(ref, { user, originator: String(params[3] ?? '') });
    return ref;
  }

  private wireClass(lower: string): WireClass {
    const wc = WIRE_CLASSES.find((c) => c.toLowerCase() === lower.toLowerCase());
    if (!wc) throw new SimFault('EVENT_SUBSCRIPTION_PARSE_FAILURE', [lower]);
    return wc;
  }

  private async eventFrom(args: unknown[], raw: string): Promise<Rec> {
    if (args.length !== 3) throw new SimFault('MESSAGE_PARAMETER_COUNT_MISMATCH', ['event.from', '4', String(args.length + 1)]);
    const [classes, token, timeout] = args as [string[], string, number];
    // Older ocaml-rpc rejects an integer where a float is expected: the timeout must carry a fraction.
    if (!/[.eE]/.test(lastParamText(raw))) {
      throw new SimFault('INTERNAL_ERROR', ['Rpc.Runtime_error("Float", Int)']);
    }
    if (!Array.isArray(classes)) throw new SimFault('EVENT_SUBSCRIPTION_PARSE_FAILURE', [String(classes)]);
    const subs = classes.map((c) => {
      const [cls, ref] = String(c).split('/');
      return { cls: cls === '*' ? '*' : this.wireClass(cls!), ref };
    });
    const matches = (cls: WireClass, ref: string): boolean => subs.some((s) => (s.cls === '*' || s.cls === cls) && (!s.ref || s.ref === ref));
    if (token === '') {
      // From the beginning: every existing object as an `add`.
      const events: Rec[] = [];
      for (const cls of WIRE_CLASSES) {
        for (const [ref, rec] of this.table(cls)) {
          if (!matches(cls, ref)) continue;
          events.push({ id: String(this.generation), timestamp: '0.0', class: cls.toLowerCase(), operation: 'add', ref, snapshot: structuredClone(rec) });
        }
      }
      return { events, valid_ref_counts: this.refCounts(), token: this.token };
    }
    const m = /^(\d{20}),(\d{20})$/.exec(String(token));
    if (!m) throw new SimFault('EVENT_FROM_TOKEN_PARSE_FAILURE', [String(token)]);
    const from = Number(m[1]);
    const deadline = Date.now() + Math.max(0, Number(timeout)) * 1000;
    for (;;) {
      if (from < this.lostBefore) throw new SimFault('EVENTS_LOST', []);
      const latest = new Map<string, SimEvent>();
      for (const e of this.events) if (e.id > from && matches(e.cls, e.ref)) latest.set(`${e.cls}/${e.ref}`, e);
      const out: Rec[] = [];
      for (const e of [...latest.values()].sort((a, b) => a.id - b.id)) {
        const ev: Rec = { id: String(e.id), timestamp: '0.0', class: e.cls.toLowerCase(), operation: e.op, ref: e.ref };
        if (e.op !== 'del') {
          const rec = this.table(e.cls).get(e.ref);
          if (!rec) continue; // vanished before serialisation: dropped silently, like XAPI
          ev.snapshot = structuredClone(rec);
        }
        out.push(ev);
      }
      const remaining = deadline - Date.now();
      if (out.length > 0 || remaining <= 0 || this.closed) return { events: out, valid_ref_counts: this.refCounts(), token: this.token };
      await new Promise<void>((resolve) => {
        const done = (): void => {
          clearTimeout(timer);
          this.waiters.delete(done);
          // XAPI batches: a short delay lets related changes coalesce.
          setTimeout(resolve, 20);
        };
        const timer = setTimeout(done, remaining);
        this.waiters.add(done);
      });
    }
  }

  private refCounts(): Rec {
    const out: Rec = {};
    for (const cls of WIRE_CLASSES) out[cls.toLowerCase()] = this.table(cls).size;
    out.task = 0;
    return out;
  }

  private restricted(feature: 'restrict_vif_locking' | 'restrict_guest_ip_setting'): void {
    const pool = this.record('pool', this.poolRef);
    if (pool.restrictions?.[feature] === 'true') throw new SimFault('LICENCE_RESTRICTION', [feature === 'restrict_vif_locking' ? 'VIF_locking' : 'Guest_ip_setting']);
  }

  private effectiveLocking(vif: Rec): string {
    if (vif.locking_mode !== 'network_default') return vif.locking_mode;
    return this.table('network').get(vif.network)?.default_locking_mode ?? 'unlocked';
  }

  private specialMethod(cls: WireClass, msg: string, args: unknown[]): Promise<unknown> | unknown {
    const ref = args[0] as string;
    if (cls === 'VIF') {
      switch (msg) {
        case 'set_locking_mode': {
          const mode = args[1] as string;
          this.record('VIF', ref);
          if (!['network_default', 'locked', 'unlocked', 'disabled'].includes(mode)) throw new SimFault('INVALID_VALUE', ['locking_mode', String(mode)]);
          this.restricted('restrict_vif_locking');
          this.modify('VIF', ref, { locking_mode: mode });
          return '';
        }
        case 'set_ipv4_allowed':
        case 'set_ipv6_allowed': {
          const fam = msg === 'set_ipv4_allowed' ? 4 : 6;
          const list = args[1] as string[];
          this.record('VIF', ref);
          if (!Array.isArray(list)) throw new SimFault('INVALID_VALUE', ['value', String(list)]);
          for (const ip of list) if (isIP(ip) !== fam) throw new SimFault('INVALID_IP_ADDRESS_SPECIFIED', [`ipv${fam}_allowed`]);
          this.restricted('restrict_vif_locking');
          this.modify('VIF', ref, { [`ipv${fam}_allowed`]: [...new Set(list)] });
          return '';
        }
        case 'add_ipv4_allowed':
        case 'add_ipv6_allowed':
        case 'remove_ipv4_allowed':
        case 'remove_ipv6_allowed': {
          const fam = msg.endsWith('ipv4_allowed') ? 4 : 6;
          const ip = args[1] as string;
          const vif = this.record('VIF', ref);
          if (isIP(ip) !== fam) throw new SimFault('INVALID_IP_ADDRESS_SPECIFIED', ['value']);
          this.restricted('restrict_vif_locking');
          const field = `ipv${fam}_allowed`;
          const cur = vif[field] as string[];
          this.modify('VIF', ref, { [field]: msg.startsWith('add') ? [...new Set([...cur, ip])] : cur.filter((x) => x !== ip) });
          return '';
        }
        case 'configure_ipv4':
        case 'configure_ipv6': {
          const fam = msg === 'configure_ipv4' ? 4 : 6;
          const [, mode, address = '', gateway = ''] = args as string[];
          const vif = this.record('VIF', ref);
          this.restricted('restrict_guest_ip_setting');
          if (mode !== 'None' && mode !== 'Static') throw new SimFault('INVALID_VALUE', ['mode', String(mode)]);
          if (mode === 'Static') {
            const [ip, len, more] = address.split('/');
            const max = fam === 4 ? 32 : 128;
            if (more !== undefined || !ip || isIP(ip) !== fam || len === undefined || !/^\d+$/.test(len) || Number(len) > max) throw new SimFault('INVALID_CIDR_ADDRESS_SPECIFIED', ['address']);
            if (gateway !== '' && isIP(gateway) !== fam) throw new SimFault('INVALID_IP_ADDRESS_SPECIFIED', ['gateway']);
            if (this.effectiveLocking(vif) === 'locked' && !(vif[`ipv${fam}_allowed`] as string[]).includes(ip)) throw new SimFault('ADDRESS_VIOLATES_LOCKING_CONSTRAINT', [ip]);
            const vm = this.record('VM', vif.VM);
            const gm = this.table('VM_guest_metrics').get(vm.guest_metrics);
            if (gm?.other?.['feature-static-ip-setting'] !== '1') throw new SimFault('VM_LACKS_FEATURE', [vif.VM]);
          }
          // configure_ipv4(self,"None","","") stores [""] — a real quirk clients must filter.
          this.modify('VIF', ref, { [`ipv${fam}_configuration_mode`]: mode, [`ipv${fam}_addresses`]: [address], [`ipv${fam}_gateway`]: gateway });
          return '';
        }
        case 'destroy':
          this.deleteVif(ref);
          return '';
      }
    }
    if (cls === 'network' && msg === 'set_default_locking_mode') {
      const net = this.record('network', ref);
      const mode = args[1] as string;
      if (mode !== 'unlocked' && mode !== 'disabled') throw new SimFault('INVALID_VALUE', ['default_locking_mode', String(mode)]);
      const attached = (net.VIFs as string[]).find((v) => this.table('VIF').get(v)?.currently_attached);
      if (attached) throw new SimFault('VIF_IN_USE', [ref, attached]);
      this.modify('network', ref, { default_locking_mode: mode });
      return '';
    }
    if (cls === 'VM') {
      switch (msg) {
        case 'start':
          return this.startVm(ref).then(() => '');
        case 'clean_shutdown':
        case 'hard_shutdown':
        case 'shutdown':
          return this.stopVm(ref).then(() => '');
      }
    }
    if (cls === 'PBD' && (msg === 'plug' || msg === 'unplug')) {
      const pbd = this.record('PBD', ref);
      const want = msg === 'plug';
      if (pbd.currently_attached !== want) this.modify('PBD', ref, { currently_attached: want });
      return '';
    }
    if (cls === 'host' && (msg === 'enable' || msg === 'disable')) {
      this.modify('host', ref, { enabled: msg === 'enable' });
      return '';
    }
    return undefined;
  }

  private genericMethod(cls: WireClass, msg: string, args: unknown[], wireMethod: string): unknown {
    const table = this.table(cls);
    switch (msg) {
      case 'get_all_records':
        return Object.fromEntries([...table].map(([r, rec]) => [r, structuredClone(rec)]));
      case 'get_all':
        return [...table.keys()];
      case 'get_record':
        return structuredClone(this.record(cls, args[0] as string));
      case 'get_by_uuid':
        return this.refByUuid(cls, args[0] as string);
      case 'get_by_name_label':
        return [...table].filter(([, r]) => r.name_label === args[0]).map(([ref]) => ref);
    }
    if (msg.startsWith('get_')) {
      const rec = this.record(cls, args[0] as string);
      const field = msg.slice(4);
      if (!(field in rec)) throw new SimFault('MESSAGE_METHOD_UNKNOWN', [wireMethod]);
      return structuredClone(rec[field]);
    }
    if (msg.startsWith('set_') && ['name_label', 'name_description', 'other_config'].includes(msg.slice(4))) {
      this.modify(cls, args[0] as string, { [msg.slice(4)]: args[1] });
      return '';
    }
    // map fields: add_to_<map> refuses a key that is there (MAP_DUPLICATE_KEY), remove_from_<map>
    // of a missing key is a no-op, as in XAPI
    const mapField = msg.startsWith('add_to_') ? msg.slice(7) : msg.startsWith('remove_from_') ? msg.slice(12) : undefined;
    if (mapField && ['other_config', 'xenstore_data'].includes(mapField)) {
      const rec = this.record(cls, args[0] as string);
      const map = { ...((rec[mapField] as Record<string, string> | undefined) ?? {}) };
      const key = String(args[1]);
      if (msg.startsWith('add_to_')) {
        if (key in map) throw new SimFault('MAP_DUPLICATE_KEY', [cls, mapField, args[0] as string, key]);
        if (typeof args[2] !== 'string') throw new SimFault('INVALID_VALUE', ['value', String(args[2])]);
        map[key] = args[2];
      } else delete map[key];
      this.modify(cls, args[0] as string, { [mapField]: map });
      return '';
    }
    throw new SimFault('MESSAGE_METHOD_UNKNOWN', [wireMethod]);
  }
}

export async function startXapiSim(opts: XapiSimOptions = {}): Promise<XapiSim> {
  return new XapiSim(opts).start();
}

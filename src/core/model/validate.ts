// Field validators shared by every front end. Each throws a VALIDATION error naming the field.
import { invalid } from './errors.js';
import type { HostFact } from '../control-plane.js';

const UUID_RE = /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/i;

export function isUuid(text: string): boolean {
  return UUID_RE.test(text);
}

export function validateUuid(text: string, field = 'uuid'): string {
  if (typeof text !== 'string' || !isUuid(text)) throw invalid(field, `'${factLabel(text, 64)}' is not a UUID`);
  return text.toLowerCase();
}

/** Names come from users, libvirt and XAPI (which allows spaces), so the rule is permissive:
 * 1-128 characters, no control characters, no leading '-' (it would read as an option). */
export function validateName(text: string, field = 'name'): string {
  if (typeof text !== 'string' || text.length === 0) throw invalid(field, 'must not be empty');
  if (text.length > MAX_NAME_LENGTH) throw invalid(field, `must be at most ${MAX_NAME_LENGTH} characters`);
  // eslint-disable-next-line no-control-regex
  if (/[\u0000-\u001f\u007f-\u009f]/.test(text)) throw invalid(field, 'must not contain control characters');
  if (text.startsWith('-')) throw invalid(field, `'${text}' must not start with '-'`);
  if (text !== text.trim()) throw invalid(field, 'must not start or end with whitespace');
  return text;
}

/** Accepts ':' or '-' separators and any case; returns lower-case, colon-separated. */
export function normalizeMac(text: string, field = 'mac'): string {
  const m = /^([0-9a-fA-F]{2})([:-])([0-9a-fA-F]{2})\2([0-9a-fA-F]{2})\2([0-9a-fA-F]{2})\2([0-9a-fA-F]{2})\2([0-9a-fA-F]{2})$/.exec(text ?? '');
  if (typeof text !== 'string' || !m) throw invalid(field, `'${factLabel(text, 64)}' is not a MAC address (expected six hex pairs like 52:54:00:12:34:56)`);
  const mac = [m[1], m[3], m[4], m[5], m[6], m[7]].join(':').toLowerCase();
  if (parseInt(m[1], 16) & 1) throw invalid(field, `'${text}' is a multicast MAC address; a VIF needs a unicast one`);
  if (mac === '00:00:00:00:00:00') throw invalid(field, `'${text}' is the all-zero MAC address`);
  return mac;
}

export function validateInt(text: string | number, field: string, min: number, max: number): number {
  const s = String(text).trim();
  if (!/^-?\d+$/.test(s)) throw invalid(field, `'${text}' is not an integer`);
  const n = Number(s);
  if (n < min || n > max) throw invalid(field, `${n} is out of range (${min}-${max})`);
  return n;
}

export function oneOf<T extends string>(text: string, allowed: readonly T[], field: string): T {
  if (!(allowed as readonly string[]).includes(text)) throw invalid(field, `'${text}' is not one of ${allowed.join(', ')}`);
  return text as T;
}

/** Longest name accepted anywhere (VMs, networks, pools, hosts, owners). */
export const MAX_NAME_LENGTH = 128;
/** Longest note or other free text accepted anywhere (ip allocate/reserve --note, ...). */
export const MAX_NOTE_LENGTH = 500;

/** A name given through the CLI (later the API) for a new or renamed object: the common rules,
 * not shaped like a UUID (every NAME argument also accepts a UUID, so such a name would address
 * another object), and for VMs no ':' (a VIF is VM:DEVICE). */
export function validateNewName(text: string, field: string, kind: 'vm' | 'network' | 'pool'): string {
  validateName(text, field);
  if (isUuid(text)) throw invalid(field, `'${text}' is shaped like a UUID; a ${kind} name must not be (UUIDs address objects)`);
  if (kind === 'vm' && text.includes(':')) throw invalid(field, `'${text}' contains ':'; a VM name must not (a VIF is written VM:DEVICE)`);
  return text;
}

/** Notes and other free text: at most MAX_NOTE_LENGTH characters, no control characters. */
export function validateNote(text: string, field = 'note', max = MAX_NOTE_LENGTH): string {
  if (typeof text !== 'string') throw invalid(field, 'must be text');
  if (text.length > max) throw invalid(field, `must be at most ${max} characters (got ${text.length})`);
  // eslint-disable-next-line no-control-regex
  if (/[\u0000-\u001f\u007f-\u009f]/.test(text)) throw invalid(field, 'must not contain control characters');
  return text;
}

/**
 * Interface names (taps, bridges, uplinks): the kernel's rules (dev_valid_name: 1-15 bytes, not
 * '.' or '..', no '/', ':' or whitespace), narrowed to letters, digits and `_ . - @ +` so that a
 * name is inert in every text ipvisor renders (nft ruleset, ip argv, guest scripts).
 */
const IFNAME_RE = /^[A-Za-z0-9_.@+-]{1,15}$/;

export function isValidIfname(text: unknown): text is string {
  return typeof text === 'string' && IFNAME_RE.test(text) && text !== '.' && text !== '..';
}

export function validateIfname(text: string, field = 'ifname'): string {
  if (!isValidIfname(text)) {
    throw invalid(field, `'${escapeControl(String(text))}' is not a valid interface name (1-15 characters of letters, digits, '_', '.', '-', '@', '+'; not '.' or '..')`);
  }
  return text;
}

/** C0 and C1 control characters (ESC, CSI, BEL, newlines ...). */
// eslint-disable-next-line no-control-regex
const CONTROL_RE = /[\u0000-\u001f\u007f-\u009f]/g;

/**
 * Text safe for a terminal or a one-line log: control characters as \n, \t, \xNN escapes (a VM
 * name carrying an ESC sequence must not reach the terminal raw). `keepNewlines` leaves '\n' and
 * '\t' (multi-line output whose layout the program itself wrote).
 */
export function escapeControl(text: string, opts: { keepNewlines?: boolean } = {}): string {
  return text.replace(CONTROL_RE, (c) => {
    if (c === '\n') return opts.keepNewlines ? c : '\\n';
    if (c === '\t') return opts.keepNewlines ? c : '\\t';
    if (c === '\r') return '\\r';
    return `\\x${c.charCodeAt(0).toString(16).padStart(2, '0')}`;
  });
}

/** A fact from outside (hypervisor, import), escaped and cut to a bounded length for logs and labels. */
export function factLabel(text: unknown, max = 256): string {
  const s = escapeControl(typeof text === 'string' ? text : String(text));
  return s.length > max ? `${s.slice(0, max)}...(${s.length} characters)` : s;
}

/**
 * The name a VM (or network) is recorded under when it comes from a hypervisor: its own name when
 * that passes the CLI's rules for new names, else one derived from its UUID (`vm-<uuid>`,
 * `net-<uuid>`), with the hypervisor's name kept as an escaped label. An invalid name never keeps a
 * VM out of the store: that would leave its interfaces unfiltered.
 */
export function hypervisorName(name: unknown, uuid: string, kind: 'vm' | 'network' = 'vm'): { name: string; label: string | null; reason: string | null } {
  try {
    return { name: validateNewName(name as string, 'name', kind), label: null, reason: null };
  } catch (err) {
    return { name: `${kind === 'vm' ? 'vm' : 'net'}-${uuid}`, label: factLabel(name), reason: err instanceof Error ? err.message : String(err) };
  }
}

/**
 * A fact an agent reports (POST /agent/v1/hosts/:host/facts, the in-process agent of serve): its shape
 * checked field by field, unknown fields dropped. The values of a domain fact are libvirt's own and
 * are judged by the same code as a hook's XML (agent/libvirt/facts.ts recordDomain: an unusable MAC
 * or name is quarantined or renamed there, never stored as given), so only their type and size are
 * checked here. `field` names the fact in errors (facts[3].domain.uuid).
 */
export function parseHostFact(value: unknown, field = 'fact'): HostFact {
  const obj = (v: unknown, f: string): Record<string, unknown> => {
    if (!v || typeof v !== 'object' || Array.isArray(v)) throw invalid(f, 'must be an object');
    return v as Record<string, unknown>;
  };
  const str = (v: unknown, f: string, max: number): string => {
    if (typeof v !== 'string') throw invalid(f, 'must be a string');
    if (v.length > max) throw invalid(f, `must be at most ${max} characters`);
    return v;
  };
  const strOrNull = (v: unknown, f: string, max: number): string | null => (v === null || v === undefined ? null : str(v, f, max));
  const time = (v: unknown, f: string): string => {
    const t = str(v, f, 64);
    if (Number.isNaN(Date.parse(t))) throw invalid(f, `'${factLabel(t, 64)}' is not a timestamp`);
    return t;
  };
  const f = obj(value, field);
  const kind = str(f.kind, `${field}.kind`, 32);
  const host = validateName(str(f.host, `${field}.host`, MAX_NAME_LENGTH), `${field}.host`);
  const at = time(f.time, `${field}.time`);
  switch (kind) {
    case 'audit': {
      if (!Array.isArray(f.changes) || f.changes.length > 1000) throw invalid(`${field}.changes`, 'must be a list of at most 1000 lines');
      return { kind, host, time: at, actor: str(f.actor, `${field}.actor`, 200), action: str(f.action, `${field}.action`, 100), changes: f.changes.map((c, i) => str(c, `${field}.changes[${i}]`, 2000)) };
    }
    case 'vif-bind': {
      const ifname = f.ifname === null ? null : validateIfname(str(f.ifname, `${field}.ifname`, 64), `${field}.ifname`);
      return { kind, host, time: at, vmUuid: validateUuid(str(f.vmUuid, `${field}.vmUuid`, 64), `${field}.vmUuid`), mac: normalizeMac(str(f.mac, `${field}.mac`, 64), `${field}.mac`), ifname };
    }
    case 'domain': {
      const state = oneOf(str(f.state, `${field}.state`, 16), ['running', 'stopped'] as const, `${field}.state`);
      const d = obj(f.domain, `${field}.domain`);
      if (!Array.isArray(d.interfaces) || d.interfaces.length > 4096) throw invalid(`${field}.domain.interfaces`, 'must be a list of at most 4096 interfaces');
      const interfaces = d.interfaces.map((x, i) => {
        const w = `${field}.domain.interfaces[${i}]`;
        const o = obj(x, w);
        return { type: str(o.type ?? '', `${w}.type`, 32), mac: strOrNull(o.mac, `${w}.mac`, 64), network: strOrNull(o.network, `${w}.network`, 256), bridge: strOrNull(o.bridge, `${w}.bridge`, 64), portid: strOrNull(o.portid, `${w}.portid`, 64), target: strOrNull(o.target, `${w}.target`, 64), alias: strOrNull(o.alias, `${w}.alias`, 64) };
      });
      return { kind, host, time: at, state, domain: { uuid: str(d.uuid, `${field}.domain.uuid`, 64), name: str(d.name, `${field}.domain.name`, 1024), interfaces } };
    }
    case 'guest-push': {
      const r = obj(f.record, `${field}.record`);
      if (typeof r.ok !== 'boolean') throw invalid(`${field}.record.ok`, 'must be true or false');
      const attempts = r.attempts === undefined ? undefined : validateInt(r.attempts as number, `${field}.record.attempts`, 0, 1_000_000);
      return {
        kind, host, time: at, vmUuid: validateUuid(str(f.vmUuid, `${field}.vmUuid`, 64), `${field}.vmUuid`),
        record: { digest: str(r.digest, `${field}.record.digest`, 128), ok: r.ok, at: time(r.at, `${field}.record.at`), ...(r.error === undefined ? {} : { error: str(r.error, `${field}.record.error`, 2000) }), ...(r.via === undefined ? {} : { via: str(r.via, `${field}.record.via`, 300) }), ...(attempts === undefined ? {} : { attempts }) },
      };
    }
  }
  throw invalid(`${field}.kind`, `'${factLabel(kind, 32)}' is not one of audit, vif-bind, domain, guest-push`);
}

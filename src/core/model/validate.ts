// Field validators shared by every front end. Each throws a VALIDATION error naming the field.
import { invalid } from './errors.js';

const UUID_RE = /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/i;

export function isUuid(text: string): boolean {
  return UUID_RE.test(text);
}

export function validateUuid(text: string, field = 'uuid'): string {
  if (!isUuid(text)) throw invalid(field, `'${text}' is not a UUID`);
  return text.toLowerCase();
}

/** Names come from users, libvirt and XAPI (which allows spaces), so the rule is permissive:
 * 1-128 characters, no control characters, no leading '-' (it would read as an option). */
export function validateName(text: string, field = 'name'): string {
  if (typeof text !== 'string' || text.length === 0) throw invalid(field, 'must not be empty');
  if (text.length > 128) throw invalid(field, 'must be at most 128 characters');
  // eslint-disable-next-line no-control-regex
  if (/[\u0000-\u001f\u007f]/.test(text)) throw invalid(field, 'must not contain control characters');
  if (text.startsWith('-')) throw invalid(field, `'${text}' must not start with '-'`);
  if (text !== text.trim()) throw invalid(field, 'must not start or end with whitespace');
  return text;
}

/** Accepts ':' or '-' separators and any case; returns lower-case, colon-separated. */
export function normalizeMac(text: string, field = 'mac'): string {
  const m = /^([0-9a-fA-F]{2})([:-])([0-9a-fA-F]{2})\2([0-9a-fA-F]{2})\2([0-9a-fA-F]{2})\2([0-9a-fA-F]{2})\2([0-9a-fA-F]{2})$/.exec(text ?? '');
  if (!m) throw invalid(field, `'${text}' is not a MAC address (expected six hex pairs like 52:54:00:12:34:56)`);
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

// API credentials: bearer tokens, password users and their sessions. Records live in the store's
// document table (kinds api-token, api-token-hash, user, session): every backend has them.
// Secrets are shown once and stored only as hashes: tokens and session ids are 256 random bits,
// so a plain SHA-256 is enough for them; passwords are low-entropy and get scrypt.
import { createHash, randomBytes, scrypt as scryptCb, timingSafeEqual } from 'node:crypto';
import { promisify } from 'node:util';
import { IpvisorError, invalid, notFound } from '../model/errors.js';
import { oneOf, validateName } from '../model/validate.js';
import type { Store, StoreTx } from '../store/store.js';
import { audit, newUuid, now } from './context.js';
import { tenantRef } from './tenants.js';

const scrypt = promisify(scryptCb) as (password: string, salt: Buffer, keylen: number, opts: { N: number; r: number; p: number; maxmem: number }) => Promise<Buffer>;

export type Role = 'admin' | 'operator' | 'auditor' | 'tenant' | 'agent';
export const ROLES: readonly Role[] = ['admin', 'operator', 'auditor', 'tenant', 'agent'];

export const DOC_TOKEN = 'api-token';
const DOC_TOKEN_HASH = 'api-token-hash';
export const DOC_USER = 'user';
const DOC_SESSION = 'session';

/** Who made a request: the role decides what it may do, tenant (for role tenant) what it sees. */
export interface Principal {
  kind: 'token' | 'user';
  name: string;
  role: Role;
  tenant: string | null;
  /** Agent tokens: the one host they speak for (control-plane issue). */
  host: string | null;
}

/** The audit log's actor of a principal. */
export function actorOf(p: Principal): string {
  return `${p.kind}:${p.name}`;
}

export interface TokenRecord {
  uuid: string;
  name: string;
  role: Role;
  tenant: string | null;
  host: string | null;
  /** SHA-256 of the secret, hex. Never leaves the store. */
  hash: string;
  createdAt: string;
  expiresAt: string | null;
  revokedAt: string | null;
  lastUsedAt: string | null;
}

export type TokenView = Omit<TokenRecord, 'hash'> & { state: 'active' | 'expired' | 'revoked' };

export interface UserRecord {
  uuid: string;
  name: string;
  role: Role;
  tenant: string | null;
  /** scrypt$N$r$p$salt$hash (base64url). */
  passwordHash: string;
  createdAt: string;
  updatedAt: string;
}

export type UserView = Omit<UserRecord, 'passwordHash'>;

interface SessionRecord {
  user: string;
  csrf: string;
  createdAt: string;
  expiresAt: string;
}

const sha256 = (s: string) => createHash('sha256').update(s).digest('hex');

export function tokenView(t: TokenRecord, at = Date.now()): TokenView {
  const { hash: _hash, ...rest } = t;
  const state = t.revokedAt ? 'revoked' : t.expiresAt && Date.parse(t.expiresAt) <= at ? 'expired' : 'active';
  return { ...rest, state };
}

/** "30d", "12h", "90m", an ISO time, or "never". */
export function parseExpiry(text: string | undefined, nowMs = Date.now()): string | null {
  if (text === undefined || text === 'never') return null;
  const rel = /^(\d+)\s*([mhdw])$/.exec(text.trim());
  if (rel) {
    const mult = { m: 60, h: 3600, d: 86400, w: 604800 }[rel[2] as 'm' | 'h' | 'd' | 'w'];
    if (Number(rel[1]) <= 0) throw invalid('expires', `'${text}' is not a positive duration`);
    return new Date(nowMs + Number(rel[1]) * mult * 1000).toISOString();
  }
  const t = Date.parse(text);
  if (Number.isNaN(t)) throw invalid('expires', `'${text}' is not a duration (30d, 12h, 90m, 2w), an ISO time or 'never'`);
  if (t <= nowMs) throw invalid('expires', `'${text}' is in the past`);
  return new Date(t).toISOString();
}

function newSecret(prefix: string): string {
  return `${prefix}_${randomBytes(32).toString('base64url')}`;
}

async function checkRoleTenant(tx: StoreTx, role: Role, tenant: string | undefined | null, host: string | undefined | null): Promise<{ tenant: string | null; host: string | null }> {
  if (role === 'tenant') {
    if (!tenant) throw invalid('tenant', 'role tenant needs --tenant NAME');
    return { tenant: (await tenantRef(tx, tenant)).name, host: null };
  }
  if (tenant) throw invalid('tenant', `only role tenant has a tenant (role is ${role})`);
  if (role === 'agent') {
    if (!host) throw invalid('host', 'role agent needs --host NAME');
    return { tenant: null, host: validateName(host, 'host') };
  }
  if (host) throw invalid('host', `only role agent has a host (role is ${role})`);
  return { tenant: null, host: null };
}

export interface TokenInput {
  name: string;
  role: string;
  tenant?: string | null;
  host?: string | null;
  expires?: string;
}

/** Creates a token; the secret is in the result and nowhere else. */
export async function createToken(store: Store, input: TokenInput, actor: string): Promise<{ token: string; record: TokenView }> {
  const name = validateName(input.name, 'name');
  const role = oneOf<Role>(input.role, ROLES, 'role');
  const expiresAt = parseExpiry(input.expires);
  return store.transaction(async (tx) => {
    if (await tx.getDoc(DOC_TOKEN, name)) throw new IpvisorError('ALREADY_EXISTS', `name: a token named '${name}' already exists`, { field: 'name' });
    const { tenant, host } = await checkRoleTenant(tx, role, input.tenant, input.host);
    const secret = newSecret('ipvt');
    const rec: TokenRecord = { uuid: newUuid(), name, role, tenant, host, hash: sha256(secret), createdAt: now(), expiresAt, revokedAt: null, lastUsedAt: null };
    await tx.putDoc(DOC_TOKEN, name, rec);
    await tx.putDoc(DOC_TOKEN_HASH, rec.hash, { name });
    await audit(tx, { actor, action: 'create', kind: 'token', uuid: rec.uuid, name, after: tokenView(rec) });
    return { token: secret, record: tokenView(rec) };
  }, { write: true });
}

export async function listTokens(tx: StoreTx): Promise<TokenView[]> {
  return (await tx.listDocs<TokenRecord>(DOC_TOKEN)).map((d) => tokenView(d.value));
}

async function tokenRef(tx: StoreTx, name: string): Promise<TokenRecord> {
  const d = await tx.getDoc<TokenRecord>(DOC_TOKEN, name);
  if (!d) throw notFound('token', name, 'name');
  return d.value;
}

export async function showToken(tx: StoreTx, name: string): Promise<TokenView> {
  return tokenView(await tokenRef(tx, name));
}

export async function revokeToken(store: Store, name: string, actor: string): Promise<TokenView> {
  return store.transaction(async (tx) => {
    const before = await tokenRef(tx, name);
    if (before.revokedAt) return tokenView(before);
    const after: TokenRecord = { ...before, revokedAt: now() };
    await tx.putDoc(DOC_TOKEN, name, after);
    await tx.deleteDoc(DOC_TOKEN_HASH, before.hash);
    await audit(tx, { actor, action: 'revoke', kind: 'token', uuid: after.uuid, name, before: tokenView(before), after: tokenView(after) });
    return tokenView(after);
  }, { write: true });
}

/** A new secret for the same name, role, tenant and expiry; the old secret stops working. */
export async function rotateToken(store: Store, name: string, actor: string): Promise<{ token: string; record: TokenView }> {
  return store.transaction(async (tx) => {
    const before = await tokenRef(tx, name);
    const secret = newSecret('ipvt');
    const after: TokenRecord = { ...before, hash: sha256(secret), revokedAt: null, lastUsedAt: null };
    await tx.deleteDoc(DOC_TOKEN_HASH, before.hash);
    await tx.putDoc(DOC_TOKEN, name, after);
    await tx.putDoc(DOC_TOKEN_HASH, after.hash, { name });
    await audit(tx, { actor, action: 'rotate', kind: 'token', uuid: after.uuid, name, before: tokenView(before), after: tokenView(after) });
    return { token: secret, record: tokenView(after) };
  }, { write: true });
}

/** Last use is written at most once a minute per token: a busy client costs no write per request. */
const LAST_USE_GRANULARITY_MS = 60_000;

export async function authenticateToken(store: Store, secret: string): Promise<Principal | undefined> {
  const hash = sha256(secret);
  const idx = await store.getDoc<{ name: string }>(DOC_TOKEN_HASH, hash);
  if (!idx) return undefined;
  const rec = (await store.getDoc<TokenRecord>(DOC_TOKEN, idx.value.name))?.value;
  if (!rec || rec.revokedAt || !timingSafeEqual(Buffer.from(rec.hash), Buffer.from(hash))) return undefined;
  const t = Date.now();
  if (rec.expiresAt && Date.parse(rec.expiresAt) <= t) return undefined;
  if (!rec.lastUsedAt || t - Date.parse(rec.lastUsedAt) > LAST_USE_GRANULARITY_MS) {
    await store.transaction(async (tx) => {
      const cur = (await tx.getDoc<TokenRecord>(DOC_TOKEN, rec.name))?.value;
      if (cur && cur.hash === hash) await tx.putDoc(DOC_TOKEN, rec.name, { ...cur, lastUsedAt: new Date(t).toISOString() });
    }, { write: true }).catch(() => undefined);
  }
  return { kind: 'token', name: rec.name, role: rec.role, tenant: rec.tenant, host: rec.host };
}

// ---- users and sessions -------------------------------------------------------------------------

const SCRYPT = { N: 16384, r: 8, p: 1, maxmem: 64 * 1024 * 1024 };

export async function hashPassword(password: string): Promise<string> {
  const salt = randomBytes(16);
  const key = await scrypt(password, salt, 32, SCRYPT);
  return `scrypt$${SCRYPT.N}$${SCRYPT.r}$${SCRYPT.p}$${salt.toString('base64url')}$${key.toString('base64url')}`;
}

export async function verifyPassword(password: string, stored: string): Promise<boolean> {
  const [algo, n, r, p, salt, key] = stored.split('$');
  if (algo !== 'scrypt' || !key) return false;
  const want = Buffer.from(key, 'base64url');
  const got = await scrypt(password, Buffer.from(salt, 'base64url'), want.length, { N: Number(n), r: Number(r), p: Number(p), maxmem: SCRYPT.maxmem });
  return timingSafeEqual(want, got);
}

export interface UserInput {
  name: string;
  role: string;
  tenant?: string | null;
  password: string;
}

export async function createUser(store: Store, input: UserInput, actor: string): Promise<UserView> {
  const name = validateName(input.name, 'name');
  const role = oneOf<Role>(input.role, ROLES, 'role');
  if (role === 'agent') throw invalid('role', 'agents authenticate with tokens, not passwords');
  if (input.password.length < 8) throw invalid('password', 'must be at least 8 characters');
  if (input.password.length > 1024) throw invalid('password', 'must be at most 1024 characters');
  const passwordHash = await hashPassword(input.password);
  return store.transaction(async (tx) => {
    if (await tx.getDoc(DOC_USER, name)) throw new IpvisorError('ALREADY_EXISTS', `name: a user named '${name}' already exists`, { field: 'name' });
    const { tenant } = await checkRoleTenant(tx, role, input.tenant, null);
    const t = now();
    const rec: UserRecord = { uuid: newUuid(), name, role, tenant, passwordHash, createdAt: t, updatedAt: t };
    await tx.putDoc(DOC_USER, name, rec);
    const { passwordHash: _h, ...view } = rec;
    await audit(tx, { actor, action: 'create', kind: 'user', uuid: rec.uuid, name, after: view });
    return view;
  }, { write: true });
}

export async function listUsers(tx: StoreTx): Promise<UserView[]> {
  return (await tx.listDocs<UserRecord>(DOC_USER)).map((d) => { const { passwordHash: _h, ...v } = d.value; return v; });
}

export async function deleteUser(store: Store, name: string, actor: string): Promise<UserView> {
  return store.transaction(async (tx) => {
    const d = await tx.getDoc<UserRecord>(DOC_USER, name);
    if (!d) throw notFound('user', name, 'name');
    await tx.deleteDoc(DOC_USER, name);
    for (const s of await tx.listDocs<SessionRecord>(DOC_SESSION)) if (s.value.user === name) await tx.deleteDoc(DOC_SESSION, s.key);
    const { passwordHash: _h, ...view } = d.value;
    await audit(tx, { actor, action: 'delete', kind: 'user', uuid: view.uuid, name, before: view });
    return view;
  }, { write: true });
}

export const SESSION_TTL_MS = 12 * 3600 * 1000;

/** Checks a password and opens a session; undefined when the name or password is wrong. */
export async function login(store: Store, name: string, password: string): Promise<{ sessionId: string; csrf: string; expiresAt: string; principal: Principal } | undefined> {
  const d = await store.getDoc<UserRecord>(DOC_USER, name);
  // Same work whether or not the user exists: the answer time does not tell which names exist.
  const ok = await verifyPassword(password, d?.value.passwordHash ?? DUMMY_HASH);
  if (!d || !ok) return undefined;
  const sessionId = randomBytes(32).toString('base64url');
  const csrf = randomBytes(24).toString('base64url');
  const expiresAt = new Date(Date.now() + SESSION_TTL_MS).toISOString();
  await store.transaction(async (tx) => {
    await tx.putDoc<SessionRecord>(DOC_SESSION, sha256(sessionId), { user: name, csrf, createdAt: now(), expiresAt });
    await audit(tx, { actor: `user:${name}`, action: 'login', kind: 'session', uuid: null, name, after: { expiresAt } });
  }, { write: true });
  return { sessionId, csrf, expiresAt, principal: { kind: 'user', name, role: d.value.role, tenant: d.value.tenant, host: null } };
}

const DUMMY_HASH = 'scrypt$16384$8$1$AAAAAAAAAAAAAAAAAAAAAA$AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA';

/** The session's principal and CSRF token; undefined when unknown or expired. */
export async function sessionPrincipal(store: Store, sessionId: string): Promise<{ principal: Principal; csrf: string } | undefined> {
  const s = await store.getDoc<SessionRecord>(DOC_SESSION, sha256(sessionId));
  if (!s || Date.parse(s.value.expiresAt) <= Date.now()) return undefined;
  const u = await store.getDoc<UserRecord>(DOC_USER, s.value.user);
  if (!u) return undefined;
  return { principal: { kind: 'user', name: u.value.name, role: u.value.role, tenant: u.value.tenant, host: null }, csrf: s.value.csrf };
}

export async function logout(store: Store, sessionId: string): Promise<void> {
  await store.transaction(async (tx) => {
    const key = sha256(sessionId);
    const s = await tx.getDoc<SessionRecord>(DOC_SESSION, key);
    if (!s) return;
    await tx.deleteDoc(DOC_SESSION, key);
    await audit(tx, { actor: `user:${s.value.user}`, action: 'logout', kind: 'session', uuid: null, name: s.value.user });
  }, { write: true });
}

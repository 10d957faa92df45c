// XAPI connections (one per pool) live in the store's document table, kind 'xapi-connection'.
// The password itself is never stored: only the path of a file that holds it, which must not be
// readable by group or others.
import { readFileSync } from 'node:fs';
import { isIP } from 'node:net';
import { IpvisorError, invalid, notFound } from '../../core/model/errors.js';
import { validateName } from '../../core/model/validate.js';
import type { Store, StoreTx } from '../../core/store/store.js';
import { audit } from '../../core/service/context.js';
import { XapiClient } from './client.js';
import { registerSecret } from '../../core/log.js';
import { readSecretFile, readSecretLine } from '../../core/model/secret-file.js';

export const CONNECTION_KIND = 'xapi-connection';

export interface XapiConnection {
  name: string;
  url: string;
  user: string;
  passwordFile: string;
  /** Path of a PEM CA file, or null. */
  ca: string | null;
  insecure: boolean;
  /** The user allowed plain http:// (the password crosses the network in clear). */
  insecureHttp?: boolean;
  /** ipvisor owns VIF locking on this pool: foreign changes are corrected, not only reported. */
  owner: boolean;
  /** Other pool members to try when the master is unreachable (HA failover). */
  members?: string[];
}

export interface ConnectionInput {
  name: string;
  url: string;
  user: string;
  passwordFile: string;
  ca?: string;
  insecure?: boolean;
  /** Accept an http:// URL (the password would cross the network in clear). */
  insecureHttp?: boolean;
  owner?: boolean;
  members?: string[];
}

export function validateUrl(text: string, opts: { insecureHttp?: boolean } = {}): string {
  let u: URL;
  try {
    u = new URL(text);
  } catch {
    throw invalid('url', `'${text}' is not a URL (https://MASTER[:PORT])`);
  }
  if (u.protocol !== 'https:' && u.protocol !== 'http:') throw invalid('url', `'${text}' must use https://`);
  if (u.protocol === 'http:' && !opts.insecureHttp) throw invalid('url', `'${text}' is plain http: the password would cross the network in clear; use https:// (or --insecure-http)`);
  if (u.username || u.password) throw invalid('url', 'must not contain credentials; use --user and --password-file');
  if (u.pathname !== '/' && u.pathname !== '') throw invalid('url', `'${text}' must not have a path (ipvisor adds /jsonrpc)`);
  return `${u.protocol}//${u.host}`;
}

export function checkConnectionInput(input: ConnectionInput): XapiConnection {
  const name = validateName(input.name, 'name');
  const url = validateUrl(input.url, { insecureHttp: input.insecureHttp });
  if (!input.user) throw invalid('user', 'is required');
  if (!input.passwordFile) throw invalid('password-file', 'is required');
  readSecretFile(input.passwordFile, 'password-file');
  if (input.ca && input.insecure) throw invalid('insecure', 'cannot be combined with --ca');
  if ((input.ca || input.insecure) && url.startsWith('http:')) throw invalid(input.ca ? 'ca' : 'insecure', 'only applies to https:// URLs');
  if (input.ca) {
    try {
      readFileSync(input.ca, 'utf8');
    } catch (err) {
      throw invalid('ca', `cannot read ${input.ca}: ${(err as NodeJS.ErrnoException).code ?? (err as Error).message}`);
    }
  }
  const members = (input.members ?? []).map((m, i) => {
    const host = m.replace(/^\[|\]$/g, '');
    if (isIP(host) === 0 && !/^[A-Za-z0-9.-]{1,253}$/.test(host)) throw invalid('member', `'${m}' is not an address or host name`);
    void i;
    return host;
  });
  const out: XapiConnection = { name, url, user: input.user, passwordFile: input.passwordFile, ca: input.ca ?? null, insecure: !!input.insecure, owner: !!input.owner };
  if (url.startsWith('http:')) out.insecureHttp = true;
  if (members.length) out.members = members;
  return out;
}

export async function addConnection(store: Store, input: ConnectionInput, actor: string): Promise<XapiConnection> {
  const conn = checkConnectionInput(input);
  return store.transaction(async (tx) => {
    if (await tx.getDoc(CONNECTION_KIND, conn.name)) throw new IpvisorError('ALREADY_EXISTS', `name: an XAPI connection named '${conn.name}' already exists`, { field: 'name' });
    await tx.putDoc(CONNECTION_KIND, conn.name, conn);
    await audit(tx, { actor, action: 'create', kind: 'xapi-connection', uuid: null, name: conn.name, after: conn });
    return conn;
  }, { write: true });
}

export async function listConnections(store: Store | StoreTx): Promise<XapiConnection[]> {
  return (await store.listDocs<XapiConnection>(CONNECTION_KIND)).map((d) => d.value).sort((a, b) => a.name.localeCompare(b.name));
}

export async function getConnection(store: Store | StoreTx, name: string): Promise<XapiConnection> {
  const d = await store.getDoc<XapiConnection>(CONNECTION_KIND, name);
  if (!d) throw notFound('XAPI connection', name, 'name');
  return d.value;
}

export async function removeConnection(store: Store, name: string, actor: string): Promise<XapiConnection> {
  return store.transaction(async (tx) => {
    const conn = await getConnection(tx, name);
    await tx.deleteDoc(CONNECTION_KIND, name);
    await audit(tx, { actor, action: 'delete', kind: 'xapi-connection', uuid: null, name, before: conn });
    return conn;
  }, { write: true });
}

/** A client for the connection; the password file is re-checked and read now, never kept elsewhere. */
export function connectionClient(conn: XapiConnection, originator = 'ipvisor'): XapiClient {
  const password = readSecretLine(conn.passwordFile, 'password-file');
  registerSecret(password);
  const ca = conn.ca ? readFileSync(conn.ca, 'utf8') : undefined;
  return new XapiClient({ url: conn.url, user: conn.user, password, ca, insecure: conn.insecure, originator, members: conn.members });
}

export async function setConnection(store: Store, name: string, ch: { owner?: boolean; passwordFile?: string }, actor: string): Promise<XapiConnection> {
  if (ch.passwordFile !== undefined) readSecretFile(ch.passwordFile, 'password-file');
  return store.transaction(async (tx) => {
    const before = await getConnection(tx, name);
    const after: XapiConnection = { ...before, owner: ch.owner ?? before.owner, passwordFile: ch.passwordFile ?? before.passwordFile };
    await tx.putDoc(CONNECTION_KIND, name, after);
    await audit(tx, { actor, action: 'set', kind: 'xapi-connection', uuid: null, name, before, after });
    return after;
  }, { write: true });
}

// The agent's link to `ipvisor server` over real TLS with certificates this test makes: a CA file, a
// pinned certificate (SHA-256 fingerprint), a wrong pin (refused before anything, the token above
// all, is sent), no trust at all, and plain HTTP to another machine without --insecure-http.
import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { existsSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { HttpControlPlane, checkServerUrls, parseCertificatePin } from '../../src/agent/http-control-plane.js';
import { IpvisorError } from '../../src/core/model/errors.js';
import { openStore } from '../../src/core/store/open.js';
import type { Store } from '../../src/core/store/store.js';
import { agentRoutes } from '../../src/server/agent-http.js';
import { StoreControlPlane } from '../../src/server/control-plane.js';
import { addHost } from '../../src/server/hosts.js';
import { startHttpServer } from '../../src/server/http.js';
import { skipUnless } from '../support/skip.js';

const skip = skipUnless(!existsSync('/usr/bin/openssl') && 'openssl is not installed');
const dir = mkdtempSync(join(tmpdir(), 'ipv-agent-tls-'));
let store: Store;
let server: Awaited<ReturnType<typeof startHttpServer>> | undefined;
let controlPlane: StoreControlPlane;
let tokenFile = '';
const seen: string[] = [];
const paths = { caKey: join(dir, 'ca.key'), ca: join(dir, 'ca.pem'), key: join(dir, 'srv.key'), csr: join(dir, 'srv.csr'), cert: join(dir, 'srv.pem'), ext: join(dir, 'ext.cnf'), otherKey: join(dir, 'other.key'), other: join(dir, 'other.pem') };

function openssl(...args: string[]): string {
  return execFileSync('openssl', args, { encoding: 'utf8', stdio: ['ignore', 'pipe', 'ignore'] });
}

function fingerprint(cert: string): string {
  return openssl('x509', '-noout', '-fingerprint', '-sha256', '-in', cert).trim().replace(/^.*=/, '');
}

before(async () => {
  if (skip) return;
  // a CA, a server certificate it signs (for 127.0.0.1), and an unrelated self-signed certificate
  openssl('req', '-x509', '-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:prime256v1', '-nodes', '-days', '1', '-subj', '/CN=ipvisor test CA', '-keyout', paths.caKey, '-out', paths.ca);
  openssl('req', '-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:prime256v1', '-nodes', '-subj', '/CN=127.0.0.1', '-keyout', paths.key, '-out', paths.csr);
  writeFileSync(paths.ext, 'subjectAltName=IP:127.0.0.1\n');
  openssl('x509', '-req', '-in', paths.csr, '-CA', paths.ca, '-CAkey', paths.caKey, '-CAcreateserial', '-days', '1', '-extfile', paths.ext, '-out', paths.cert);
  openssl('req', '-x509', '-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:prime256v1', '-nodes', '-days', '1', '-subj', '/CN=127.0.0.1', '-addext', 'subjectAltName=IP:127.0.0.1', '-keyout', paths.otherKey, '-out', paths.other);
  store = await openStore(join(dir, 'store.db'), { create: true });
  const { token } = await addHost(store, 'hv1', 'test');
  tokenFile = join(dir, 'hv1.token');
  writeFileSync(tokenFile, token + '\n', { mode: 0o600 });
  controlPlane = new StoreControlPlane(store, { requireRegistration: true });
  server = await startHttpServer({ store, listen: '127.0.0.1:0', tlsCert: paths.cert, tlsKey: paths.key, enforcers: [], plugins: [{ plugin: agentRoutes as never, options: { controlPlane, version: 'test' } }] });
  // every request that reaches the server, counted on the Node server itself
  (server.app as unknown as { server: import('node:https').Server }).server.on('request', (req) => seen.push(req.url ?? ''));
});

after(async () => {
  controlPlane?.close();
  await server?.close();
  await store?.close();
  rmSync(dir, { recursive: true, force: true });
});

const plane = (o: { caFile?: string; pin?: string }) => new HttpControlPlane({ servers: [server!.url], tokenFile, timeoutMs: 5000, ...o });

test('with the CA file the agent reads its desired state over TLS', { skip }, async () => {
  const cp = plane({ caFile: paths.ca });
  try {
    const a = await cp.desiredState('hv1');
    assert.equal(a.kind, 'snapshot');
  } finally {
    cp.close();
  }
});

test('a pinned certificate is trusted without a CA; the pin in any usual spelling', { skip }, async () => {
  const fp = fingerprint(paths.cert);
  for (const pin of [`sha256:${fp}`, fp.replace(/:/g, '').toLowerCase(), `sha256//${fp.replace(/:/g, '')}`]) {
    const cp = plane({ pin });
    try {
      assert.equal((await cp.desiredState('hv1')).kind, 'snapshot', pin);
    } finally {
      cp.close();
    }
  }
});

test('a wrong pin is refused before the request (and the token) is sent', { skip }, async () => {
  const before = seen.length;
  const cp = plane({ pin: fingerprint(paths.other) });
  try {
    await assert.rejects(cp.desiredState('hv1'), (e: unknown) => e instanceof IpvisorError && e.code === 'TLS_PIN_MISMATCH' && /not the pinned one/.test(e.message));
  } finally {
    cp.close();
  }
  assert.equal(seen.length, before, 'the server saw no request');
});

test('no CA and no pin: a certificate the system does not trust is refused', { skip }, async () => {
  const cp = plane({});
  try {
    await assert.rejects(cp.desiredState('hv1'), /no ipvisor server answered.*(self[- ]signed|unable to verify|certificate)/i);
  } finally {
    cp.close();
  }
});

test('bad pins and plain HTTP to another machine are refused with the field named', () => {
  assert.throws(() => parseCertificatePin('sha256:abc'), /pin: 'sha256:abc' is not a SHA-256 certificate fingerprint/);
  assert.throws(() => checkServerUrls(['http://192.0.2.1:8443'], false), /server: .*plain HTTP to another machine/);
  assert.equal(checkServerUrls(['http://192.0.2.1:8443'], true).length, 1);
  assert.equal(checkServerUrls(['http://127.0.0.1:8443'], false).length, 1);
});

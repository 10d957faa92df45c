// HTTPS pool masters: a self-signed certificate is refused unless its CA is given (--ca) or the
// user explicitly accepts any certificate (--insecure).
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { XapiClient, XapiTransportError } from '../../src/server/xapi/client.js';
import { startXapiSim, type XapiSim } from '../support/xapi-sim/sim.js';
import { cli } from '../support/cli.js';
import { skipUnless } from '../support/skip.js';

let openssl = true;
try {
  execFileSync('openssl', ['version'], { stdio: 'ignore' });
} catch {
  openssl = false;
}
const skip = skipUnless(openssl ? false : 'openssl not installed (needed to make a test certificate)');
const dir = mkdtempSync(join(tmpdir(), 'ipvx-tls-'));
let sim: XapiSim;
let cert: string;

before(async () => {
  if (skip) return;
  execFileSync('openssl', ['req', '-x509', '-newkey', 'rsa:2048', '-nodes', '-days', '1', '-subj', '/CN=xcp-test', '-addext', 'subjectAltName=IP:127.0.0.1', '-keyout', join(dir, 'key.pem'), '-out', join(dir, 'cert.pem')], { stdio: 'ignore' });
  cert = readFileSync(join(dir, 'cert.pem'), 'utf8');
  sim = await startXapiSim({ tls: { key: readFileSync(join(dir, 'key.pem'), 'utf8'), cert } });
});
after(async () => {
  await sim?.close();
  rmSync(dir, { recursive: true, force: true });
});

test('self-signed master: refused by default, accepted with its CA or --insecure', { skip }, async () => {
  assert.match(sim.url, /^https:/);
  const plain = new XapiClient({ url: sim.url, user: 'root', password: 'secret' });
  await assert.rejects(plain.call('pool.get_all'), (e: unknown) => e instanceof XapiTransportError && /self[- ]signed/i.test(e.message));
  await plain.logout();
  const withCa = new XapiClient({ url: sim.url, user: 'root', password: 'secret', ca: cert });
  assert.equal((await withCa.call<string[]>('pool.get_all')).length, 1);
  await withCa.logout();
  const insecure = new XapiClient({ url: sim.url, user: 'root', password: 'secret', insecure: true });
  assert.equal((await insecure.call<string[]>('host.get_all')).length, 1);
  await insecure.logout();
});

test('xapi connect --ca / --insecure', { skip }, async () => {
  const db = join(dir, 'ipvisor.db');
  const pw = join(dir, 'pw');
  writeFileSync(pw, 'secret', { mode: 0o600 });
  let r = await cli(db, 'xapi', 'connect', 'a', '--url', sim.url, '--user', 'root', '--password-file', pw);
  assert.equal(r.code, 1);
  assert.match(r.stderr, /self[- ]signed/i);
  r = await cli(db, 'xapi', 'connect', 'a', '--url', sim.url, '--user', 'root', '--password-file', pw, '--ca', join(dir, 'cert.pem'), '--json');
  assert.equal(r.code, 0, r.stderr);
  assert.equal(r.json.ca, join(dir, 'cert.pem'));
  r = await cli(db, 'xapi', 'connect', 'b', '--url', sim.url, '--user', 'root', '--password-file', pw, '--insecure');
  assert.equal(r.code, 0, r.stderr);
  r = await cli(db, 'xapi', 'connect', 'c', '--url', sim.url, '--user', 'root', '--password-file', pw, '--insecure', '--ca', join(dir, 'cert.pem'));
  assert.equal(r.code, 2);
  r = await cli(db, 'xapi', 'sync', 'a');
  assert.equal(r.code, 0, r.stderr + r.stdout);
});

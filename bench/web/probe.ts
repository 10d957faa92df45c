// Times each API request a page makes, as the admin and a tenant (finding why a page is slow).
// Run: BENCH_WEB_DB=PATH node --import tsx bench/web/probe.ts   (a store bench/web/run.ts kept)
import { openStore } from '../../src/core/store/open.js';
import { buildHttpServer, listenHttp } from '../../src/server/http.js';

const store = await openStore(process.env.BENCH_WEB_DB!, {});
const app = await buildHttpServer({ store, enforcers: [] });
const url = await listenHttp(app, '127.0.0.1:0', { tls: false });
async function as(name: string): Promise<string> {
  const r = await fetch(url + '/api/v1/session', { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify({ name, password: 'bench-pass-31337' }) });
  return r.headers.get('set-cookie')!.split(';')[0];
}
const cookies = { admin: await as('admin'), tenant: await as('tenant') };
const paths: Array<[keyof typeof cookies, string]> = [
  ['tenant', '/me'], ['tenant', '/vms?limit=1000'], ['tenant', '/vifs?limit=1000'], ['tenant', '/pools?limit=1000'], ['tenant', '/pools/lan16/free?limit=20'],
  ['admin', '/me'], ['admin', '/networks?limit=1000'], ['admin', '/pools?limit=1000'], ['admin', '/vms?limit=1000'], ['admin', '/vifs?limit=1000'], ['admin', '/hosts?limit=1000'],
  ['admin', '/events?limit=200'], ['admin', '/pools/lan16/map'], ['admin', '/pools/lan16/map?block=10.40.3.0%2F24'],
];
for (const [who, p] of paths) {
  const s = performance.now();
  const r = await fetch(url + '/api/v1' + p, { headers: { cookie: cookies[who] } });
  const body = await r.arrayBuffer();
  console.log(`${who} GET ${p}: ${r.status} ${(performance.now() - s).toFixed(0)} ms ${(body.byteLength / 1024).toFixed(0)} KB`);
}
await app.close();
await store.close();

// Times each API request a page makes, as the admin and a tenant (finding why a page is slow), then
// each store query the pages use next to the full listing it replaced, on the same store.
// Run: BENCH_WEB_DB=PATH node --import tsx bench/web/probe.ts   (a store bench/web/run.ts kept)
import { openStore } from '../../src/core/store/open.js';
import { buildHttpServer, listenHttp } from '../../src/server/http.js';
import { relatedTo } from '../../src/core/service/views.js';

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

// ---- the store's usage queries next to the listings they replaced (median of 5) ----
async function median(f: () => Promise<unknown>, n = 5): Promise<number> {
  const times: number[] = [];
  for (let i = 0; i < n; i++) {
    const s = performance.now();
    await f();
    times.push(performance.now() - s);
  }
  return times.sort((a, b) => a - b)[Math.floor(n / 2)];
}
const pool = (await store.findPoolByName('lan16'))!;
const block = 0x0a280300n; // 10.40.3.0/24
const vm3 = (await store.findVmByName('vm0003'))!;
const tenantVifs = async () => {
  const vms = new Set((await store.listVms()).filter((v) => v.owner === 't0').map((v) => v.uuid));
  return (await store.listVifs()).filter((v) => vms.has(v.vmUuid)).map((v) => v.uuid);
};
const rows: Array<[string, () => Promise<unknown>, string, () => Promise<unknown>]> = [
  ['countUsage (every pool, by kind)', () => store.countUsage(), 'listAssignments of the pool', () => store.listAssignments({ poolUuid: pool.uuid })],
  ["countOwnerUsage (tenant t0's quota use)", () => store.countOwnerUsage('t0'), "listAssignments of t0's VIFs", async () => store.listAssignments({ vifUuids: await tenantVifs() })],
  ['listAssignmentsInRange (one /24)', () => store.listAssignmentsInRange(pool.uuid, block, block + 255n), 'listAssignments of the pool', () => store.listAssignments({ poolUuid: pool.uuid })],
  ['listAssignmentSpans (the /16 map marks)', () => store.listAssignmentSpans(pool.uuid), 'listAssignments of the pool', () => store.listAssignments({ poolUuid: pool.uuid })],
  ['listVifAddresses (every VIF, the VMs page)', () => store.listVifAddresses(), 'listAssignments of every VIF', async () => store.listAssignments({ vifUuids: (await store.listVifs()).map((v) => v.uuid) })],
  ["listEvents of VM vm0003 with its VIFs' and addresses' (related, in SQL), newest 200", () => store.listEvents({ object: 'vm0003', related: { kind: 'vm', uuid: vm3.uuid }, order: 'desc', limit: 200 }), 'listEvents (all), relatedTo, keep 200', async () => relatedTo(await store.listEvents(), { kind: 'vm', uuid: vm3.uuid, name: 'vm0003' }).slice(-200)],
  ['listEvents newest 200 (ORDER BY id DESC LIMIT)', () => store.listEvents({ order: 'desc', limit: 200 }), 'listEvents (all), keep 200', async () => (await store.listEvents()).slice(-200)],
];
console.log('');
console.log(`| store query (${store.kind}) | time (median of 5) | the listing it replaced | time |`);
console.log('|---|---:|---|---:|');
for (const [name, f, alt, g] of rows) console.log(`| ${name} | ${(await median(f)).toFixed(1)} ms | ${alt} | ${(await median(g)).toFixed(0)} ms |`);
await app.close();
await store.close();

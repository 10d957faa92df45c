// API benchmark: requests per second and p99 latency on one server for GET /api/v1/vms (1,000 VMs,
// pages of 100) and for allocate+release, with 8 and 64 concurrent connections, on SQLite and (when
// PostgreSQL is installed and we are root) on PostgreSQL; side by side with the CLI's
// one-process-per-call path. Loopback only; every run is bounded in time.
//   node --import tsx bench/api/run.ts [--seconds 3]
import { execFileSync, spawn, type ChildProcess } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Agent, request as httpRequest } from 'node:http';
import { openStore } from '../../src/core/store/open.js';
import { createNetwork } from '../../src/core/service/networks.js';
import { createPool } from '../../src/core/service/pools.js';
import { addVif, createVm } from '../../src/core/service/vms.js';
import { createToken } from '../../src/core/service/auth.js';

const seconds = Number(process.argv[process.argv.indexOf('--seconds') + 1] || 3) || 3;
const ROOT = new URL('../..', import.meta.url).pathname;
const VMS = 1000;

async function seed(url: string): Promise<string> {
  const s = await openStore(url, { create: true });
  await createNetwork(s, { name: 'lan', subnets: ['10.0.0.0/16'] }, 'bench');
  await createPool(s, { name: 'lan4', network: 'lan', cidrs: ['10.0.0.0/16'] }, 'bench');
  for (let i = 0; i < VMS; i++) {
    await createVm(s, { name: `vm${String(i).padStart(4, '0')}`, host: 'hv1' }, 'bench');
    await addVif(s, { vm: `vm${String(i).padStart(4, '0')}`, network: 'lan', mac: `52:54:00:00:${(i >> 8).toString(16).padStart(2, '0')}:${(i & 255).toString(16).padStart(2, '0')}` }, 'bench');
  }
  const t = await createToken(s, { name: 'bench', role: 'admin' }, 'bench');
  await s.close();
  return t.token;
}

function startServer(store: string): Promise<{ url: string; child: ChildProcess }> {
  const child = spawn(process.execPath, ['--import', 'tsx', join(ROOT, 'bench/api/server.ts'), store], { stdio: ['ignore', 'pipe', 'inherit'] });
  return new Promise((resolve, reject) => {
    child.stdout!.once('data', (d) => resolve({ url: String(d).trim(), child }));
    child.once('exit', (c) => reject(new Error(`server exited ${c}`)));
  });
}

/** One request on a keep-alive agent: status and parsed body. */
function request(url: string, opts: { dispatcher: Agent; method?: string; headers: Record<string, string>; body?: string }): Promise<{ statusCode: number; json: any }> {
  return new Promise((resolve, reject) => {
    const req = httpRequest(url, { agent: opts.dispatcher, method: opts.method ?? 'GET', headers: opts.headers }, (res) => {
      const chunks: Buffer[] = [];
      res.on('data', (c) => chunks.push(c));
      res.on('end', () => {
        const text = Buffer.concat(chunks).toString('utf8');
        resolve({ statusCode: res.statusCode!, json: text ? JSON.parse(text) : null });
      });
    });
    req.on('error', reject);
    req.end(opts.body);
  });
}

function pct(sorted: number[], p: number): number {
  return sorted[Math.min(sorted.length - 1, Math.floor((sorted.length * p) / 100))];
}

interface Figures { ops: number; rps: number; p50: number; p99: number; errors: number }

/** `conns` workers, each on its own keep-alive connection, repeat `op` for the time given. */
async function load(url: string, conns: number, op: (d: Agent, worker: number) => Promise<number>): Promise<Figures> {
  const agent = new Agent({ keepAlive: true, maxSockets: conns });
  const lat: number[] = [];
  let errors = 0;
  const end = Date.now() + seconds * 1000;
  const t0 = performance.now();
  await Promise.all(Array.from({ length: conns }, async (_, w) => {
    while (Date.now() < end) {
      const t = performance.now();
      const status = await op(agent, w);
      lat.push(performance.now() - t);
      if (status >= 400) errors++;
    }
  }));
  const elapsed = (performance.now() - t0) / 1000;
  agent.destroy();
  lat.sort((a, b) => a - b);
  return { ops: lat.length, rps: lat.length / elapsed, p50: pct(lat, 50), p99: pct(lat, 99), errors };
}

async function api(store: string, token: string, label: string): Promise<string[]> {
  const { url, child } = await startServer(store);
  const rows: string[] = [];
  const auth = { authorization: `Bearer ${token}`, 'content-type': 'application/json' };
  try {
    for (const conns of [8, 64]) {
      // GET /api/v1/vms: pages of 100 over 1,000 VMs, each worker walks the pages in turn
      const pageCursor: (string | null)[] = Array(conns).fill(null);
      const list = await load(url, conns, async (d, w) => {
        const r = await request(`${url}/api/v1/vms?limit=100${pageCursor[w] ? `&cursor=${pageCursor[w]}` : ''}`, { dispatcher: d, headers: auth });
        const body = r.json as { nextCursor: string | null };
        pageCursor[w] = body.nextCursor;
        return r.statusCode;
      });
      rows.push(`| ${label} | GET /api/v1/vms?limit=100 | ${conns} | ${list.rps.toFixed(0)} | ${list.p50.toFixed(1)} | ${list.p99.toFixed(1)} | ${list.errors} |`);
      // allocate + release: each worker on its own VIF, one pair = one operation
      const pair = await load(url, conns, async (d, w) => {
        const vif = `vm${String(w).padStart(4, '0')}:0`;
        const a = await request(`${url}/api/v1/addresses`, { dispatcher: d, method: 'POST', headers: auth, body: JSON.stringify({ vif, pool: 'lan4' }) });
        const got = a.json as { address?: string };
        if (a.statusCode >= 400 || !got.address) {
          if (process.env.BENCH_DEBUG) console.error(a.statusCode, JSON.stringify(a.json));
          return a.statusCode;
        }
        const r = await request(`${url}/api/v1/addresses/${got.address}`, { dispatcher: d, method: 'DELETE', headers: auth });
        if (r.statusCode >= 400 && process.env.BENCH_DEBUG) console.error(r.statusCode, JSON.stringify(r.json));
        return r.statusCode;
      });
      rows.push(`| ${label} | allocate + release (POST, DELETE /api/v1/addresses) | ${conns} | ${pair.rps.toFixed(0)} pairs | ${pair.p50.toFixed(1)} | ${pair.p99.toFixed(1)} | ${pair.errors} |`);
    }
  } finally {
    child.kill('SIGTERM');
    await new Promise((r) => child.once('exit', r));
  }
  return rows;
}

/** The CLI path: one process per call (the bundled CLI), 20 calls in a row. */
function cli(store: string, label: string): string[] {
  const bin = join(ROOT, 'bin/ipvisor');
  const time = (args: string[][]) => {
    const lat: number[] = [];
    for (const a of args) {
      const t = performance.now();
      execFileSync(process.execPath, [bin, '--db', store, ...a], { stdio: ['ignore', 'pipe', 'pipe'] });
      lat.push(performance.now() - t);
    }
    lat.sort((x, y) => x - y);
    const total = lat.reduce((s, x) => s + x, 0) / 1000;
    return { rps: lat.length / total, p50: pct(lat, 50), p99: pct(lat, 99) };
  };
  const list = time(Array.from({ length: 20 }, () => ['vm', 'list', '--json']));
  const pairs: string[][] = [];
  for (let i = 0; i < 10; i++) pairs.push(['ip', 'allocate', '--vif', 'vm0999:0', '--address', `10.0.255.${100 + i}`], ['ip', 'release', `10.0.255.${100 + i}`]);
  const pair = time(pairs);
  return [
    `| ${label} | CLI \`vm list --json\` (all 1,000), one process per call | 1 | ${list.rps.toFixed(1)} | ${list.p50.toFixed(0)} | ${list.p99.toFixed(0)} | 0 |`,
    `| ${label} | CLI \`ip allocate\` + \`ip release\`, one process each | 1 | ${(pair.rps / 2).toFixed(1)} pairs | ${(pair.p50 * 2).toFixed(0)} | ${(pair.p99 * 2).toFixed(0)} | 0 |`,
  ];
}

const dir = mkdtempSync(join(tmpdir(), 'ipvisor-bench-api-'));
const rows: string[] = [];
try {
  const sqlite = join(dir, 'bench.db');
  const token = await seed(sqlite);
  rows.push(...(await api(sqlite, token, 'SQLite')));
  rows.push(...cli(sqlite, 'SQLite'));
  const { postgresSkip, startPostgres } = await import('../../test/support/postgres.js');
  let skip: string | false;
  try { skip = postgresSkip(); } catch (e) { skip = (e as Error).message; }
  if (!skip) {
    const pgServer = await startPostgres();
    try {
      const url = await pgServer.newDatabase('bench');
      const pgToken = await seed(url);
      rows.push(...(await api(url, pgToken, 'PostgreSQL')));
      rows.push(...cli(url, 'PostgreSQL'));
    } finally {
      await pgServer.stop();
    }
  } else rows.push(`| PostgreSQL | skipped: ${skip} | | | | | |`);
} finally {
  rmSync(dir, { recursive: true, force: true });
}
console.log(`API benchmark, ${seconds} s per figure, loopback, server in its own process (node ${process.version})\n`);
console.log('| store | operation | connections | per second | p50 ms | p99 ms | errors |');
console.log('|---|---|---|---|---|---|---|');
for (const r of rows) console.log(r);

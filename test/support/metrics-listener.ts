// A child process for test/ops/metrics.test.ts: serves the store given on argv[2] at each
// ADDR:PORT given after it (plain HTTP, --insecure-listen), prints one line per URL, and runs until
// SIGTERM. Run inside a test network namespace, so that it can listen on an address made there.
import { openStore } from '../../src/core/store/open.js';
import { startHttpServer } from '../../src/server/http.js';

const [db, ...listens] = process.argv.slice(2);
const store = await openStore(db);
const servers: Array<{ close(): Promise<void> }> = [];
for (const listen of listens) {
  const s = await startHttpServer({ store, listen, insecureListen: true, enforcers: [] });
  servers.push(s);
  process.stdout.write(`${s.url}\n`);
}
process.on('SIGTERM', () => {
  void Promise.all(servers.map((s) => s.close())).then(() => store.close()).then(() => process.exit(0));
});

// The API server of the benchmark, in its own process (the load generator must not share its CPU
// time): opens the given store and serves on a loopback port; prints the URL on stdout.
import { openStore } from '../../src/core/store/open.js';
import { startHttpServer } from '../../src/server/http.js';

const store = await openStore(process.argv[2]);
const srv = await startHttpServer({ store, listen: '127.0.0.1:0', enforcers: [], failedAuthLimit: 1_000_000 });
process.stdout.write(`${srv.url}\n`);
process.on('SIGTERM', () => void srv.close().then(() => store.close()).then(() => process.exit(0)));

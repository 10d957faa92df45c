// Test helper process: pushes a network_data.json and dies (SIGKILL, no cleanup) the moment the
// new configuration is up but not yet confirmed, like a host that crashes mid-push.
// usage: node --import tsx push-then-die.ts SOCKET DOC_JSON GUARD_SECONDS
import { pushNetworkData } from '../../src/agent/guest/push.js';
import { GuestAgent, QgaSocket } from '../../src/agent/guest/qga.js';

const [socket, doc, guard] = process.argv.slice(2) as [string, string, string];
const agent = new GuestAgent(new QgaSocket(socket));
await pushNetworkData(agent, JSON.parse(doc), {
  format: 'eni',
  guardSeconds: Number(guard),
  log: (line) => {
    process.stdout.write(line + '\n');
    if (/new configuration is up/.test(line)) process.kill(process.pid, 'SIGKILL');
  },
});
process.stdout.write('not killed\n');

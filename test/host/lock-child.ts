// Child process for lock.test.ts: appends "start <id>" / "end <id>" inside the host lock.
import { appendFileSync } from 'node:fs';
import { withHostLock } from '../../src/agent/host/lock.js';

const [file, id, rounds] = process.argv.slice(2);
for (let i = 0; i < Number(rounds); i++) {
  await withHostLock(async () => {
    appendFileSync(file, `start ${id}\n`);
    await new Promise((r) => setTimeout(r, 5));
    appendFileSync(file, `end ${id}\n`);
  });
}

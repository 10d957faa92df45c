// Process entry: runs the CLI and exits with its status once output is flushed.
import { processIo, runCli } from './main.js';

runCli(process.argv.slice(2), processIo).then(
  (code) => {
    process.exitCode = code;
  },
  (err) => {
    process.stderr.write(`ipvisor: ${String(err)}\n`);
    process.exitCode = 1;
  },
);

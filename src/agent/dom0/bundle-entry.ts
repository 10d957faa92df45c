// The bundled dist/ipvisor-dom0.cjs starts here.
import { dom0Main } from './main.js';

void dom0Main(process.argv.slice(2)).then((code) => process.exit(code));

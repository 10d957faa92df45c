import { statSync } from 'node:fs';
import { invalid } from '../../core/model/errors.js';

/** Refuses a secret file that group or others can read (or that cannot be read at all). */
export function assertPrivateFile(field: string, path: string): void {
  let mode: number;
  try {
    mode = statSync(path).mode;
  } catch (err) {
    throw invalid(field, `cannot read ${path}: ${(err as NodeJS.ErrnoException).code ?? (err as Error).message}`);
  }
  if ((mode & 0o077) !== 0) throw invalid(field, `${path} is readable by group or others (mode ${(mode & 0o777).toString(8)}); chmod 600 it`);
}

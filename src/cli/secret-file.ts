// Secrets (passwords, tokens) come from files, never from the command line (ps shows argv).
import { readFileSync, statSync } from 'node:fs';
import { invalid } from '../core/model/errors.js';

/** The file's first line, without its line end; an empty or unreadable file names the field.
 * (Helper `validate` adds the project-wide one; this converges with it.) */
export function readSecretFile(path: string, field: string): string {
  let text: string;
  try {
    if (!statSync(path).isFile()) throw new Error('not a regular file');
    text = readFileSync(path, 'utf8');
  } catch (e) {
    throw invalid(field, `cannot read ${path}: ${(e as NodeJS.ErrnoException).code ?? (e as Error).message}`);
  }
  const line = text.split('\n')[0].replace(/\r$/, '');
  if (!line) throw invalid(field, `${path} is empty`);
  return line;
}

import { readSecretFile } from '../../core/model/secret-file.js';

/** Refuses a secret file that is not private (see core/model/secret-file.ts); reads nothing else. */
export function assertPrivateFile(field: string, path: string): void {
  readSecretFile(path, field);
}

// Files that hold secrets (XAPI password files; token files and TLS keys as they come) and files
// that root acts on (the dom0 binder's config and the programs it runs). One place checks them, so
// every entry point refuses the same things with a VALIDATION error naming the field.
import { randomBytes } from 'node:crypto';
import { closeSync, constants, fstatSync, fsyncSync, lstatSync, openSync, readSync, renameSync, rmSync, statSync, writeSync, type Stats } from 'node:fs';
import { basename, dirname, join } from 'node:path';
import { IpvisorError, invalid } from './errors.js';

/** Secrets are small; a larger file is a mistake (or /dev/zero behind a path). */
export const MAX_SECRET_BYTES = 64 * 1024;

function runningUid(): number | undefined {
  return typeof process.getuid === 'function' ? process.getuid() : undefined;
}

function errCode(err: unknown): string {
  return (err as NodeJS.ErrnoException).code ?? (err as Error).message;
}

function describeType(st: Stats): string {
  if (st.isFIFO()) return 'a FIFO';
  if (st.isSocket()) return 'a socket';
  if (st.isCharacterDevice() || st.isBlockDevice()) return 'a device';
  if (st.isDirectory()) return 'a directory';
  if (st.isSymbolicLink()) return 'a symbolic link';
  return 'not a regular file';
}

/** The checks every secret file passes, on the stat of the opened file. */
function checkSecretStats(st: Stats, path: string, field: string): void {
  if (!st.isFile()) throw invalid(field, `${path} is ${describeType(st)}; a secret must be a regular file`);
  const uid = runningUid();
  if (st.uid !== 0 && st.uid !== uid) throw invalid(field, `${path} is owned by uid ${st.uid}; a secret must be owned by root${uid !== undefined && uid !== 0 ? ` or uid ${uid} (the running user)` : ''}`);
  if ((st.mode & 0o077) !== 0) throw invalid(field, `${path} is open to group or others (mode ${(st.mode & 0o777).toString(8)}); chmod 600 it`);
  if (st.size > MAX_SECRET_BYTES) throw invalid(field, `${path} is ${st.size} bytes; a secret file holds at most ${MAX_SECRET_BYTES}`);
}

/**
 * Reads a secret file: a regular file (a FIFO or device is refused without blocking: the open is
 * non-blocking and the type is checked on the opened descriptor, so nothing can be swapped in
 * between), not a symbolic link, owned by root or the running user, with no group or other
 * permission bits. Returns its content as UTF-8, unchanged.
 */
export function readSecretFile(path: string, field: string): string {
  if (typeof path !== 'string' || path === '') throw invalid(field, 'a file path is required');
  let fd: number;
  try {
    fd = openSync(path, constants.O_RDONLY | constants.O_NOFOLLOW | constants.O_NONBLOCK | constants.O_NOCTTY);
  } catch (err) {
    const code = errCode(err);
    // O_NOFOLLOW on a symlink: ELOOP
    if (code === 'ELOOP') throw invalid(field, `${path} is a symbolic link; refused (give the file itself)`);
    throw invalid(field, `cannot read ${path}: ${code}`);
  }
  try {
    checkSecretStats(fstatSync(fd), path, field);
    const chunks: Buffer[] = [];
    let total = 0;
    for (;;) {
      const buf = Buffer.alloc(8192);
      const n = readSync(fd, buf, 0, buf.length, null);
      if (n === 0) break;
      total += n;
      if (total > MAX_SECRET_BYTES) throw invalid(field, `${path} holds more than ${MAX_SECRET_BYTES} bytes`);
      chunks.push(buf.subarray(0, n));
    }
    return Buffer.concat(chunks).toString('utf8');
  } catch (err) {
    if (err instanceof Error && err.name === 'IpvisorError') throw err;
    throw invalid(field, `cannot read ${path}: ${errCode(err)}`);
  } finally {
    closeSync(fd);
  }
}

/** A one-line secret (a password): the file's content without its final newline. */
export function readSecretLine(path: string, field: string): string {
  return readSecretFile(path, field).replace(/\r?\n$/, '');
}

/**
 * A file root acts on (a config it obeys, a program it runs): owned by root and writable by nobody
 * else (no group/other write bit). A symbolic link is followed (/sbin/ip -> /bin/ip) and both the
 * link and its target must be root's.
 */
export function checkRootOwnedFile(path: string, field: string, opts: { executable?: boolean } = {}): void {
  if (typeof path !== 'string' || path === '') throw invalid(field, 'a file path is required');
  let st: Stats;
  let link: Stats;
  try {
    link = lstatSync(path);
    st = statSync(path);
  } catch (err) {
    throw invalid(field, `cannot use ${path}: ${errCode(err)}`);
  }
  if (link.isSymbolicLink() && link.uid !== 0) throw invalid(field, `${path} is a symbolic link owned by uid ${link.uid}; root acts on it, so it must be root's`);
  if (!st.isFile()) throw invalid(field, `${path} is ${describeType(st)}; expected a regular file`);
  if (st.uid !== 0) throw invalid(field, `${path} is owned by uid ${st.uid}; root acts on it, so it must be owned by root`);
  if ((st.mode & 0o022) !== 0) throw invalid(field, `${path} is writable by group or others (mode ${(st.mode & 0o777).toString(8)}); root acts on it: chmod go-w it`);
  if (opts.executable && (st.mode & 0o100) === 0) throw invalid(field, `${path} is not executable`);
}

/**
 * Whether `path` may be written by writeSecretFile: absent, or (with `force`) a regular file. A
 * symbolic link is refused even with `force` (never write through one); an existing file without
 * `force` is ALREADY_EXISTS. Call it for every file first, so that nothing is written when one is refused.
 */
export function checkSecretTarget(path: string, field: string, opts: { force?: boolean } = {}): void {
  let st: Stats;
  try {
    st = lstatSync(path);
  } catch (err) {
    if (errCode(err) === 'ENOENT') return;
    throw invalid(field, `cannot use ${path}: ${errCode(err)}`);
  }
  if (st.isSymbolicLink()) throw invalid(field, `${path} is a symbolic link; refused (ipvisor never writes through one)`);
  if (!st.isFile()) throw invalid(field, `${path} is ${describeType(st)}; expected a regular file`);
  if (!opts.force) throw new IpvisorError('ALREADY_EXISTS', `${field}: ${path} exists; use --force to overwrite`, { field });
}

/** Writes a private file (mode 600) as a new file beside it, renamed over it: never through a
 * symbolic link, never half-written. Checks the target with checkSecretTarget first. */
export function writeSecretFile(path: string, content: string, field: string, opts: { force?: boolean } = {}): void {
  checkSecretTarget(path, field, opts);
  const tmp = join(dirname(path), `.${basename(path)}.${process.pid}.${randomBytes(6).toString('hex')}.tmp`);
  let fd: number | undefined;
  try {
    fd = openSync(tmp, constants.O_WRONLY | constants.O_CREAT | constants.O_EXCL | constants.O_NOFOLLOW, 0o600);
    writeSync(fd, content);
    fsyncSync(fd);
    closeSync(fd);
    fd = undefined;
    renameSync(tmp, path);
  } catch (err) {
    if (fd !== undefined) closeSync(fd);
    rmSync(tmp, { force: true });
    throw invalid(field, `cannot write ${path}: ${errCode(err)}`);
  }
}

// Every error ipvisor reports has a code from this catalogue, an exit status for the CLI and an
// HTTP status for the API. A test checks that every code is documented in docs/errors.md.

export interface ErrorSpec {
  exit: 1 | 2;
  http: number;
  summary: string;
}

export const ERROR_CODES = {
  USAGE: { exit: 2, http: 400, summary: 'the command line is malformed (unknown option, missing argument)' },
  VALIDATION: { exit: 2, http: 400, summary: 'a field has an invalid value' },
  NOT_FOUND: { exit: 2, http: 404, summary: 'a named object does not exist' },
  ALREADY_EXISTS: { exit: 2, http: 409, summary: 'an object with that name or key already exists' },
  OVERLAP: { exit: 2, http: 409, summary: 'a subnet, pool or prefix overlaps another one' },
  IN_USE: { exit: 2, http: 409, summary: 'the object still has dependants; use --force' },
  AMBIGUOUS: { exit: 2, http: 409, summary: 'the request matches more than one object; narrow it' },
  IDEMPOTENCY_MISMATCH: { exit: 2, http: 422, summary: 'a request id was reused with different arguments' },
  POOL_EXHAUSTED: { exit: 1, http: 409, summary: 'the pool has no free address or prefix of the requested size' },
  ADDRESS_TAKEN: { exit: 1, http: 409, summary: 'the requested address or prefix is already assigned, reserved or held' },
  STORE_MISSING: { exit: 1, http: 503, summary: 'there is no ipvisor store at the path: no such file, an empty file, or a database without ipvisor\'s schema' },
  STORE_DAMAGED: { exit: 1, http: 500, summary: 'the store file is not a database, or it is malformed' },
  STORE_SCHEMA: { exit: 1, http: 500, summary: 'the store has a schema this ipvisor does not know (written by a newer ipvisor)' },
  STORE_READONLY: { exit: 1, http: 503, summary: 'the store cannot be written (read-only file, directory or file system)' },
  STORE_FULL: { exit: 1, http: 507, summary: 'the disk holding the store is full' },
  STORE_IDENTITY: { exit: 1, http: 409, summary: 'the store is not the one this host\'s (or an XAPI pool\'s) enforcement came from, and applying it would remove what is enforced; --force applies anyway' },
  UNAUTHORIZED: { exit: 1, http: 401, summary: 'no valid credentials (missing, unknown, expired or revoked token; bad password)' },
  FORBIDDEN: { exit: 1, http: 403, summary: "the credentials' role does not allow this operation" },
  QUOTA_EXCEEDED: { exit: 1, http: 409, summary: "the allocation would exceed the tenant's quota, or the pool is not allowed for the tenant" },
  PRECONDITION_FAILED: { exit: 1, http: 412, summary: 'If-Match names another version of the object than the current one' },
  PAYLOAD_TOO_LARGE: { exit: 2, http: 413, summary: 'the request body is larger than the server accepts' },
  RATE_LIMITED: { exit: 1, http: 429, summary: 'too many failed authentication attempts from this source; retry later' },
  SERVER_UNREACHABLE: { exit: 1, http: 502, summary: 'the CLI in --server mode could not reach the server' },
  STORE_BUSY: { exit: 1, http: 503, summary: 'the store stayed locked by another process for too long' },
  STORE_UNAVAILABLE: { exit: 1, http: 503, summary: 'the store server (PostgreSQL) cannot be reached or refused the connection' },
  CONTROL_PLANE_UNREACHABLE: { exit: 1, http: 503, summary: 'no ipvisor server answered (the agent keeps enforcing its last desired state)' },
  VERSION_MISMATCH: { exit: 1, http: 426, summary: 'agent and server speak protocol versions that do not work together' },
  TLS_PIN_MISMATCH: { exit: 1, http: 502, summary: "the server's TLS certificate is not the pinned one (agent --pin)" },
  HOST_COMMAND: { exit: 1, http: 500, summary: 'a host command (ip, nft, virsh, ...) failed' },
  DRIVER: { exit: 1, http: 502, summary: 'a hypervisor (libvirt, XAPI) or guest agent call failed' },
  INTERNAL: { exit: 1, http: 500, summary: 'an unexpected internal error' },
} as const satisfies Record<string, ErrorSpec>;

export type ErrorCode = keyof typeof ERROR_CODES;

export class IpvisorError extends Error {
  readonly code: ErrorCode;
  readonly field: string | undefined;
  readonly details: unknown;

  constructor(code: ErrorCode, message: string, opts: { field?: string; details?: unknown; cause?: unknown } = {}) {
    super(message, opts.cause === undefined ? undefined : { cause: opts.cause });
    this.name = 'IpvisorError';
    this.code = code;
    this.field = opts.field;
    this.details = opts.details;
  }

  get exitCode(): number {
    return ERROR_CODES[this.code].exit;
  }

  get httpStatus(): number {
    return ERROR_CODES[this.code].http;
  }

  toJSON(): { code: ErrorCode; message: string; field: string | null; details?: unknown } {
    const out: { code: ErrorCode; message: string; field: string | null; details?: unknown } = {
      code: this.code,
      message: this.message,
      field: this.field ?? null,
    };
    if (this.details !== undefined) out.details = this.details;
    return out;
  }
}

/** Shorthand for the most common error: a field with a bad value. */
export function invalid(field: string, problem: string): IpvisorError {
  return new IpvisorError('VALIDATION', `${field}: ${problem}`, { field });
}

export function notFound(kind: string, ref: string, field?: string): IpvisorError {
  return new IpvisorError('NOT_FOUND', `${field ?? kind}: no ${kind} named '${ref}'`, { field: field ?? kind });
}

export function asIpvisorError(err: unknown): IpvisorError {
  if (err instanceof IpvisorError) return err;
  const message = err instanceof Error ? err.message : String(err);
  return new IpvisorError('INTERNAL', message, { cause: err });
}

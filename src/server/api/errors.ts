// Every error the API answers goes through here: a coded error keeps its code and takes its HTTP
// status from the catalogue (core/model/errors.ts); fastify's own errors (schema validation, body
// too large, bad JSON) are given codes; anything else is INTERNAL, logged with the request id and
// answered without its message or stack.
import type { FastifyError, FastifyInstance } from 'fastify';
import { IpvisorError } from '../../core/model/errors.js';

function validationField(err: FastifyError): string | null {
  const v = err.validation?.[0];
  if (!v) return null;
  const path = (v.instancePath ?? '').split('/').filter(Boolean).join('.');
  // a missing property, or one the schema does not know, is the field to name
  const params = v.params as { missingProperty?: string; additionalProperty?: string } | undefined;
  const field = [path, params?.missingProperty ?? params?.additionalProperty].filter(Boolean).join('.');
  return field || (err.validationContext ?? null);
}

const STORE_DOWN = new Set(['ECONNREFUSED', 'ECONNRESET', 'ENOTFOUND', 'ETIMEDOUT', '57P01', '57P03', '08006', '08001', '08003']);

export function toIpvisorError(err: unknown): IpvisorError {
  if (err instanceof IpvisorError) return err;
  const e = err as FastifyError & { code?: string };
  if (e.validation) {
    const field = validationField(e);
    const msg = e.validation[0]?.message ?? e.message;
    return new IpvisorError('VALIDATION', `${field ?? e.validationContext ?? 'request'}: ${msg}`, { field: field ?? undefined });
  }
  if (e.code === 'FST_ERR_CTP_BODY_TOO_LARGE') return new IpvisorError('PAYLOAD_TOO_LARGE', 'body: the request body is too large', { field: 'body' });
  if (e.code === 'FST_ERR_CTP_INVALID_MEDIA_TYPE') return new IpvisorError('VALIDATION', 'content-type: the body must be application/json', { field: 'content-type' });
  if (e.code === 'FST_ERR_CTP_EMPTY_JSON_BODY' || (e.statusCode === 400 && e instanceof SyntaxError) || e.code === 'FST_ERR_CTP_INVALID_JSON_BODY') {
    return new IpvisorError('VALIDATION', `body: ${e.message}`, { field: 'body' });
  }
  if (e.code && STORE_DOWN.has(e.code)) return new IpvisorError('STORE_UNAVAILABLE', 'the store cannot be reached; nothing was changed');
  if (e.statusCode === 404) return new IpvisorError('NOT_FOUND', 'no such route');
  return new IpvisorError('INTERNAL', 'an unexpected internal error (logged with the request id)', { cause: err });
}

export function installErrorHandling(app: FastifyInstance): void {
  app.setErrorHandler((err, req, reply) => {
    const e = toIpvisorError(err);
    if (e.code === 'INTERNAL') req.log.error({ err, reqId: req.id }, 'internal error');
    const body = { error: e.toJSON() };
    return reply.status(e.httpStatus).header('content-type', 'application/json; charset=utf-8').send(body);
  });
  app.setNotFoundHandler((req, reply) => {
    const e = new IpvisorError('NOT_FOUND', `no route ${req.method} ${req.url.split('?')[0]}`);
    return reply.status(404).send({ error: e.toJSON() });
  });
}

// A pool's usage picture (the web UI's address map) and its next free addresses (the UI's "pick a
// specific free one"). Tenants may list free addresses of the pools open to them, not the map.
import type { FastifyInstance } from 'fastify';
import { Type } from '@fastify/type-provider-typebox';
import { ADDRESS_STATES } from '../../core/ipam/address-map.js';
import { formatAddress } from '../../core/ipam/addr.js';
import { poolMap } from '../../core/service/pool-map.js';
import { scopedPool } from '../../core/service/views.js';
import * as S from './schemas.js';
import type { ApiOptions } from './index.js';

const E = S.errorResponses;
const State = Type.Union(ADDRESS_STATES.map((s) => Type.Literal(s)));
const Counts = Type.Partial(Type.Record(State, Type.Integer()));

export async function registerPoolMapRoutes(app: FastifyInstance, opts: ApiOptions): Promise<void> {
  const { store } = opts;
  app.get('/pools/:pool/map', {
    config: { access: 'read' },
    schema: {
      tags: ['pools'],
      summary: "a pool's usage picture: IPv4 one summary per /24 (or, with block, that /24's 256 addresses with their state and holder); IPv6 the largest free blocks",
      params: Type.Object({ pool: Type.String() }),
      querystring: Type.Object({ block: Type.Optional(Type.String({ description: 'an IPv4 /24 of the pool, e.g. 10.0.4.0/24' })) }),
      response: {
        200: Type.Object({
          pool: Type.String(),
          family: Type.Integer(),
          usage: S.PoolUsage,
          blocks: Type.Optional(Type.Array(Type.Object({ block: Type.String(), inPool: Type.Integer(), used: Type.Integer(), counts: Counts }))),
          cells: Type.Optional(Type.Array(Type.Object({ address: Type.String(), state: State, holder: Type.Union([Type.String(), Type.Null()]) }))),
          largestFree: Type.Optional(Type.Array(Type.String())),
        }),
        ...E(400, 401, 403, 404),
      },
    },
  }, async (req) => {
    const { pool } = req.params as { pool: string };
    const { block } = req.query as { block?: string };
    return store.transaction((tx) => poolMap(tx, pool, { block }));
  });

  app.get('/pools/:pool/free', {
    config: { access: 'read', tenant: true },
    schema: {
      tags: ['pools'],
      summary: 'the lowest free addresses of a pool (a tenant: of the pools open to it)',
      params: Type.Object({ pool: Type.String() }),
      querystring: Type.Object({ limit: Type.Optional(Type.Integer({ minimum: 1, maximum: 256 })) }),
      response: { 200: Type.Object({ items: Type.Array(Type.String()) }), ...E(400, 401, 403, 404) },
    },
  }, async (req) => {
    const { pool: ref } = req.params as { pool: string };
    const limit = (req.query as { limit?: number }).limit ?? 20;
    return store.transaction(async (tx) => {
      const pool = await scopedPool(tx, ref, req.scope);
      const items: string[] = [];
      // The free-space index holds free intervals in order: expand the first ones.
      for (const iv of await tx.freeIntervals(pool.uuid, undefined, limit)) {
        for (let v = iv.start; v <= iv.end && items.length < limit; v++) items.push(formatAddress(pool.family, v));
        if (items.length >= limit) break;
      }
      return { items };
    });
  });
}

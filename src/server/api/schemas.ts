// The API's shapes as TypeBox schemas: fastify validates requests and serialises responses with them
// (a field not declared here never leaves the server), and @fastify/swagger turns them into the
// OpenAPI 3.1 document.
import { Type, type TSchema } from '@fastify/type-provider-typebox';

const Nullable = <T extends TSchema>(t: T) => Type.Union([t, Type.Null()]);
const Str = Type.String();
export const NullableStr = () => Type.Union([Type.String(), Type.Null()]);
const Time = Type.String({ description: 'ISO 8601 time' });
const Extra = Type.Record(Type.String(), Type.Unknown());

/** A flat object schema: the base's properties, then more (keeps the JSON key order of the data,
 * which a nested allOf would not). */
export function extend<T extends { properties: Record<string, TSchema> }>(base: T, more: Record<string, TSchema>) {
  return Type.Object({ ...base.properties, ...more });
}

export const ErrorBody = Type.Object({
  error: Type.Object({
    code: Type.String({ description: 'a code of docs/errors.md' }),
    message: Type.String(),
    field: Nullable(Str),
    details: Type.Optional(Type.Unknown()),
  }),
}, { $id: 'Error' });

export const Subnet = Type.Object({ cidr: Str, family: Type.Integer(), gateway: Nullable(Str) });
export const Network = Type.Object({
  uuid: Str, name: Str, driver: Str, bridge: Nullable(Str), mode: Str, subnets: Type.Array(Subnet),
  mtu: Nullable(Type.Integer()), dns: Type.Array(Str), routes: Type.Array(Type.Object({ cidr: Str, via: Str })),
  defaultLocking: Str, uplink: Nullable(Str), hostAddresses: Type.Array(Str), extra: Extra, createdAt: Time, updatedAt: Time,
});

export const PoolUsage = Type.Object({
  total: Str, assigned: Str, reserved: Str, routed: Str, held: Str, free: Str, exclusions: Str,
}, { description: 'decimal strings (IPv6 sizes exceed 2^53)' });

export const NetworkDetail = extend(Network, {
  pools: Type.Array(extend(Type.Object({ pool: Str, family: Type.Integer(), purpose: Str }), PoolUsage.properties)),
  vifCount: Type.Integer(), assignmentCount: Type.Integer(),
});

export const Pool = Type.Object({
  uuid: Str, name: Str, networkUuid: Str, family: Type.Integer(), purpose: Str,
  entries: Type.Array(Type.Object({ text: Str, first: Str, last: Str })), exclusions: Type.Array(Str),
  holdSeconds: Type.Integer(), createdAt: Time, updatedAt: Time,
});
export const PoolView = extend(Pool, { network: Str, usage: PoolUsage });
export const PoolDetail = extend(PoolView, { holds: Type.Array(Type.Object({ start: Str, end: Str, until: Time })) });

export const Vm = Type.Object({ uuid: Str, name: Str, host: Str, owner: Nullable(Str), extra: Extra, createdAt: Time, updatedAt: Time });

export const Vif = Type.Object({
  uuid: Str, vmUuid: Str, device: Type.Integer(), mac: Str, networkUuid: Str, locking: Str, ifname: Nullable(Str),
  boundAt: Nullable(Time), extra: Extra, createdAt: Time, updatedAt: Time,
});
export const VifView = extend(Vif, {
  vm: Str, network: Str, effectiveLocking: Str, lockingReason: Str, addresses: Type.Array(Type.Object({ address: Str, kind: Str })),
});
export const VmDetail = extend(Vm, { vifs: Type.Array(VifView) });

export const Assignment = Type.Object({
  uuid: Str, networkUuid: Str, poolUuid: Str, vifUuid: Nullable(Str), family: Type.Integer(), address: Str,
  prefixLength: Type.Integer(), kind: Str, note: Nullable(Str), requestId: Nullable(Str), createdAt: Time,
});
export const AssignmentView = extend(Assignment, { cidr: Str, network: Str, pool: Str, vif: Nullable(Str) });
export const AddressInfo = Type.Object({
  address: Str, family: Type.Integer(), state: Type.String({ description: 'assigned, reserved, free, held, excluded, gateway, network, broadcast, host, outside ...' }),
  network: Nullable(Str), pool: Nullable(Str), vif: Nullable(Str), kind: Nullable(Str), cidr: Nullable(Str), note: Nullable(Str),
  requestId: Nullable(Str), since: Nullable(Time), until: Nullable(Time), reason: Nullable(Str),
});

export const AuditEvent = Type.Object({
  id: Type.Integer(), time: Time, actor: Str, action: Str, objectKind: Str, objectUuid: Nullable(Str), objectName: Nullable(Str),
  before: Type.Unknown(), after: Type.Unknown(), requestId: Nullable(Str),
});

export const TenantQuota = Type.Object({
  pools: Type.Record(Type.String(), Type.Integer(), { description: 'pool UUID -> most assignments' }),
  family4: Nullable(Type.Integer()), family6: Nullable(Type.Integer()), routedPrefix: Nullable(Type.Integer()),
});
export const Tenant = Type.Object({ uuid: Str, name: Str, pools: Type.Array(Str), quota: TenantQuota, createdAt: Time, updatedAt: Time });
export const TenantUsage = Type.Object({
  pools: Type.Array(Type.Object({ pool: Str, poolUuid: Str, used: Type.Integer(), quota: Nullable(Type.Integer()) })),
  family4: Type.Object({ used: Type.Integer(), quota: Nullable(Type.Integer()) }),
  family6: Type.Object({ used: Type.Integer(), quota: Nullable(Type.Integer()) }),
  routedPrefix: Nullable(Type.Integer()),
});
export const TenantDetail = extend(Tenant, { vms: Type.Array(Str), usage: TenantUsage });

export const Role = Type.Union(['admin', 'operator', 'auditor', 'tenant', 'agent'].map((r) => Type.Literal(r)));
export const TokenView = Type.Object({
  uuid: Str, name: Str, role: Str, tenant: Nullable(Str), host: Nullable(Str), createdAt: Time, expiresAt: Nullable(Time),
  revokedAt: Nullable(Time), lastUsedAt: Nullable(Time), state: Str,
});
export const TokenWithSecret = extend(TokenView, { token: Type.String({ description: 'the secret: shown once' }) });
export const UserView = Type.Object({ uuid: Str, name: Str, role: Str, tenant: Nullable(Str), createdAt: Time, updatedAt: Time });

export const Principal = Type.Object({ kind: Str, name: Str, role: Str, tenant: Nullable(Str), host: Nullable(Str) });

/** A page of a list: `nextCursor` fetches the next one (null at the end). */
export function Page<T extends TSchema>(item: T) {
  return Type.Object({ items: Type.Array(item), nextCursor: Nullable(Str) });
}

export const PageQuery = {
  limit: Type.Optional(Type.Integer({ minimum: 1, maximum: 1000, description: 'items per page (default 100)' })),
  cursor: Type.Optional(Type.String({ description: 'nextCursor of the previous page' })),
  fields: Type.Optional(Type.String({ description: 'comma-separated top-level fields to return (the others are left out)' })),
};

export const FieldsQuery = { fields: PageQuery.fields };

export const Released = Type.Array(Str);

/** The error answers of a route: the ones named, plus what any route may answer (too many failed
 * authentications, store unavailable, internal error; 422 for a reused Idempotency-Key). */
export const errorResponses = (...codes: number[]) => Object.fromEntries([...new Set([...codes, 413, 422, 429, 500, 503])].map((c) => [c, Type.Ref('Error')]));

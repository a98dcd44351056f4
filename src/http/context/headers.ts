// Header names the gateway reads and writes: part of the contract (docs/api.md).
export const HEADERS = {
  tenant: 'x-tenant-id',
  user: 'x-user-id',
  account: 'x-account-id',
  correlation: 'x-correlation-id',
  idempotencyKey: 'idempotency-key',
  idempotencyReplayed: 'idempotency-replayed',
  traceparent: 'traceparent',
  tracestate: 'tracestate',
  authorization: 'authorization',
  requestId: 'x-request-id',
  retryAfter: 'retry-after'
} as const

// Tenant ids: the one rule for what X-Tenant-ID (and MOCK_TENANT_ID) may be.
export type TenantIdFormat = 'uuid' | 'slug'

const UUID = /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/i
const SLUG = /^[a-z0-9][a-z0-9._-]{0,63}$/i

export function isValidTenantId (value: string, format: TenantIdFormat): boolean {
  return format === 'uuid' ? UUID.test(value) : SLUG.test(value)
}

/**
 * The one spelling of a tenant id: under TENANT_ID_FORMAT=uuid a UUID in any case is the same
 * tenant, so it is lower-cased before it keys anything (envelopes, idempotency, read-back, API key
 * scopes, SQS groups). A slug is the client's name for its tenant, kept as sent whatever its shape,
 * a UUID's included: slugs differing in case are different tenants.
 */
export function normalizeTenantId (value: string, format: TenantIdFormat): string {
  return format === 'uuid' ? value.toLowerCase() : value
}

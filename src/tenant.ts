// Tenant ids: the one rule for what X-Tenant-ID (and MOCK_TENANT_ID) may be.
export type TenantIdFormat = 'uuid' | 'slug'

const UUID = /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/i
const SLUG = /^[a-z0-9][a-z0-9._-]{0,63}$/i

export function isValidTenantId (value: string, format: TenantIdFormat): boolean {
  return format === 'uuid' ? UUID.test(value) : SLUG.test(value)
}

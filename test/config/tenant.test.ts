import { createHash } from 'node:crypto'
import { join } from 'node:path'
import t from 'tap'
import { normalizeTenantId } from '../../src/config/tenant.js'
import { build, exampleOf, post } from '../helper.js'

// TENANT_ID_FORMAT=uuid: a UUID in any case is one tenant, spelled in lower case. slug: the tenant
// id is the client's own name for it, kept as sent whatever its shape.

const UPPER_UUID = '7C9E6679-7425-40DE-944B-E07FC1F90AE7'
const SLUG_WITH_UUID = `Acme-${UPPER_UUID}`

t.test('normalisation: uuid lower-cases, slug keeps what was sent', async t => {
  t.equal(normalizeTenantId(UPPER_UUID, 'uuid'), UPPER_UUID.toLowerCase())
  t.equal(normalizeTenantId(UPPER_UUID, 'slug'), UPPER_UUID, 'a UUID-shaped slug is a slug')
  t.equal(normalizeTenantId(SLUG_WITH_UUID, 'slug'), SLUG_WITH_UUID)
})

t.test('slug: the published event has the tenant id as sent, UUID-shaped or not', async t => {
  const { app, broker } = await build(t, { TENANT_ID_FORMAT: 'slug' })
  for (const tenant of [SLUG_WITH_UUID, UPPER_UUID, 'acme-EU']) {
    const res = await app.inject(post('call.ended', exampleOf('call.ended'), { 'x-tenant-id': tenant }))
    t.equal(res.statusCode, 202, tenant)
    t.equal(broker.published.at(-1)?.envelope.tenantid, tenant, `${tenant}: the envelope`)
    t.equal(broker.published.at(-1)?.event.tenantId, tenant, `${tenant}: the event`)
  }
})

t.test('uuid: a UUID in upper case is published in lower case, as before', async t => {
  const { app, broker } = await build(t)
  const res = await app.inject(post('call.ended', exampleOf('call.ended'), { 'x-tenant-id': UPPER_UUID }))
  t.equal(res.statusCode, 202)
  t.equal(broker.published[0]?.envelope.tenantid, UPPER_UUID.toLowerCase())
  const slug = await app.inject(post('call.ended', exampleOf('call.ended'), { 'x-tenant-id': SLUG_WITH_UUID }))
  t.equal(slug.statusCode, 400, 'not a UUID')
})

const sha = (key: string) => createHash('sha256').update(key).digest('hex')
const keysFile = JSON.stringify({
  keys: [{ name: 'acme', sha256: sha('acme-key'), tenants: [UPPER_UUID, SLUG_WITH_UUID], eventTypes: ['*'] }]
})
const asAcme = (tenant: string) => post('call.ended', exampleOf('call.ended'), { 'x-tenant-id': tenant, authorization: 'Bearer acme-key' })

t.test('slug: an API key\'s tenants are matched as written, a UUID-shaped one included', async t => {
  const dir = t.testdir({ 'keys.json': keysFile })
  const { app, broker } = await build(t, { TENANT_ID_FORMAT: 'slug', API_KEYS_FILE: join(dir, 'keys.json') })
  for (const tenant of [UPPER_UUID, SLUG_WITH_UUID]) {
    t.equal((await app.inject(asAcme(tenant))).statusCode, 202, `${tenant}: its key's tenant`)
    t.equal(broker.published.at(-1)?.envelope.tenantid, tenant)
  }
  t.equal((await app.inject(asAcme(UPPER_UUID.toLowerCase()))).statusCode, 403, 'in another case, another tenant')
  t.equal((await app.inject(asAcme(SLUG_WITH_UUID.toLowerCase()))).statusCode, 403, 'in another case, another tenant')
})

t.test('uuid: an API key\'s UUID matches in any case, as before', async t => {
  const dir = t.testdir({ 'keys.json': keysFile })
  const { app, broker } = await build(t, { API_KEYS_FILE: join(dir, 'keys.json') })
  for (const tenant of [UPPER_UUID, UPPER_UUID.toLowerCase()]) {
    t.equal((await app.inject(asAcme(tenant))).statusCode, 202, tenant)
    t.equal(broker.published.at(-1)?.envelope.tenantid, UPPER_UUID.toLowerCase())
  }
})

import t from 'tap'
import { exampleOf, TENANT } from '../helper.js'
import { gateway } from './gateway-process.js'

// Attacks over loopback, bounded in time and count; after each the gateway must be alive and serving.

t.test('24 connections sending invalid maximum-size batches: bounded answers, the process lives', async t => {
  const gw = await gateway(t)
  // 100 events of 2.5 KB, each with 60 wrong keywords: 600 validation errors in ~250 KB
  const data = { ...exampleOf('sentiment.analyzed'), keywords: Array.from({ length: 60 }, () => 7), call_id: 'c'.repeat(100) }
  const body = JSON.stringify({ events: Array.from({ length: 100 }, () => ({ type: 'sentiment.analyzed', data })) })
  const sizes: number[] = []
  const statuses = new Set<number>()
  await Promise.all(Array.from({ length: 24 }, async () => {
    for (let round = 0; round < 4; round++) {
      const res = await fetch(`${gw.base}/v1/events`, {
        method: 'POST', headers: { 'content-type': 'application/json', 'x-tenant-id': TENANT }, body
      })
      statuses.add(res.status)
      sizes.push((await res.text()).length)
    }
  }))
  t.same([...statuses].sort(), [...statuses].filter(s => s === 400 || s === 503).sort(), `only 400 and 503 (${[...statuses]})`)
  t.ok(Math.max(...sizes) < body.length, `no answer larger than its request (${Math.max(...sizes)} vs ${body.length} bytes)`)
  t.ok(await gw.alive(), 'alive and serving')
})

t.test('400 concurrent valid maximum-size batches: each taken or refused with 503, the process lives', async t => {
  const gw = await gateway(t)
  const data = { ...exampleOf('call.ended'), transcript: 'x'.repeat(2400) }
  const body = JSON.stringify({ events: Array.from({ length: 100 }, () => ({ type: 'call.ended', data })) })
  t.ok(body.length > 240000 && body.length <= 262144, `a batch close to BODY_LIMIT_BYTES (${body.length} bytes)`)
  const statuses = await Promise.all(Array.from({ length: 400 }, () =>
    fetch(`${gw.base}/v1/events`, { method: 'POST', headers: { 'content-type': 'application/json', 'x-tenant-id': TENANT }, body })
      .then(async r => { await r.arrayBuffer(); return r.status }, () => 0)))
  const counts = statuses.reduce<Record<number, number>>((c, s) => ({ ...c, [s]: (c[s] ?? 0) + 1 }), {})
  t.same(Object.keys(counts).filter(s => s !== '202' && s !== '503'), [], `only 202 and 503: ${JSON.stringify(counts)}`)
  t.ok((counts[202] ?? 0) > 0, 'some were taken')
  t.ok(await gw.alive(), 'alive and serving')
})

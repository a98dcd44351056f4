import { setTimeout as sleep } from 'node:timers/promises'
import { messageOf } from '../errors.js'
import { HEADERS } from '../http/context/headers.js'
import { jsonObject } from './common.js'
import { CliFailure } from './failure.js'
import type { WatchContext, Watcher } from './verify-types.js'

const POLL_MS = 250

/**
 * Reads the event back from the gateway (`GET /v1/events`, the test tenant's, of the test type):
 * the local store is the gateway's own, so this is the only way to see it from outside.
 */
export async function watchLocal (ctx: WatchContext): Promise<Watcher> {
  const where = `${ctx.gateway}/v1/events`
  return {
    where,
    async receive (marks, until) {
      let after = 0
      while (Date.now() < until) {
        const url = `${where}?type=${encodeURIComponent(ctx.type)}&limit=1000${after > 0 ? `&after=${after}` : ''}`
        let res: Response
        try {
          const signal = AbortSignal.timeout(Math.max(1, until - Date.now()))
          res = await fetch(url, { headers: { [HEADERS.tenant]: ctx.tenant }, signal })
        } catch (err) {
          throw new CliFailure(3, `cannot read ${where}: ${messageOf(err)}`)
        }
        const body = jsonObject(await res.json().catch(() => ({})))
        if (res.status !== 200) throw new CliFailure(3, `${where} answered ${res.status} ${body.code ?? ''} ${body.detail ?? ''}`.trim())
        const events: unknown[] = Array.isArray(body.events) ? body.events : []
        const envelope = events.find(e => { const text = JSON.stringify(e); return marks.some(m => text.includes(m)) })
        if (envelope !== undefined) {
          return {
            envelope,
            problems: [],
            // The read-back is the tenant's own: finding it there is the tenant check.
            transportTenant: { where: 'read back as that tenant', value: ctx.tenant },
            remove: async () => 'kept (the local store has no delete)'
          }
        }
        if (typeof body.next === 'number' && body.next > after) after = body.next
        else await sleep(POLL_MS)
      }
      return undefined
    },
    async close () {}
  }
}

import { setTimeout as sleep } from 'node:timers/promises'
import { HEADERS } from '../http/context/headers.js'
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
          res = await fetch(url, { headers: { [HEADERS.tenant]: ctx.tenant }, signal: AbortSignal.timeout(Math.max(1, until - Date.now())) })
        } catch (err) {
          throw new CliFailure(3, `cannot read ${where}: ${(err as Error).message}`)
        }
        const body = await res.json().catch(() => ({})) as { events?: Record<string, unknown>[], next?: number, code?: string, detail?: string }
        if (res.status !== 200) throw new CliFailure(3, `${where} answered ${res.status} ${body.code ?? ''} ${body.detail ?? ''}`.trim())
        const envelope = (body.events ?? []).find(e => { const text = JSON.stringify(e); return marks.some(m => text.includes(m)) })
        if (envelope !== undefined) {
          // The read-back is the tenant's own: finding it there is the tenant check.
          return { envelope, problems: [], transportTenant: { where: 'read back as that tenant', value: ctx.tenant }, remove: async () => 'kept (the local store has no delete)' }
        }
        if (typeof body.next === 'number' && body.next > after) after = body.next
        else await sleep(POLL_MS)
      }
      return undefined
    },
    async close () {}
  }
}

import type { Broker, BrokerHealth } from './broker.js'

/** How long a health probe may take: readiness, metrics and the relay answer within it whatever the broker does. */
export const HEALTH_TIMEOUT_MS = 2500

const probing = new WeakMap<Broker, Promise<BrokerHealth>>()

/**
 * A broker's health within HEALTH_TIMEOUT_MS, a probe still running counting as down. Probes of
 * one broker made while one runs share it: a flood of readiness probes or scrapes costs the
 * broker one call at a time, never one each.
 */
export function healthOf (broker: Broker, timeoutMs = HEALTH_TIMEOUT_MS): Promise<BrokerHealth> {
  let probe = probing.get(broker)
  if (probe === undefined) {
    probe = broker.health().catch((err: unknown) => ({ up: false, detail: `the health probe failed: ${String(err)}` }))
    probing.set(broker, probe)
    void probe.finally(() => { if (probing.get(broker) === probe) probing.delete(broker) })
  }
  return new Promise(resolve => {
    const timer = setTimeout(() => resolve({ up: false, detail: `no answer to the health probe within ${timeoutMs} ms` }), timeoutMs)
    void probe.then(health => {
      clearTimeout(timer)
      resolve(health)
    })
  })
}

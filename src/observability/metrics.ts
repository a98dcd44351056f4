import { Counter, Gauge, Histogram, Registry, collectDefaultMetrics } from 'prom-client'

// prom-client's defaults include three gauges named like counters, which Prometheus' own linter
// refuses (`promtool check metrics` exits 3). The per-type gauges without the suffix remain:
// `sum(nodejs_active_handles)` is the dropped total.
const MISNAMED_DEFAULTS = ['nodejs_active_handles_total', 'nodejs_active_requests_total', 'nodejs_active_resources_total']

// 0.5 ms (the local store) to 10 s (twice the default publish deadline): HTTP answers and
// publishes share them, so their latencies read alike on a dashboard.
const DURATION_BUCKETS = [0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10]

// One registry per app so tests and several apps in one process never share counters.
// Labels are bounded sets (types, codes, outcomes, destinations from the routes file, route
// patterns): never tenant or user ids, never a raw URL.
/** Values a destination's protection changed so far, per action (read at each scrape). */
export interface ProtectedCount {
  destination: string
  action: string
  count: number
}

export function createMetrics (logLinesDropped: () => number = () => 0, protectedValues: () => Iterable<ProtectedCount> = () => []) {
  const registry = new Registry()
  collectDefaultMetrics({ register: registry })
  for (const name of MISNAMED_DEFAULTS) registry.removeSingleMetric(name)
  let counted = 0
  // Counted by each protection as plain numbers (no label lookup per value), summed here per scrape.
  void new Counter({
    name: 'gateway_protected_values_total',
    help: 'Data field values a destination got protected (routes file protect), by destination and action (drop, hash, encrypt)',
    labelNames: ['destination', 'action'] as const,
    registers: [registry],
    collect () {
      this.reset()
      const totals = new Map<string, ProtectedCount>()
      for (const c of protectedValues()) {
        const key = `${c.destination}\0${c.action}`
        const total = totals.get(key)
        if (total === undefined) totals.set(key, { ...c })
        else total.count += c.count
      }
      for (const { destination, action, count } of totals.values()) this.inc({ destination, action }, count)
    }
  })
  // registered in the registry, read through its collect()
  void new Counter({
    name: 'gateway_log_lines_dropped_total',
    help: 'Log lines not written because stdout was not read fast enough (the bounded buffer was full) or was closed',
    registers: [registry],
    collect () {
      const dropped = logLinesDropped()
      this.inc(dropped - counted)
      counted = dropped
    }
  })
  return {
    registry,
    httpDuration: new Histogram({
      name: 'gateway_http_request_duration_seconds',
      help: 'Time to answer an HTTP request, by route pattern (unmatched for unknown paths), method and status code',
      labelNames: ['route', 'method', 'status_code'] as const,
      buckets: DURATION_BUCKETS,
      registers: [registry]
    }),
    received: new Counter({
      name: 'gateway_events_received_total',
      help: 'Events received, before validation',
      labelNames: ['type'] as const,
      registers: [registry]
    }),
    rejected: new Counter({
      name: 'gateway_events_rejected_total',
      help: 'Events refused with a problem answer',
      labelNames: ['type', 'code'] as const,
      registers: [registry]
    }),
    awsCallEntries: new Histogram({
      name: 'gateway_aws_call_entries',
      help: 'Events per SQS or EventBridge call (SendMessage, SendMessageBatch, PutEvents), per destination',
      labelNames: ['destination', 'broker'] as const,
      buckets: [1, 2, 3, 5, 8, 10],
      registers: [registry]
    }),
    batchSize: new Histogram({
      name: 'gateway_batch_size',
      help: 'Events per batch request (POST /v1/events) that was a valid batch',
      buckets: [1, 2, 5, 10, 20, 50, 100, 200, 500, 1000],
      registers: [registry]
    }),
    published: new Counter({
      name: 'gateway_events_published_total',
      help: 'Publish results per destination, by type and outcome',
      labelNames: ['destination', 'broker', 'type', 'outcome'] as const,
      registers: [registry]
    }),
    publishDuration: new Histogram({
      name: 'gateway_publish_duration_seconds',
      help: 'Time from handing an event to a destination until its broker took or refused it for good, retries included; ' +
        'one sample per event',
      labelNames: ['destination', 'broker', 'type', 'outcome'] as const,
      buckets: DURATION_BUCKETS,
      registers: [registry]
    }),
    failures: new Counter({
      name: 'gateway_publish_failures_total',
      help: 'Failed publish attempts per event, by reason (unroutable, nack, timeout, disconnected, blocked, ...)',
      labelNames: ['destination', 'broker', 'reason'] as const,
      registers: [registry]
    }),
    unrouted: new Gauge({
      name: 'gateway_unrouted_events',
      help: 'Events kept aside by the broker as unroutable (RabbitMQ alternate exchange queue depth), sampled at scrape',
      labelNames: ['destination', 'broker'] as const,
      registers: [registry]
    }),
    retries: new Counter({
      name: 'gateway_publish_retries_total',
      help: 'Publish attempts repeated after a retryable failure',
      labelNames: ['destination', 'broker'] as const,
      registers: [registry]
    }),
    brokerUp: new Gauge({
      name: 'gateway_broker_up',
      help: '1 when the destination\'s broker is usable',
      labelNames: ['destination', 'broker'] as const,
      registers: [registry]
    }),
    idempotentReplays: new Counter({
      name: 'gateway_idempotent_replays_total',
      help: 'Requests answered from a stored first answer',
      registers: [registry]
    }),
    idempotencyWaits: new Counter({
      name: 'gateway_idempotency_waits_total',
      help: 'Keyed events that found their key held by a request still publishing, by how the wait ended: ' +
        'answered (the first answer came) or in_progress (409)',
      labelNames: ['outcome'] as const,
      registers: [registry]
    }),
    rateLimited: new Counter({
      name: 'gateway_rate_limited_events_total',
      help: 'Events refused with 429 because their tenant was over its rate limit (a batch counts its events)',
      registers: [registry]
    }),
    stateUp: new Gauge({
      name: 'gateway_state_up',
      help: '1 when the state store (idempotency keys, rate limits) is usable',
      labelNames: ['store'] as const,
      registers: [registry]
    }),
    outboxEvents: new Counter({
      name: 'gateway_outbox_events_total',
      help: 'Events of spooled destinations by what became of them: queued (in the outbox, answered 202), ' +
        'refused (outbox full or failing), published (by the relay), dead_lettered',
      labelNames: ['destination', 'outcome'] as const,
      registers: [registry]
    }),
    outboxDepth: new Gauge({
      name: 'gateway_outbox_depth',
      help: 'Events waiting in the outbox for a spooled destination, sampled at scrape',
      labelNames: ['destination'] as const,
      registers: [registry]
    }),
    outboxOldestAge: new Gauge({
      name: 'gateway_outbox_oldest_age_seconds',
      help: 'Age of the oldest event waiting in the outbox for a spooled destination (0 when none), sampled at scrape',
      labelNames: ['destination'] as const,
      registers: [registry]
    }),
    outboxDeadLetters: new Gauge({
      name: 'gateway_outbox_dead_letters',
      help: 'Dead letters of a spooled destination (refused for good or out of attempts), sampled at scrape',
      labelNames: ['destination'] as const,
      registers: [registry]
    }),
    stateErrors: new Counter({
      name: 'gateway_state_errors_total',
      help: 'State store operations that failed, by operation (reserve, complete, keep, release, rate_limit)',
      labelNames: ['operation'] as const,
      registers: [registry]
    })
  }
}

export type Metrics = ReturnType<typeof createMetrics>

import { createRequire } from 'node:module'
import type { FastifyBaseLogger } from 'fastify'
import type { KafkaSecurity } from '../../config/index.js'
import { ConfigError, messageOf } from '../../errors.js'
import { BrokerError } from '../broker.js'
import { KAFKA_CODES, type KafkaLikeError } from './errors.js'

// One librdkafka producer per distinct brokers list (and client id and compression), shared by
// the destinations that name it. @confluentinc/kafka-javascript is an optional dependency: the
// gateway needs it only when a routes file has a Kafka destination, and says so at start.

export const KAFKA_PACKAGE = '@confluentinc/kafka-javascript'

/** A record header as the client takes it: one name and value per object. */
export type KafkaHeader = Record<string, string>

/** What a delivery report calls back with. */
export type Delivered = (err: KafkaLikeError | null) => void

/** The part of the client's (node-rdkafka style) Producer the gateway uses. */
interface NativeProducer {
  connect (options: { timeout: number }, cb: (err: KafkaLikeError | null) => void): void
  produce (topic: string, partition: null, value: Buffer, key: string | null, timestamp: number, opaque: Delivered,
    headers: KafkaHeader[]): void
  getMetadata (options: { timeout: number, allTopics: boolean }, cb: (err: KafkaLikeError | null, metadata: unknown) => void): void
  setPollInBackground (on: boolean): void
  flush (timeout: number, cb: (err: KafkaLikeError | null) => void): void
  disconnect (timeout: number, cb: () => void): void
  on (event: 'delivery-report', listener: (err: KafkaLikeError | null, report: { opaque: unknown }) => void): void
  on (event: 'event.error', listener: (err: KafkaLikeError) => void): void
  on (event: 'event.log', listener: (log: { severity: number, fac: string, message: string }) => void): void
}

type ProducerClass = new (conf: Record<string, string | number | boolean>) => NativeProducer

let loaded: unknown

/**
 * The client's module (its Producer; the CLIs' KafkaConsumer); a start-up error naming the package
 * when it is not installed.
 */
export function kafkaClient<T = { Producer: ProducerClass }> (): T {
  if (loaded !== undefined) return loaded as T
  try {
    loaded = createRequire(import.meta.url)(KAFKA_PACKAGE)
    return loaded as T
  } catch (err) {
    throw new ConfigError(`a Kafka destination needs the optional package ${KAFKA_PACKAGE}, which is not installed ` +
      `(${messageOf(err).split('\n')[0] ?? ''}); install it with: CKJS_LINKING=dynamic npm install ${KAFKA_PACKAGE}`)
  }
}

/** librdkafka's settings for TLS and SASL, from the KAFKA_* variables. */
export function securityConf (security: KafkaSecurity): Record<string, string> {
  const conf: Record<string, string> = { 'security.protocol': security.protocol.toLowerCase() }
  if (security.protocol.startsWith('SASL_')) {
    conf['sasl.mechanisms'] = security.mechanism
    if (security.username !== undefined) conf['sasl.username'] = security.username
    if (security.password !== undefined) conf['sasl.password'] = security.password
  }
  if (security.caLocation !== undefined) conf['ssl.ca.location'] = security.caLocation
  return conf
}

export interface KafkaProducerOptions {
  brokers: string
  clientId: string
  compression: string
  security: KafkaSecurity
  /** librdkafka's own retries of a record end at this deadline (message.timeout.ms). */
  deliveryTimeoutMs: number
  log: FastifyBaseLogger
}

const PROBE_TIMEOUT_MS = 1500
const PROBE_CACHE_MS = 1000
const RETRY_MS = [500, 1000, 2000]
const MAX_RETRY_MS = 5000

/**
 * An idempotent producer (acks=all, no duplicates or reordering from its own retries), connected
 * in the background: while no broker answers, the destinations using it answer 503 at once and
 * readiness names them; it keeps trying.
 */
export class KafkaProducer {
  readonly #opts: KafkaProducerOptions
  #producer: NativeProducer | undefined
  #connected = false
  /** Why nothing can be produced now (no broker answered the last metadata request), or undefined. */
  #down: string | undefined = 'not connected yet'
  #connecting: Promise<void> | undefined
  #retry: NodeJS.Timeout | undefined
  #attempt = 0
  #probing = false
  /** The last metadata request: when, and its answer (pending or not). */
  #probe: { at: number, up: Promise<boolean> } | undefined
  #closed = false
  #users = 0

  constructor (opts: KafkaProducerOptions) {
    this.#opts = opts
    // Made now, so that a missing package or a setting librdkafka refuses stops the start.
    this.#producer = this.#create()
  }

  use (): void {
    this.#users++
  }

  /** The first connection attempt; later ones run in the background. Never throws: an absent cluster is a 503, not a failed start. */
  connect (): Promise<void> {
    this.#connecting ??= this.#tryConnect()
    return this.#connecting
  }

  async #tryConnect (): Promise<void> {
    const log = this.#opts.log
    const producer = this.#producer ?? this.#create()
    this.#producer = producer
    const err = await new Promise<KafkaLikeError | null>(resolve => producer.connect({ timeout: PROBE_TIMEOUT_MS }, resolve))
    if (this.#closed) {
      // Closed while connecting: a connected client would keep the process alive.
      if (err === null) await new Promise<void>(resolve => producer.disconnect(PROBE_TIMEOUT_MS, () => resolve()))
      return
    }
    if (err === null) {
      this.#connected = true
      this.#down = undefined
      this.#attempt = 0
      producer.setPollInBackground(true)
      log.info({ broker: 'kafka', brokers: this.#opts.brokers }, 'Kafka producer connected')
      return
    }
    this.#down = err.message ?? 'no broker answered'
    // A client whose first metadata request failed is not reused: the next attempt starts afresh.
    this.#producer = undefined
    if (this.#attempt === 0) {
      log.error({ broker: 'kafka', brokers: this.#opts.brokers, err: this.#down }, 'Kafka not reachable yet; answering 503 until it is')
    }
    this.#retryLater(() => {
      this.#tryConnect().catch((thrown: unknown) => log.error({ broker: 'kafka', err: messageOf(thrown) }, 'Kafka producer cannot be made'))
    })
  }

  #create (): NativeProducer {
    const { brokers, clientId, compression, security, deliveryTimeoutMs, log } = this.#opts
    const { Producer } = kafkaClient()
    const conf: Record<string, string | number | boolean> = {
      'bootstrap.servers': brokers,
      'client.id': clientId,
      'enable.idempotence': true,
      acks: 'all',
      'compression.codec': compression,
      'message.timeout.ms': deliveryTimeoutMs,
      'linger.ms': 2,
      // Kafka's own default (the Java client's): a key lands where other producers put it.
      partitioner: 'murmur2_random',
      'socket.keepalive.enable': true,
      'reconnect.backoff.max.ms': MAX_RETRY_MS,
      dr_cb: true,
      event_cb: true,
      log_level: 4,
      ...securityConf(security)
    }
    let producer: NativeProducer
    try {
      producer = new Producer(conf)
    } catch (err) {
      // A setting this build of librdkafka does not have (zstd without libzstd, say).
      throw new ConfigError(`Kafka producer for ${brokers}: ${messageOf(err).split('\n')[0] ?? ''}`)
    }
    producer.on('delivery-report', (err, report) => {
      const delivered = report.opaque
      if (typeof delivered === 'function') (delivered as Delivered)(err)
      if (err === null && this.#down !== undefined && this.#connected) this.#down = undefined
    })
    producer.on('event.error', err => {
      if (err.isFatal === true) this.#replace(producer, err.message ?? 'fatal error')
      // The client's error events carry code -1 for this one: it is known by its text too.
      if (err.code === KAFKA_CODES.ALL_BROKERS_DOWN || /all broker connections are down/i.test(err.message ?? '')) this.#confirmDown()
      log.warn({ broker: 'kafka', brokers, code: err.code, err: err.message }, 'Kafka producer error')
    })
    producer.on('event.log', entry => {
      // librdkafka's own lines (connection refused, broker down); never credentials.
      log.debug({ broker: 'kafka', facility: entry.fac, severity: entry.severity }, entry.message)
    })
    return producer
  }

  /**
   * librdkafka says every broker is down: a metadata request decides (an idle connection closing
   * says so too). While it fails, it is asked again with backoff, so that the destination comes
   * back by itself, whether or not anyone probes readiness.
   */
  #confirmDown (): void {
    if (this.#probing || !this.#connected || this.#closed) return
    this.#probing = true
    this.#probe = undefined
    void this.probe().then(up => {
      this.#probing = false
      if (!up) this.#retryLater(() => this.#confirmDown())
    })
  }

  /**
   * The idempotent producer hit a fatal error (say, a sequence it cannot recover): it refuses every
   * record from now on. Down at once; a fresh client replaces it, its records failed back (and
   * tried again by delivery or the relay).
   */
  #replace (broken: NativeProducer, why: string): void {
    if (this.#producer !== broken || this.#closed) return
    this.#opts.log.error({ broker: 'kafka', brokers: this.#opts.brokers, err: why }, 'Kafka producer failed for good; making a new one')
    this.#down = `fatal: ${why}`
    this.#connected = false
    this.#producer = undefined
    broken.disconnect(PROBE_TIMEOUT_MS, () => undefined)
    const log = this.#opts.log
    this.#tryConnect().catch((thrown: unknown) => log.error({ broker: 'kafka', err: messageOf(thrown) }, 'Kafka producer cannot be made'))
  }

  #retryLater (again: () => void): void {
    if (this.#closed) return
    clearTimeout(this.#retry)
    this.#retry = setTimeout(again, RETRY_MS[this.#attempt++] ?? MAX_RETRY_MS).unref()
  }

  /**
   * Asks the cluster for its brokers (not its topics: cheap on any cluster); marks the producer up
   * or down by the answer. Callers at the same time share one request; an answer holds for a second.
   */
  probe (): Promise<boolean> {
    if (this.#probe !== undefined && Date.now() - this.#probe.at < PROBE_CACHE_MS) return this.#probe.up
    const up = this.#ask()
    this.#probe = { at: Date.now(), up }
    return up
  }

  async #ask (): Promise<boolean> {
    const producer = this.#producer
    if (producer === undefined || !this.#connected) return false
    const err = await new Promise<KafkaLikeError | null>(resolve => {
      try {
        producer.getMetadata({ timeout: PROBE_TIMEOUT_MS, allTopics: false }, err => resolve(err))
      } catch (thrown) {
        resolve({ message: messageOf(thrown) })
      }
    })
    if (err === null) {
      this.#down = undefined
      this.#attempt = 0
      return true
    }
    this.#down = err.message ?? 'no broker answered'
    // Asked again with backoff until it answers (#confirmDown does so for its own probes).
    if (!this.#probing) this.#retryLater(() => this.#confirmDown())
    return false
  }

  /** Why nothing can be produced right now, or undefined. */
  unavailable (): BrokerError | undefined {
    if (this.#down === undefined && this.#connected) return undefined
    return new BrokerError(`Kafka is not reachable at ${this.#opts.brokers} (${this.#down ?? 'closing'})`, {
      retryable: true,
      reason: 'disconnected',
      down: true
    })
  }

  /** Hands one record to librdkafka; `delivered` is called with its delivery report. Throws what produce throws (size, queue full). */
  produce (topic: string, value: Buffer, key: string | null, timestamp: number, headers: KafkaHeader[], delivered: Delivered): void {
    const producer = this.#producer
    if (producer === undefined) throw new Error('Kafka producer not connected')
    producer.produce(topic, null, value, key, timestamp, delivered, headers)
  }

  /** The last destination leaves: what is queued gets its chance to go out (at most timeoutMs), then the producer disconnects. */
  async release (timeoutMs: number): Promise<void> {
    if (--this.#users > 0) return
    this.#closed = true
    clearTimeout(this.#retry)
    // A connection attempt under way ends first (and disconnects what it connected).
    await this.#connecting
    const producer = this.#producer
    if (producer === undefined || !this.#connected) return
    // disconnect() flushes first, for at most timeoutMs: one wait, not two.
    await new Promise<void>(resolve => producer.disconnect(timeoutMs, () => resolve()))
  }
}

/** One producer per distinct brokers list, client id and compression. */
export class KafkaProducers {
  readonly #byKey = new Map<string, KafkaProducer>()
  constructor (readonly defaults: Omit<KafkaProducerOptions, 'brokers' | 'clientId' | 'compression'>) {}

  for (brokers: string, clientId: string, compression: string): KafkaProducer {
    const key = `${brokers}\0${clientId}\0${compression}`
    let producer = this.#byKey.get(key)
    if (producer === undefined) {
      producer = new KafkaProducer({ ...this.defaults, brokers, clientId, compression })
      this.#byKey.set(key, producer)
    }
    producer.use()
    return producer
  }
}

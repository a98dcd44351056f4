import type { FastifyBaseLogger } from 'fastify'
import pg from 'pg'
import { codeOf, messageOf } from '../errors.js'
import { safeUrl } from '../observability/safe-url.js'
import { createTables } from './postgres-schema.js'
import {
  ROW_COLUMNS as COLUMNS,
  type DeadLetter,
  type DeadLetterQuery,
  type DestinationStats,
  type OutboxStore,
  type SpoolRow,
  type Spooled,
  type TenantScope
} from './outbox.js'

const SELECTED = 'seq, destination, bucket, tenant, event_id AS "eventId", type, meta, body, content_type AS "contentType", traceparent, ' +
  'bytes, accepted_at AS "acceptedAt", attempts'
/** Buckets one replica relays at once: with several replicas, each takes a share. */
const CLAIM = 8
// Tenants: every one ($n NULL), or these exactly and those starting with a prefix (parameters n and n+1).
const whereTenant = (n: number): string => `($${n}::text[] IS NULL OR tenant = ANY($${n}::text[]) ` +
  `OR EXISTS (SELECT 1 FROM unnest($${n + 1}::text[]) p WHERE left(tenant, length(p)) = p))`
const WHERE_DEAD = `($1::text IS NULL OR destination = $1) AND ($2::bigint[] IS NULL OR id = ANY($2)) AND ${whereTenant(3)}`

/** A destination's counts, waiting and dead, as #refresh reads them. */
interface CountsRow { destination: string, depth: number, bytes: number, oldest: number | null, dead: number, deadBytes: number }

// int8 columns (seq, ids, times) as numbers: all stay far below 2^53.
const types: pg.CustomTypesConfig = {
  getTypeParser: (oid, format) => oid === pg.types.builtins.INT8 ? (value: string) => Number(value) : pg.types.getTypeParser(oid, format)
}

/**
 * The shared outbox (SPOOL_URL=postgres://…): every replica appends to it and relays from it.
 * Tenants are spread over BUCKETS buckets; a replica claims a few buckets with a lease
 * (OUTBOX_LEASE_MS, renewed each batch; `FOR UPDATE SKIP LOCKED`, so replicas never wait for
 * each other) and relays only their events, so a tenant's events are published by one replica
 * at a time, in accept order. A replica that dies leaves its claims to expire.
 * Appends of one tick, and those that arrive while one commits, share one INSERT and one commit.
 */
export class PostgresOutbox implements OutboxStore {
  readonly kind = 'postgres'
  readonly #pool: pg.Pool
  readonly #log: FastifyBaseLogger
  readonly #where: string
  #leaseMs = 30_000
  readonly #timeoutMs: number
  #queue: { rows: readonly SpoolRow[], resolve: () => void, reject: (err: unknown) => void }[] = []
  #inserting = false
  /** The rows of the INSERT under way: not in the count yet, but in the totals. */
  #insertingRows: readonly SpoolRow[] = []
  #scheduled = false
  #down: string | undefined
  /** As the last count found them, plus what this replica appended since. */
  #totals = { events: 0, bytes: 0 }
  #stats: DestinationStats[] = []
  #refresher: NodeJS.Timeout | undefined
  /** Connecting again after a start that could not reach PostgreSQL. */
  #retrying: NodeJS.Timeout | undefined
  #connecting = false
  #lastError = 0

  /** `queryTimeoutMs`: a query not answered by then fails (an unresponsive PostgreSQL is a 503, not a hang). */
  constructor (url: string, log: FastifyBaseLogger, options: { leaseMs?: number, queryTimeoutMs?: number } = {}) {
    this.#log = log
    this.#where = safeUrl(url)
    if (options.leaseMs !== undefined) this.#leaseMs = options.leaseMs
    const timeout = options.queryTimeoutMs ?? 5000
    this.#timeoutMs = timeout
    this.#pool = new pg.Pool({
      connectionString: url,
      max: 4,
      connectionTimeoutMillis: timeout,
      query_timeout: timeout,
      keepAlive: true,
      idleTimeoutMillis: 30_000,
      types
    })
    // An idle connection that breaks must not crash the process: the next query reconnects.
    this.#pool.on('error', err => { this.#failed(err) })
  }

  /**
   * Creates the tables and starts counting. A PostgreSQL that cannot be reached (refused, timed
   * out, not resolved, starting up) does not stop the start: the store reports itself down (appends
   * fail, spooled destinations answer 503 EVG_SPOOL_UNAVAILABLE) and tries again every second
   * until it can, so a replica can restart during a PostgreSQL outage. One that answers with a
   * refusal (a wrong password, no such database) stops the start.
   */
  async connect (destinations: readonly string[]): Promise<void> {
    try {
      await this.#createTables(destinations)
    } catch (err) {
      if (!unreachable(err)) throw new Error(`the outbox at SPOOL_URL (${this.#where}) cannot be used: ${messageOf(err)}`)
      this.#down = `PostgreSQL (${this.#where}) is not reachable yet: ${messageOf(err)}`
      this.#log.error({ store: this.#where, err: messageOf(err) },
        'outbox (PostgreSQL) not reachable at start: spooled destinations answer 503 until it is; trying again each second')
      this.#retrying = setInterval(() => {
        if (this.#connecting) return
        this.#connecting = true
        this.#createTables(destinations).then(async () => {
          clearInterval(this.#retrying)
          this.#down = undefined
          this.#log.info({ store: this.#where }, 'outbox (PostgreSQL) reachable: spooled destinations take events again')
          await this.#startCounting()
        }, () => undefined).finally(() => { this.#connecting = false })
      }, 1000)
      return
    }
    await this.#startCounting()
  }

  async #createTables (destinations: readonly string[]): Promise<void> {
    let client: pg.PoolClient | undefined
    try {
      client = await this.#pool.connect()
      await createTables(client, destinations)
    } catch (err) {
      await client?.query('ROLLBACK').catch(() => undefined)
      throw err
    } finally {
      client?.release()
    }
  }

  async #startCounting (): Promise<void> {
    await this.#refresh()
    // One count at a time: a count slower than a second (a large backlog) is not joined by another.
    let counting = false
    this.#refresher = setInterval(() => {
      if (counting) return
      counting = true
      void this.#refresh().catch(() => undefined).finally(() => { counting = false })
    }, 1000)
    this.#refresher.unref()
  }

  async #query<R extends pg.QueryResultRow = pg.QueryResultRow> (sql: string, params: unknown[] = []): Promise<pg.QueryResult<R>> {
    try {
      const result = await this.#pool.query<R>(sql, params)
      this.#down = undefined
      return result
    } catch (err) {
      this.#failed(err)
      throw err
    }
  }

  #failed (err: unknown): void {
    const code = codeOf(err)?.toString()
    // Connection-level failures (no SQLSTATE, or class 08 / 57P) make the store down; others are the query's.
    if (code === undefined || code.startsWith('08') || code.startsWith('57P')) this.#down = `PostgreSQL (${this.#where}): ${messageOf(err)}`
    if (Date.now() - this.#lastError > 5000) {
      this.#lastError = Date.now()
      this.#log.error({ err: messageOf(err), code, store: this.#where }, 'outbox (PostgreSQL) failed')
    }
  }

  /**
   * Resolves once the rows are committed; fails when that has not happened within the query
   * timeout (PUBLISH_TIMEOUT_MS) counted from the call, whatever it waited for (a connection from
   * the pool, an INSERT of earlier appends). Rows still waiting for their INSERT then are taken
   * back (never stored); rows of an INSERT under way may still commit, and are relayed: their 503
   * is a "maybe", as a sync destination's is when a confirm is lost.
   */
  append (rows: readonly SpoolRow[]): Promise<void> {
    if (this.#retrying !== undefined && this.#down !== undefined && this.#refresher === undefined) {
      return Promise.reject(Object.assign(new Error(this.#down), { code: 'ECONNREFUSED' }))
    }
    return new Promise((resolve, reject) => {
      const waiting = {
        rows,
        resolve: () => { clearTimeout(timer); resolve() },
        reject: (err: unknown) => { clearTimeout(timer); reject(err) }
      }
      const timer = setTimeout(() => {
        const queued = this.#queue.indexOf(waiting)
        if (queued !== -1) {
          this.#queue.splice(queued, 1)
          for (const r of rows) {
            this.#totals.events--
            this.#totals.bytes -= r.bytes
          }
        }
        const why = `PostgreSQL (${this.#where}) did not commit within ${this.#timeoutMs} ms`
        reject(Object.assign(new Error(why), { code: 'ETIMEDOUT' }))
      }, this.#timeoutMs)
      this.#queue.push(waiting)
      for (const r of rows) {
        this.#totals.events++
        this.#totals.bytes += r.bytes
      }
      if (!this.#inserting && !this.#scheduled) {
        this.#scheduled = true
        setImmediate(() => { void this.#insert() })
      }
    })
  }

  /** One INSERT for every append waiting; appends that come meanwhile wait for the next. */
  async #insert (): Promise<void> {
    this.#scheduled = false
    if (this.#inserting || this.#queue.length === 0) return
    this.#inserting = true
    const waiting = this.#queue
    this.#queue = []
    const rows = waiting.flatMap(w => w.rows)
    this.#insertingRows = rows
    const column = <K extends keyof SpoolRow>(key: K) => rows.map(r => r[key])
    try {
      await this.#query(`INSERT INTO spool_outbox (${COLUMNS})
        SELECT * FROM unnest($1::text[], $2::int[], $3::text[], $4::text[], $5::text[], $6::text[], $7::text[], $8::text[], $9::text[],
          $10::int[], $11::bigint[])`, [
        column('destination'), column('bucket'), column('tenant'), column('eventId'), column('type'), column('meta'), column('body'),
        column('contentType'), column('traceparent'), column('bytes'), column('acceptedAt')
      ])
      for (const w of waiting) w.resolve()
    } catch (err) {
      for (const r of rows) {
        this.#totals.events--
        this.#totals.bytes -= r.bytes
      }
      for (const w of waiting) w.reject(err)
    } finally {
      this.#inserting = false
      this.#insertingRows = []
      if (this.#queue.length > 0) void this.#insert()
    }
  }

  totals (): { events: number, bytes: number } {
    return this.#totals
  }

  async #refresh (): Promise<void> {
    const { rows } = await this.#query<CountsRow>(`
      SELECT destination, sum(depth)::int8 AS depth, sum(bytes)::int8 AS bytes, min(oldest) AS oldest, sum(dead)::int8 AS dead,
          sum(dead_bytes)::int8 AS "deadBytes" FROM (
        SELECT destination, count(*) AS depth, sum(bytes) AS bytes, min(accepted_at) AS oldest, 0 AS dead, 0 AS dead_bytes
          FROM spool_outbox GROUP BY destination
        UNION ALL
        SELECT destination, 0, 0, NULL, count(*), sum(bytes) FROM spool_dead_letters GROUP BY destination
      ) counts GROUP BY destination`)
    this.#stats = rows.map(r => ({
      destination: r.destination,
      depth: r.depth,
      bytes: r.bytes,
      deadLetters: r.dead,
      deadBytes: r.deadBytes,
      ...(r.oldest === null ? {} : { oldestAcceptedAt: r.oldest })
    }))
    const pending = [...this.#queue.flatMap(w => w.rows), ...this.#insertingRows]
    this.#totals = {
      events: rows.reduce((sum, r) => sum + r.depth + r.dead, 0) + pending.length,
      bytes: rows.reduce((sum, r) => sum + r.bytes + r.deadBytes, 0) + pending.reduce((sum, r) => sum + r.bytes, 0)
    }
  }

  async claim (destination: string, owner: string): Promise<number[]> {
    const lease = `${this.#leaseMs} milliseconds`
    const held = await this.#query<{ bucket: number }>(`UPDATE spool_claims SET expires_at = now() + $3::interval
      WHERE destination = $1 AND owner = $2 AND expires_at > now() RETURNING bucket`, [destination, owner, lease])
    const buckets = held.rows.map(r => r.bucket)
    if (buckets.length < CLAIM) {
      const taken = await this.#query<{ bucket: number }>(`UPDATE spool_claims SET owner = $2, expires_at = now() + $3::interval
        WHERE destination = $1 AND bucket IN (
          SELECT c.bucket FROM spool_claims c
          WHERE c.destination = $1 AND c.expires_at <= now()
            AND EXISTS (SELECT 1 FROM spool_outbox o WHERE o.destination = c.destination AND o.bucket = c.bucket)
          ORDER BY random() LIMIT $4 FOR UPDATE SKIP LOCKED)
        RETURNING bucket`, [destination, owner, lease, CLAIM - buckets.length])
      buckets.push(...taken.rows.map(r => r.bucket))
    }
    return buckets
  }

  async release (destination: string, owner: string, buckets: readonly number[]): Promise<void> {
    await this.#query(`UPDATE spool_claims SET owner = NULL, expires_at = '-infinity'
      WHERE destination = $1 AND owner = $2 AND bucket = ANY($3::int[])`, [destination, owner, buckets])
  }

  async next (destination: string, buckets: readonly number[] | undefined, limit: number): Promise<Spooled[]> {
    const { rows } = buckets === undefined
      ? await this.#query<Spooled>(`SELECT ${SELECTED} FROM spool_outbox WHERE destination = $1 AND retry_at <= $3
          ORDER BY seq LIMIT $2`, [destination, limit, Date.now()])
      : await this.#query<Spooled>(`SELECT ${SELECTED} FROM spool_outbox WHERE destination = $1 AND retry_at <= $4
          AND bucket = ANY($3::int[]) ORDER BY seq LIMIT $2`, [destination, limit, buckets, Date.now()])
    return rows
  }

  async remove (events: readonly Spooled[]): Promise<void> {
    if (events.length === 0) return
    await this.#query('DELETE FROM spool_outbox WHERE seq = ANY($1::bigint[])', [events.map(e => e.seq)])
    for (const e of events) {
      this.#totals.events--
      this.#totals.bytes -= e.bytes
    }
  }

  async defer (events: readonly Spooled[], retryAt: number): Promise<void> {
    if (events.length === 0) return
    // New seqs from the sequence: after every event waiting now, in the same bucket (the same replica relays them).
    await this.#query(`WITH moved AS (DELETE FROM spool_outbox WHERE seq = ANY($1::bigint[]) RETURNING *)
      INSERT INTO spool_outbox (${COLUMNS}, attempts, retry_at) SELECT ${COLUMNS}, attempts + 1, $2 FROM moved ORDER BY seq`,
    [events.map(e => e.seq), retryAt])
  }

  async bury (events: readonly Spooled[], reason: string): Promise<void> {
    if (events.length === 0) return
    await this.#query(`WITH moved AS (DELETE FROM spool_outbox WHERE seq = ANY($1::bigint[]) RETURNING *)
      INSERT INTO spool_dead_letters (${COLUMNS}, attempts, reason, failed_at)
      SELECT ${COLUMNS}, attempts, $2, $3 FROM moved ORDER BY accepted_at, seq`, [events.map(e => e.seq), reason, Date.now()])
  }

  async stats (options: { fresh?: boolean } = {}): Promise<DestinationStats[]> {
    if (options.fresh === true) await this.#refresh()
    return this.#stats
  }

  async deadLetters (query: { destination?: string, after?: number, limit: number, tenants?: TenantScope }): Promise<DeadLetter[]> {
    const { rows } = await this.#query<DeadLetter>(`SELECT id, destination, tenant, event_id AS "eventId", type, reason, attempts,
        accepted_at AS "acceptedAt", failed_at AS "failedAt", body AS envelope
      FROM spool_dead_letters WHERE ($1::text IS NULL OR destination = $1) AND id > $2 AND ${whereTenant(4)} ORDER BY id LIMIT $3`,
    [query.destination ?? null, query.after ?? 0, query.limit, ...tenantParams(query.tenants)])
    return rows
  }

  async replay (query: DeadLetterQuery): Promise<number> {
    const result = await this.#query(`WITH moved AS (DELETE FROM spool_dead_letters WHERE ${WHERE_DEAD} RETURNING *)
      INSERT INTO spool_outbox (${COLUMNS}) SELECT ${COLUMNS} FROM moved ORDER BY id`, deadParams(query))
    return result.rowCount ?? 0
  }

  async purge (query: DeadLetterQuery): Promise<number> {
    const result = await this.#query(`DELETE FROM spool_dead_letters WHERE ${WHERE_DEAD}`, deadParams(query))
    await this.#refresh().catch(() => undefined)
    return result.rowCount ?? 0
  }

  async purgeWaiting (destination: string, tenants?: TenantScope): Promise<number> {
    const result = await this.#query(`DELETE FROM spool_outbox WHERE destination = $1 AND ${whereTenant(2)}`,
      [destination, ...tenantParams(tenants)])
    await this.#refresh().catch(() => undefined)
    return result.rowCount ?? 0
  }

  down (): string | undefined {
    return this.#down
  }

  async close (): Promise<void> {
    clearInterval(this.#retrying)
    clearInterval(this.#refresher)
    while (this.#inserting || this.#queue.length > 0) await new Promise(resolve => setTimeout(resolve, 5))
    await this.#pool.end()
  }
}

function deadParams (query: DeadLetterQuery): unknown[] {
  return [query.destination ?? null, query.ids ?? null, ...tenantParams(query.tenants)]
}

/** A TenantScope as whereTenant takes it: two text arrays, or nulls for every tenant. */
function tenantParams (tenants: TenantScope | undefined): [string[] | null, string[] | null] {
  return tenants === undefined ? [null, null] : [tenants.exact, tenants.prefixes]
}

/** A failure to reach PostgreSQL at all, as opposed to its refusal (SQLSTATE 28P01, 3D000...): worth waiting out. */
function unreachable (err: unknown): boolean {
  const code = codeOf(err)?.toString()
  if (code === '57P03') return true // the database system is starting up
  if (code !== undefined && /^[0-9A-Z]{5}$/.test(code)) return false
  return code === undefined || /^(ECONNREFUSED|ECONNRESET|ETIMEDOUT|EHOSTUNREACH|ENETUNREACH|ENOTFOUND|EAI_AGAIN)$/.test(code) ||
    /timeout|terminated|Connection terminated/i.test(messageOf(err))
}

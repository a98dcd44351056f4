import { spawn, spawnSync } from 'node:child_process'
import { createRequire } from 'node:module'
import { existsSync } from 'node:fs'
import { createInterface } from 'node:readline'
import { fileURLToPath } from 'node:url'
import type { Test } from 'tap'
import { KAFKA_PACKAGE } from '../../src/brokers/kafka/producer.js'
import { serviceSkip, unmet } from '../services.js'
import { PYTHON } from './consumer-process.js'

// Kafka for the tests: librdkafka's built-in mock cluster (no Kafka can be installed here), run by
// kafka-mock.py through ctypes, with Debian's librdkafka1. Its brokers listen on 127.0.0.1, on
// ports of their own; a test creates its topics, takes brokers down and up and injects errors
// through the commands below.

const MOCK_SCRIPT = fileURLToPath(new URL('kafka-mock.py', import.meta.url))
const START_MS = 10_000
const COMMAND_MS = 10_000

/**
 * Skip reason when the mock cluster cannot run here (no Python, no librdkafka); with
 * REQUIRE_BROKERS=1 (CI) their absence fails instead. services.ts has no Kafka service: the mock
 * cluster is a Python program, and is probed as 'Python'.
 */
export async function kafkaSkip (): Promise<string | false> {
  return await serviceSkip('Python', {
    at: `${PYTHON} with librdkafka.so.1 (the Kafka mock cluster)`,
    probe: async () => {
      if (!existsSync(PYTHON)) throw new Error(`${PYTHON} does not exist`)
      const script = "import ctypes; ctypes.CDLL('librdkafka.so.1').rd_kafka_mock_cluster_new"
      const probe = spawnSync(PYTHON, ['-c', script], { encoding: 'utf8', timeout: 10_000 })
      if (probe.status !== 0) throw new Error((probe.stderr || String(probe.error ?? '')).trim().split('\n').at(-1) ?? '')
    },
    hint: 'install it with apt-get install librdkafka1'
  })
}

/** Skip reason when the gateway's Kafka client (an optional dependency) is not installed; a failure under REQUIRE_BROKERS=1. */
export function kafkaClientSkip (): string | false {
  try {
    createRequire(import.meta.url).resolve(KAFKA_PACKAGE)
    return false
  } catch {
    return unmet(`${KAFKA_PACKAGE} is not installed (an optional dependency): CKJS_LINKING=dynamic npm install ${KAFKA_PACKAGE}`)
  }
}

type Answer = Record<string, unknown>

/** A running mock cluster; each method sends one command and resolves once it is answered. */
export interface MockCluster {
  /** bootstrap.servers: `127.0.0.1:port,…`, one per broker, ports chosen by the system. */
  readonly bootstraps: string
  /** How many brokers (ids 1..brokers). */
  readonly brokers: number
  /** Creates `topic` with `partitions` partitions, replication factor 1. */
  createTopic: (topic: string, partitions?: number) => Promise<void>
  /** Broker `id` closes its connections and refuses new ones; it stays the leader of its partitions. */
  brokerDown: (id: number) => Promise<void>
  brokerUp: (id: number) => Promise<void>
  /** Every broker down: a producer can connect to none of them. */
  allDown: () => Promise<void>
  allUp: () => Promise<void>
  /**
   * The next `codes.length` Produce requests (to whichever broker, one code each, in order) are
   * answered with these Kafka error codes: 6 NOT_LEADER_OR_FOLLOWER is retried by the producer,
   * 10 MESSAGE_TOO_LARGE fails the messages of the request it answers.
   */
  pushProduceErrors: (codes: number[]) => Promise<void>
}

class MockClusterProcess implements MockCluster {
  #pending: { resolve: (a: Answer) => void, reject: (e: Error) => void }[] = []
  #gone: string | undefined

  constructor (
    readonly bootstraps: string,
    readonly brokers: number,
    private readonly write: (line: string) => void,
    private readonly said: () => string
  ) {}

  async createTopic (topic: string, partitions = 4): Promise<void> {
    await this.#send({ op: 'create_topic', topic, partitions, replication: 1 })
  }

  async brokerDown (id: number): Promise<void> {
    await this.#send({ op: 'broker_down', id })
  }

  async brokerUp (id: number): Promise<void> {
    await this.#send({ op: 'broker_up', id })
  }

  async allDown (): Promise<void> {
    await this.#send({ op: 'all_down' })
  }

  async allUp (): Promise<void> {
    await this.#send({ op: 'all_up' })
  }

  async pushProduceErrors (codes: number[]): Promise<void> {
    await this.#send({ op: 'push_errors', api: 0, errors: codes })
  }

  /** Each line after the bootstraps line answers the oldest command waiting. */
  answered (answer: Answer): void {
    const waiter = this.#pending.shift()
    if (waiter === undefined) return
    if (answer.ok === true) waiter.resolve(answer)
    else waiter.reject(new Error(`Kafka mock cluster: ${String(answer.error)}`))
  }

  /** The process is gone: whatever waits, and whatever is sent from now on, fails. */
  gone (why: string): void {
    this.#gone = why
    const error = new Error(`Kafka mock cluster ${why}; it said: ${this.said()}`)
    for (const waiter of this.#pending.splice(0)) waiter.reject(error)
  }

  async #send (command: Record<string, unknown>): Promise<Answer> {
    if (this.#gone !== undefined) throw new Error(`Kafka mock cluster ${this.#gone}; it said: ${this.said()}`)
    const answer = new Promise<Answer>((resolve, reject) => { this.#pending.push({ resolve, reject }) })
    // Answers come in order: once one is missing, no later one can be told apart, so all fail.
    const timer = setTimeout(() => this.gone(`did not answer ${String(command.op)} within ${COMMAND_MS} ms`), COMMAND_MS)
    this.write(`${JSON.stringify(command)}\n`)
    try {
      return await answer
    } finally {
      clearTimeout(timer)
    }
  }
}

/**
 * Starts a mock cluster of `brokers` brokers (ids 1..brokers), ended when `t` ends: its stdin is
 * closed (it destroys the cluster and exits), and it is killed if it has not exited 3 s later.
 * Fails after 10 s without its bootstraps line, saying what it said on stderr.
 */
export async function startMockCluster (t: Test, brokers = 3): Promise<MockCluster> {
  const child = spawn(PYTHON, [MOCK_SCRIPT, String(brokers)], { stdio: ['pipe', 'pipe', 'pipe'] })
  let stderr = ''
  const said = () => stderr.slice(-2000).trim() || '(nothing on stderr)'
  child.stderr.on('data', (chunk: Buffer) => { stderr += chunk.toString() })
  child.stdin.on('error', () => undefined) // it exited: what waits for an answer fails below, saying so
  let closed = false
  // 'close' (not 'exit'): every line it printed has been read by then. A process that could not be
  // spawned emits 'error' and may never close.
  const ended = new Promise<void>(resolve => {
    child.once('close', () => { closed = true; resolve() })
    child.once('error', () => { closed = true; resolve() })
  })
  t.teardown(async () => {
    if (closed) return
    child.stdin.end()
    const forced = setTimeout(() => child.kill('SIGKILL'), 3000)
    await ended
    clearTimeout(forced)
  })

  let cluster: MockClusterProcess | undefined
  return await new Promise<MockCluster>((resolve, reject) => {
    const timer = setTimeout(() => {
      child.kill('SIGKILL')
      reject(new Error(`Kafka mock cluster: no bootstraps line within ${START_MS} ms; it said: ${said()}`))
    }, START_MS)
    child.once('error', err => {
      clearTimeout(timer)
      reject(new Error(`Kafka mock cluster: ${PYTHON} did not start: ${err.message}`))
    })
    child.once('close', (code, signal) => {
      clearTimeout(timer)
      const why = `exited (${signal ?? `code ${String(code)}`})`
      if (cluster === undefined) reject(new Error(`Kafka mock cluster ${why} before its bootstraps line; it said: ${said()}`))
      else cluster.gone(why)
    })
    createInterface({ input: child.stdout }).on('line', text => {
      let line: Answer
      try {
        line = JSON.parse(text) as Answer
      } catch {
        stderr += `(stdout) ${text}\n`
        return
      }
      if (cluster !== undefined) {
        cluster.answered(line)
      } else if (typeof line.bootstraps === 'string') {
        clearTimeout(timer)
        cluster = new MockClusterProcess(line.bootstraps, brokers, command => child.stdin.write(command), said)
        resolve(cluster)
      } else {
        stderr += `(stdout) ${text}\n`
      }
    })
  })
}

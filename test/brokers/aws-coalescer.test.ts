import t from 'tap'
import { BrokerError, type PublishOutcome } from '../../src/brokers/broker.js'
import { Coalescer, DEFAULT_COALESCING, MAX_CALLS_OUT, type CoalescingOptions, type Ready } from '../../src/brokers/aws/coalescer.js'

// The coalescer in front of SQS and EventBridge, with a sender of the test's own: each call is
// recorded and answered when the test says.
interface Call { entries: string[], timeoutMs: number, answer: (outcomes?: PublishOutcome[]) => void, fail: (err: unknown) => void }

function service (opts: Partial<CoalescingOptions> & { onCall?: (n: number) => void } = {}, maxBytes = 1000) {
  const calls: Call[] = []
  const limits = { service: 'SQS', noun: 'message', maxBytes }
  const coalescer = new Coalescer<string>(limits, (entries, timeoutMs) => new Promise((resolve, reject) => {
    calls.push({
      entries,
      timeoutMs,
      answer: outcomes => { resolve(outcomes ?? entries.map(() => ({ ok: true }))) },
      fail: reject
    })
  }), { coalescing: { ...DEFAULT_COALESCING, ...opts }, ...(opts.onCall === undefined ? {} : { onCall: opts.onCall }) })
  return { calls, coalescer }
}

const ready = (entry: string, size = 10, group?: string): Ready<string> => ({ entry, size, ...(group === undefined ? {} : { group }) })
const later = Date.now() + 60_000
const tick = () => new Promise(resolve => setImmediate(resolve))

t.test('a lone event goes out at once, in a call of its own', async t => {
  const { calls, coalescer } = service()
  const answer = coalescer.publish([ready('a')], later)
  t.same(calls.map(c => c.entries), [['a']], 'sent before publish returned')
  calls[0]?.answer()
  t.same(await answer, [{ ok: true }])
  const next = coalescer.publish([ready('b')], later)
  t.same(calls.map(c => c.entries), [['a'], ['b']], 'the next lone event too: nothing waits for company when no call is out')
  calls[1]?.answer()
  await next
})

t.test('events that arrive while a call is out share the next calls: full ones at once, the rest when it returns', async t => {
  const { calls, coalescer } = service()
  const first = coalescer.publish([ready('e0')], later)
  const rest = Array.from({ length: 25 }, (_, i) => coalescer.publish([ready(`e${i + 1}`)], later))
  t.same(calls.map(c => c.entries.length), [1, 10, 10], 'two full calls went; five wait for the call with room to return')
  calls[0]?.answer()
  await first
  t.same(calls.map(c => c.entries.length), [1, 10, 10, 5], 'the five go when it returns')
  for (const c of calls.slice(1)) c.answer()
  const outcomes = await Promise.all(rest)
  t.equal(outcomes.filter(([o]) => o?.ok === true).length, 25, 'every event answered')
  t.same(calls.flatMap(c => c.entries), Array.from({ length: 26 }, (_, i) => `e${i}`), 'each sent once, in order')
})

t.test('each entry\'s result goes to its own caller; a call that fails as a whole fails only its own entries', async t => {
  const { calls, coalescer } = service()
  const lone = coalescer.publish([ready('x')], later)
  const a = coalescer.publish([ready('a')], later)
  const b = coalescer.publish([ready('b')], later)
  const c = coalescer.publish([ready('c')], later)
  calls[0]?.fail(Object.assign(new Error('slow down'), { name: 'ThrottlingException', $metadata: { httpStatusCode: 400 } }))
  const [loneOutcome] = await lone
  t.equal(loneOutcome?.ok, false, 'the failed call\'s entry fails')
  t.same(calls.map(c => c.entries), [['x'], ['a', 'b', 'c']])
  const refused = new BrokerError('SQS: InvalidParameterValue', { retryable: false, reason: 'sender_fault', answered: true })
  calls[1]?.answer([{ ok: true }, { ok: false, error: refused }, { ok: true }])
  t.same(await a, [{ ok: true }])
  t.same(await b, [{ ok: false, error: refused }], 'only b gets the refusal')
  t.same(await c, [{ ok: true }])
})

t.test('an entry the answer leaves out is "no answer", retryable', async t => {
  const { calls, coalescer } = service()
  const [one, two] = [coalescer.publish([ready('a')], later), coalescer.publish([ready('b')], later)]
  calls[0]?.answer()
  await one
  calls[1]?.answer([])
  const [outcome] = await two
  t.equal(outcome?.ok, false)
  if (outcome?.ok === false) t.match(outcome.error, { retryable: true, reason: 'no_answer' })
})

t.test('a call carries at most the service\'s bytes; an entry over the limit is refused before any call', async t => {
  const { calls, coalescer } = service({}, 100)
  const first = coalescer.publish([ready('first', 10)], later)
  const big = coalescer.publish([ready('big', 101)], later)
  const rest = coalescer.publish(Array.from({ length: 5 }, (_, i) => ready(`m${i}`, 40)), later)
  const [refusal] = await big
  t.equal(refusal?.ok, false)
  if (refusal?.ok === false) t.match(refusal.error, { tooLarge: true, reason: 'too_large', message: /101 bytes; SQS takes at most 100/ })
  t.same(calls.map(c => c.entries), [['first'], ['m0', 'm1'], ['m2', 'm3']], 'two of 40 bytes a call; the fifth waits')
  calls[0]?.answer()
  await first
  t.same(calls.at(-1)?.entries, ['m4'])
  for (const c of calls.slice(1)) c.answer()
  t.equal((await rest).length, 5)
  t.notOk(calls.some(c => c.entries.includes('big')), 'never sent')
})

t.test('FIFO: a group is never in two calls at once, and keeps its order whatever order calls return in', async t => {
  const { calls, coalescer } = service({ callsInFlight: 2 })
  const answered = new Set<Call>()
  let overlaps = 0
  const out = () => calls.filter(c => !answered.has(c))
  const checkOut = () => {
    const groups = out().flatMap(c => [...new Set(c.entries.map(e => e.split(':')[0]))])
    if (new Set(groups).size !== groups.length) overlaps++
  }
  const answers: Promise<PublishOutcome[]>[] = []
  // 120 events in seven groups, in bursts of 30; the calls out answered newest first.
  for (let burst = 0; burst < 4; burst++) {
    for (let i = 0; i < 30; i++) {
      const n = burst * 30 + i
      answers.push(coalescer.publish([ready(`g${n % 7}:${n}`, 10, `g${n % 7}`)], later))
      checkOut()
    }
    for (let guard = 0; guard < 50 && out().length > 0; guard++) {
      const [newest] = out().reverse()
      answered.add(newest as Call)
      newest?.answer()
      await tick()
      checkOut()
    }
  }
  await Promise.all(answers)
  t.ok(calls.some(c => new Set(c.entries.map(e => e.split(':')[0])).size > 1), 'calls did mix groups')
  t.equal(overlaps, 0, 'no two calls out at once had a group in common')
  const order = calls.flatMap(c => c.entries)
  t.equal(order.length, 120, 'each event sent once')
  t.ok(calls.some(c => c.entries.length > 5), 'calls did carry several')
  for (const g of ['g0', 'g1', 'g2', 'g3', 'g4', 'g5', 'g6']) {
    const seq = order.filter(e => e.startsWith(`${g}:`)).map(e => Number(e.split(':')[1]))
    t.same(seq, [...seq].sort((a, b) => a - b), `${g} sent in the order it arrived`)
  }
})

t.test('FIFO: two calls out at once never share a group', async t => {
  const { calls, coalescer } = service({ callsInFlight: 5 })
  // g1's first event is out; more g1 and g2 events arrive.
  const first = coalescer.publish([ready('g1:0', 10, 'g1')], later)
  const more = coalescer.publish([ready('g1:1', 10, 'g1'), ready('g2:0', 10, 'g2'), ready('g1:2', 10, 'g1')], later)
  t.same(calls.map(c => c.entries), [['g1:0'], ['g2:0']], 'g2 may go beside it; g1 waits for its call')
  calls[0]?.answer()
  await first
  t.same(calls.at(-1)?.entries, ['g1:1', 'g1:2'], 'then g1\'s next two, in order')
  calls[1]?.answer()
  calls[2]?.answer()
  await more
})

t.test('an event still waiting at its deadline is answered "timeout" and never sent', async t => {
  const { calls, coalescer } = service()
  const first = coalescer.publish([ready('out')], later)
  const late = coalescer.publish([ready('late')], Date.now() + 20)
  await new Promise(resolve => setTimeout(resolve, 40))
  calls[0]?.answer()
  await first
  const [outcome] = await late
  t.equal(outcome?.ok, false)
  if (outcome?.ok === false) t.match(outcome.error, { retryable: true, reason: 'timeout', answered: false })
  t.same(calls.map(c => c.entries), [['out']], 'never sent: a retry cannot double it')
})

t.test('a linger holds a call with room for company while the queue is busy; a lone event after a quiet spell goes at once', async t => {
  const { calls, coalescer } = service({ lingerMs: 50 })
  const lone = coalescer.publish([ready('lone')], later)
  t.same(calls.map(c => c.entries), [['lone']], 'nothing was sent for a while: at once')
  const answers = [coalescer.publish([ready('a')], later), coalescer.publish([ready('b')], later)]
  calls[0]?.answer()
  await lone
  answers.push(coalescer.publish([ready('c')], later))
  t.equal(calls.length, 1, 'a call just ended: the next one waits for company')
  await new Promise(resolve => setTimeout(resolve, 120))
  t.same(calls.map(c => c.entries), [['lone'], ['a', 'b', 'c']], 'one call for the three')
  calls[1]?.answer()
  await Promise.all(answers)
  const full = coalescer.publish(Array.from({ length: 10 }, (_, i) => ready(`f${i}`)), later)
  t.equal(calls.length, 3, 'ten at once: sent without lingering')
  calls[2]?.answer()
  await full
  await new Promise(resolve => setTimeout(resolve, 80))
  const quiet = coalescer.publish([ready('after')], later)
  t.equal(calls.length, 4, 'after a quiet spell longer than the linger: at once again')
  calls[3]?.answer()
  await quiet
})

t.test('AWS_BATCH_MAX_ENTRIES=1: each event its own call', async t => {
  const { calls, coalescer } = service({ maxEntries: 1 })
  const answers = Array.from({ length: 5 }, (_, i) => coalescer.publish([ready(`e${i}`)], later))
  t.same(calls.map(c => c.entries), [['e0'], ['e1'], ['e2'], ['e3'], ['e4']], 'a call of one is full: none waits')
  for (const c of calls) c.answer()
  await Promise.all(answers)
})

t.test('close answers what still waits, without sending it', async t => {
  const { calls, coalescer } = service()
  const first = coalescer.publish([ready('out')], later)
  const waiting = coalescer.publish([ready('w')], later)
  coalescer.close()
  const [outcome] = await waiting
  t.equal(outcome?.ok, false)
  calls[0]?.answer()
  await first
  t.same(calls.map(c => c.entries), [['out']])
})

t.test('a call has the time its entries have left: the earliest deadline, so none is delivered after its caller gave up', async t => {
  const { calls, coalescer } = service()
  const first = coalescer.publish([ready('a')], Date.now() + 5000)
  const soon = coalescer.publish([ready('b')], Date.now() + 800)
  const last = coalescer.publish([ready('c')], Date.now() + 5000)
  t.ok((calls[0]?.timeoutMs ?? 0) > 4000, 'a lone call: its own deadline')
  await new Promise(resolve => setTimeout(resolve, 300))
  calls[0]?.answer()
  await first
  t.same(calls[1]?.entries, ['b', 'c'])
  const left = calls[1]?.timeoutMs ?? Infinity
  t.ok(left <= 500 && left > 0, `the shared call is cut at b's deadline (${left} ms left), not given a fresh one`)
  calls[1]?.answer()
  await Promise.all([soon, last])
})

t.test('a linger never runs into a deadline: an event with less time left than the linger goes at once', async t => {
  const { calls, coalescer } = service({ lingerMs: 1000 })
  const first = coalescer.publish([ready('first')], later)
  calls[0]?.answer()
  await first
  const answer = coalescer.publish([ready('hurry')], Date.now() + 500)
  t.same(calls.map(c => c.entries), [['first'], ['hurry']], 'busy queue, but sent at once')
  calls[1]?.answer()
  t.same(await answer, [{ ok: true }])
})

t.test('a throwing observer does not stall the queue', async t => {
  let throws = true
  const { calls, coalescer } = service({ onCall: () => { if (throws) { throws = false; throw new Error('observer bug') } } })
  const [outcome] = await coalescer.publish([ready('a')], later)
  t.equal(outcome?.ok, false, 'that call\'s entry fails, answered')
  const next = coalescer.publish([ready('b')], later)
  t.same(calls.map(c => c.entries), [['b']], 'the next lone event goes at once: nothing left counted as out')
  calls[0]?.answer()
  t.same(await next, [{ ok: true }])
})

t.test(`at most ${MAX_CALLS_OUT} calls out at once, full ones included`, async t => {
  const { calls, coalescer } = service()
  const answers = coalescer.publish(Array.from({ length: 1000 }, (_, i) => ready(`e${i}`)), later)
  t.equal(calls.length, MAX_CALLS_OUT, 'the rest wait')
  for (let answered = 0; answered < calls.length; answered++) {
    calls[answered]?.answer()
    await tick()
    t.ok(calls.length - answered - 1 <= MAX_CALLS_OUT, 'never more out')
  }
  t.equal((await answers).length, 1000)
  t.equal(calls.length, 100, 'a hundred full calls in all')
})

// The heartbeat the gateway asks RabbitMQ for (AMQP_HEARTBEAT_SECONDS): what the broker reports
// for the gateway's connection, so a silent network is noticed in seconds, not the server's 60.
import t from 'tap'
import { gateway } from '../attacks/gateway-process.js'
import { withHeartbeat } from '../../src/brokers/rabbitmq/connection.js'
import { cleanupExchange, rabbitmqctl, rabbitSkip, takeRabbitMqTurn, uniqueName } from './rabbit-helper.js'

const skip = await rabbitSkip()

t.test('withHeartbeat: asked for unless the URL names its own', async t => {
  t.equal(withHeartbeat('amqp://u:p@h:5672', 5), 'amqp://u:p@h:5672?heartbeat=5')
  t.equal(withHeartbeat('amqp://u:p@h:5672/v?frameMax=8192', 5), 'amqp://u:p@h:5672/v?frameMax=8192&heartbeat=5')
  t.equal(withHeartbeat('amqp://h?heartbeat=30', 5), 'amqp://h?heartbeat=30')
  t.equal(withHeartbeat('amqp://h', undefined), 'amqp://h')
})

/** The heartbeat timeouts of the broker's client connections, as RabbitMQ reports them. */
async function timeouts (): Promise<string[]> {
  const out = await rabbitmqctl('list_connections', 'timeout', '--no-table-headers', '--quiet')
  return out.split('\n').map(l => l.trim()).filter(l => l !== '')
}

t.test('the gateway\'s connection has the heartbeat it asked for', { skip }, async t => {
  await takeRabbitMqTurn(t)
  const before = await timeouts()
  t.notOk(before.includes('7'), 'no connection with 7 s before')
  const exchange = uniqueName('heartbeat')
  cleanupExchange(t, exchange)
  const gw = await gateway(t, { BROKER: 'rabbitmq', AMQP_EXCHANGE: exchange, AMQP_HEARTBEAT_SECONDS: '7' })
  let now: string[] = []
  for (let i = 0; i < 50 && !now.includes('7'); i++) {
    now = await timeouts()
    if (!now.includes('7')) await new Promise(resolve => setTimeout(resolve, 200)) // the broker's view catches up
  }
  t.ok(now.includes('7'), `a connection with a 7 s heartbeat (${now.join(', ')})`)
  t.equal((await fetch(`${gw.base}/health/ready`)).status, 200)
})

import { createHash } from 'node:crypto'
import t from 'tap'
import { NativeMd5 } from '../../src/brokers/aws/md5.js'

// The SQS client's body check uses this MD5: it must give what SQS computes (RFC 1321), for the
// text and bytes the SDK hands it.
const hex = async (h: NativeMd5) => Buffer.from(await h.digest()).toString('hex')

t.test('RFC 1321 vectors, as text and as bytes', async t => {
  for (const [input, want] of [['', 'd41d8cd98f00b204e9800998ecf8427e'], ['abc', '900150983cd24fb0d6963f7d28e17f72'],
    ['message digest', 'f96b697d7cb7938d525a2f31aaf161d0']]) {
    const text = new NativeMd5()
    text.update(input as string)
    t.equal(await hex(text), want)
    const bytes = new NativeMd5()
    bytes.update(new TextEncoder().encode(input as string))
    t.equal(await hex(bytes), want)
  }
})

t.test('UTF-8 text, a view into a larger buffer, an ArrayBuffer, and reset', async t => {
  const body = '{"transcript":"Grüße, 通话 ☎"}'
  const want = createHash('md5').update(Buffer.from(body, 'utf8')).digest('hex')
  const h = new NativeMd5()
  h.update(body)
  t.equal(await hex(h), want)
  const big = Buffer.concat([Buffer.from('xx'), Buffer.from(body), Buffer.from('yy')])
  const view = new NativeMd5()
  view.update(new Uint8Array(big.buffer, big.byteOffset + 2, big.length - 4))
  t.equal(await hex(view), want, 'only the view\'s bytes')
  const ab = new NativeMd5()
  ab.update(new TextEncoder().encode(body).buffer)
  t.equal(await hex(ab), want)
  const r = new NativeMd5()
  r.update('junk')
  r.reset()
  r.update(body)
  t.equal(await hex(r), want, 'reset starts again')
})

import t, { type Test } from 'tap'
import type { Page } from 'playwright-core'
import { buildApp } from '../../src/app.js'
import { inBrowser, skipBrowser as skip } from '../browser.js'
import { TENANT, testConfig } from '../helper.js'

/** A gateway on a free port and a Chromium page, both closed when the test ends. */
async function gatewayInBrowser (t: Test): Promise<{ base: string, page: Page }> {
  const app = await buildApp(testConfig(t))
  t.teardown(() => app.close())
  return inBrowser(t, app)
}

t.test('Swagger UI: a developer opens /docs, tries call.ended with its example and gets 202', { skip }, async t => {
  const { base, page } = await gatewayInBrowser(t)
  await page.goto(`${base}/docs/`)

  // every catalog type is listed as an operation
  await page.locator('.opblock').first().waitFor()
  const paths = await page.locator('.opblock-summary-path').allInnerTexts()
  for (const type of ['survey.completed', 'call.ended', 'batch.processing.completed', 'evaluation.failed']) {
    t.ok(paths.some(p => p.replace(/\u200b/g, '') === `/v1/events/${type}`), `${type} is listed`)
  }

  const op = page.locator('#operations-comms-publish_call_ended')
  await op.locator('.opblock-summary').click()
  // tryItOutEnabled: the form is editable as soon as the operation opens
  const body = await op.locator('textarea.body-param__text').inputValue({ timeout: 10000 })
  t.match(JSON.parse(body), { call_id: 'call-7f3a9c', outcome: 'callback_requested' }, 'the example is pre-filled')
  await op.getByRole('button', { name: 'Execute' }).click()
  const status = op.locator('.live-responses-table tbody .response-col_status').first()
  await status.waitFor()
  t.equal((await status.innerText()).trim(), '202', 'Try it out publishes the example')

  if (process.env.EVG_SCREENSHOT) await page.screenshot({ path: process.env.EVG_SCREENSHOT, fullPage: false })
  const stored = await (await fetch(`${base}/v1/events?type=call.ended`, {
    headers: { 'x-tenant-id': TENANT }
  })).json() as { events: unknown[] }
  t.equal(stored.events.length, 1, 'the event is in the local store')
})

t.test('a person who opens the gateway\'s address in a browser reaches the docs', { skip }, async t => {
  const { base, page } = await gatewayInBrowser(t)
  const home = await page.goto(`${base}/`)
  t.equal(home?.status(), 200, 'not a 404 problem')
  t.same(
    await page.getByRole('link').allInnerTexts(),
    ['/docs', '/openapi.json', '/docs/asyncapi', '/asyncapi.json', '/v1/event-types', '/health/ready', '/metrics']
  )
  await page.getByRole('link', { name: '/docs', exact: true }).click()
  await page.locator('.opblock').first().waitFor()
  t.match(page.url(), /\/docs\/?$/, 'the link leads to Swagger UI, with the operations listed')
})

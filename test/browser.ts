import { existsSync } from 'node:fs'
import type { FastifyInstance } from 'fastify'
import type { Test } from 'tap'
import { chromium, type Page } from 'playwright-core'

// A real browser for the pages' tests: Debian's Chromium, headless, driven by playwright-core.

export const CHROMIUM = '/usr/bin/chromium'
// CI installs Chromium, so there its absence is a failure, not a skip.
export const skipBrowser = !existsSync(CHROMIUM) && !process.env.CI ? 'Chromium not installed (apt-get install chromium)' : false

/** `app` listening on a free port, and a Chromium page; both closed when the test ends (the app by its owner). */
export async function inBrowser (t: Test, app: FastifyInstance): Promise<{ base: string, page: Page }> {
  await app.listen({ port: 0, host: '127.0.0.1' })
  const base = `http://127.0.0.1:${(app.server.address() as { port: number }).port}`
  const browser = await chromium.launch({
    executablePath: CHROMIUM,
    args: ['--headless', '--no-sandbox', '--disable-gpu', '--disable-background-networking', '--disable-component-update', '--no-first-run']
  })
  t.teardown(() => browser.close())
  return { base, page: await browser.newPage() }
}

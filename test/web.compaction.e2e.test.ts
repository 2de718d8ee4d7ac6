/**
 * Browser test of long sessions (issue 14): where the model's memory was compacted, the conversation keeps every
 * message and shows a marker, "Earlier messages summarised for the model", that opens the summary the model saw; a
 * compaction made live by the scripted model (TAPE_CONTEXT_TOKENS small) shows the same marker with the offline
 * summary. Driven in Debian's chromium against the real server process, like test/web.features.e2e.test.ts.
 */
import { describe, expect } from "bun:test"
import { join } from "node:path"
import { browserSuite, browserUnavailable, composer, ready, send, shot, waitCompleted } from "./support/browser.ts"

const unavailable = browserUnavailable()
if (unavailable) console.warn(`web compaction e2e tests SKIPPED: ${unavailable}`)

const words = (n: number, seed: string) => Array.from({ length: n }, (_, i) => `${seed}${i % 9}w${i}`).join(" ")

describe.skipIf(unavailable !== null)("long sessions in the UI (issue 14)", () => {
  const suite = browserSuite()
  const { e2e, serve, open } = suite

  e2e("an imported compacted tape: every message is shown, and the marker opens the summary", async () => {
    const s = await serve({ turns: [] })
    const page = await open(s.url)
    await page.getByTestId("import-input").setInputFiles(join(import.meta.dir, "tapes", "long-compacted.jsonl"))
    await page.getByTestId("title").filter({ hasText: "(imported)" }).waitFor()
    await ready(page)
    const marker = page.getByTestId("compaction")
    await marker.waitFor()
    expect(await marker.getAttribute("data-status")).toBe("compacted")
    expect(await marker.locator("summary").innerText()).toContain("Earlier messages summarised for the model")
    // Closed, the summary is not shown; opened, it is, as the model saw it.
    expect(await page.getByTestId("compaction-summary").isVisible()).toBe(false)
    await marker.locator("summary").click()
    await page.getByTestId("compaction-summary").waitFor({ state: "visible" })
    expect(await page.getByTestId("compaction-summary").innerText()).toContain("comets (from a notes file: tails point away from the sun)")
    // Nothing left the conversation: the first message is still there, above the marker.
    expect(await page.getByTestId("user-message").first().innerText()).toContain("Tell me something short about tides")
    expect(await page.getByTestId("user-message").count()).toBe(14)
    await shot(page, "compaction-imported")
  })

  e2e("a live session past its budget: the scripted model's compaction shows its marker and the offline summary", async () => {
    const turns = Array.from({ length: 12 }, (_, i) => ({ text: `Reply ${i}: ${words(120, "r")}`, chunkChars: 256, delayMs: 0 }))
    const s = await serve({ turns }, { env: { TAPE_CONTEXT_TOKENS: "2500" } })
    const page = await open(s.url)
    for (let i = 0; i < 6 && (await page.getByTestId("compaction").count()) === 0; i++) {
      await send(page, `Message ${i}: ${words(40, "m")}`)
      await page.locator('[data-testid="assistant-message"][data-status="completed"]').nth(i).waitFor()
    }
    const marker = page.getByTestId("compaction").first()
    await page.locator('[data-testid="compaction"][data-status="compacted"]').first().waitFor()
    await marker.locator("summary").click()
    const summary = page.getByTestId("compaction-summary").first()
    await summary.waitFor({ state: "visible" })
    expect(await summary.innerText()).toContain("Earlier in this conversation:")
    expect(await summary.innerText()).toContain("user: Message 0:")
    // The session goes on after it.
    await composer(page).waitFor()
    await shot(page, "compaction-live")
    void waitCompleted
  })
})

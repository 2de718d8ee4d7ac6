/**
 * Browser tests of the server features' UI (issue 13, phase 2; issue 12 item 5): retry and regenerate, edit and
 * resend with branches, sessions (rename, search, delete, no empty rows, import badges), invalid calls and the loop
 * the runtime stops, the schema check of edited args, the tools panel, the model picker, the whole request in the
 * memory tab and approvals reopened after an import. Driven like a person in Debian's chromium against the real
 * server process (a scripted model, or a fake OpenAI-compatible provider of the test's own over real HTTP), on
 * desktop and at 390 px where it matters. Screenshots go to test/artifacts/ (features-*.png).
 */
import { afterEach, describe, expect, test } from "bun:test"
import { writeFileSync } from "node:fs"
import { join } from "node:path"
import type { Page } from "playwright-core"
import {
  answer,
  assistant,
  browserSuite,
  browserUnavailable,
  composer,
  connected,
  countIs,
  evalTurn,
  type FakeProvider,
  fakeModel,
  fakeModelEnv,
  holdableSocket,
  ready,
  ROOT,
  send,
  sessionOf,
  shot,
  SIZES,
  slow,
  texts,
  waitCompleted
} from "./support/browser.ts"
import { serverScript } from "./support/mcpServer.ts"

const unavailable = browserUnavailable()
if (unavailable) console.warn(`web features e2e tests SKIPPED: ${unavailable}`)

/** The sessions the server has, newest first (as the list route answers). */
const sessionsOn = async (url: string, query = ""): Promise<Array<{ session: string; title: string; forkedFrom?: { session: string; seq: number }; importedFrom?: unknown }>> => {
  const res = await fetch(new URL(`/api/sessions${query}`, url))
  return ((await res.json()) as { sessions: Array<{ session: string; title: string }> }).sessions
}

/** The tape of a session, decoded line by line. */
const tapeOf = async (url: string, session: string): Promise<Array<Record<string, unknown>>> => {
  const res = await fetch(new URL(`/api/sessions/${encodeURIComponent(session)}/events?after=0`, url))
  return (await res.text())
    .split("\n")
    .filter((l) => l !== "")
    .map((l) => JSON.parse(l) as Record<string, unknown>)
}

/** Waits until the page shows another session than `old` (its hash changed and the new tape is folded). */
const movedFrom = async (page: Page, old: string) => {
  await page.waitForFunction((o) => location.hash !== "" && !location.hash.endsWith(`=${encodeURIComponent(o)}`), old, { polling: 50 })
  await ready(page)
}

describe.skipIf(unavailable !== null)("the server features' UI (issue 13 phase 2, issue 12 item 5)", () => {
  const suite = browserSuite()
  const { e2e, serve, newPage, open, temp } = suite
  const fakes: Array<FakeProvider> = []
  afterEach(() => {
    for (const f of fakes.splice(0)) f.stop()
  })
  const fake = (...args: Parameters<typeof fakeModel>) => {
    const f = fakeModel(...args)
    fakes.push(f)
    return f
  }

  for (const size of SIZES) {
    e2e(`Retry (${size.name}): a failed reply offers Retry, runs again from the same memory, and stays marked`, async () => {
      const provider = fake((n, body) => (n === 1 ? { status: 400, error: "the provider refused this request" } : { text: n === 2 ? "Second time lucky." : `Take ${n}: ${JSON.stringify(body["model"])}` }))
      const s = await serve(undefined, { env: fakeModelEnv(provider) })
      const page = await open(s.url, { mobile: size.mobile })
      await send(page, "hello there")
      const failed = page.locator('[data-testid="assistant-message"][data-status="failed"]')
      await failed.getByTestId("failed-mark").waitFor()
      const retry = failed.getByTestId("retry")
      expect(await retry.innerText()).toContain("Retry")
      await shot(page, `features-failed-retry-${size.name}`)
      await retry.click()
      await waitCompleted(page, 0, "Second time lucky")
      // The old reply stays, marked; the new one says it ran again; Retry moved to the new one (as Regenerate).
      expect(await failed.getAttribute("data-retried")).toBe("true")
      await failed.getByTestId("retried-mark").waitFor()
      expect(await failed.getByTestId("retry").count()).toBe(0)
      const secondTurn = await page.locator('[data-testid="assistant-message"][data-status="completed"]').getAttribute("data-turn")
      const second = page.locator(`[data-testid="assistant-message"][data-turn="${secondTurn}"]`)
      await second.getByTestId("retry-of").waitFor()
      expect(await second.getByTestId("retry").innerText()).toContain("Regenerate")
      // Same memory: the retry sent the same messages the failed turn had sent.
      expect(provider.requests[1]?.body["messages"]).toEqual(provider.requests[0]?.body["messages"])
      const started = (await tapeOf(s.url, sessionOf(page))).filter((e) => e.type === "TurnStarted")
      expect(started.map((e) => e.retryOf ?? null)).toEqual([null, started[0]?.turnId])
      // Regenerate the last reply: a third request, the second reply marked as run again.
      await second.getByTestId("retry").click()
      await page.locator('[data-testid="assistant-message"][data-status="completed"]').filter({ hasText: "Take 3" }).waitFor()
      expect(await second.getAttribute("data-retried")).toBe("true")
      await countIs(page, "assistant-message", 3)
      expect(await page.getByTestId("retry").count()).toBe(1)
      await shot(page, `features-regenerated-${size.name}`)
    })
  }

  e2e("Retry refused: 'busy' and 'not the last reply' are worded for people", async () => {
    const s = await serve({ turns: [answer("First answer."), slow(), answer("Third.")] })
    const watcher = await newPage()
    const socket = await holdableSocket(watcher)
    const page = await open(s.url)
    await send(page, "first")
    await waitCompleted(page, 0, "First answer")
    await watcher.goto(page.url())
    await connected(watcher)
    await ready(watcher)
    await waitCompleted(watcher, 0, "First answer")
    // The watcher does not hear what happens next: its Regenerate is stale when it is pressed.
    socket.hold()
    await send(page, "second, slowly")
    await socket.heldUntil("TurnStarted")
    await watcher.getByTestId("retry").click()
    const error = watcher.getByTestId("retry-error")
    await error.waitFor()
    const said = await error.innerText()
    expect([
      "The session is busy (a reply streams, or a tool call runs or waits for approval); try again when it is idle.",
      "Only the last reply can be run again, and only before a new message follows it."
    ]).toContain(said)
    expect(said).not.toMatch(/busy\b.*turn-|not_last_turn/)
    socket.release()
    // Once it hears, the stale button is gone and the new last reply has it.
    await watcher.locator('[data-testid="assistant-message"][data-status="completed"]').nth(1).waitFor()
    expect(await watcher.getByTestId("retry").count()).toBe(1)
    expect(await assistant(watcher, 0).getByTestId("retry").count()).toBe(0)
  })
})

if (unavailable) test.skip(`web features e2e tests skipped: ${unavailable}`, () => undefined)

/**
 * Browser tests of the chat people expect (issue 13): each defect a new user hit and each feature, driven like a
 * person in Debian's chromium against the real server process, on desktop and at 390 px where it matters.
 * Screenshots of the main states go to test/artifacts/ (ux-*.png). Skipped, saying why, without chromium.
 */
import { describe, expect, test } from "bun:test"
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
  focused,
  holdableSocket,
  ready,
  send,
  sessionOf,
  shot,
  SIZES,
  slow,
  texts,
  twoExchanges,
  waitCompleted
} from "./support/browser.ts"

const unavailable = browserUnavailable()
if (unavailable) console.warn(`web ux e2e tests SKIPPED: ${unavailable}`)

/** A turn asking for several tool calls at once. */
const evalCalls = (...codes: Array<string>) => ({
  text: "Let me compute these.",
  toolCalls: codes.map((code) => ({ tool: "eval", args: { code }, description: `Evaluate ${code}` })),
  chunkChars: 4,
  delayMs: 5
})

/** Every notice's box against every visible control outside the notices: the ones they overlap. */
const coveredControls = (page: Page) =>
  page.evaluate(() => {
    const boxes = [...document.querySelectorAll('[data-testid="notice"]')].map((n) => n.getBoundingClientRect())
    const hits: Array<string> = []
    for (const el of document.querySelectorAll<HTMLElement>("button, textarea, input, select, a[href]")) {
      if (el.closest('[data-testid="notices"]')) continue
      const r = el.getBoundingClientRect()
      if (r.width === 0 || r.height === 0) continue
      for (const b of boxes) {
        if (r.left < b.right && r.right > b.left && r.top < b.bottom && r.bottom > b.top) hits.push(el.getAttribute("aria-label") ?? el.textContent ?? el.tagName)
      }
    }
    return hits
  })

/** The element at the centre of a test id's box is that element (or inside it): nothing lies over it. */
const onTop = (page: Page, testId: string) =>
  page.evaluate((id) => {
    const el = document.querySelector(`[data-testid="${id}"]`)
    if (!el) return false
    const r = el.getBoundingClientRect()
    const top = document.elementFromPoint(r.left + r.width / 2, r.top + r.height / 2)
    return top !== null && (top === el || el.contains(top))
  }, testId)

/** A session made through the API (one event: SessionCreated), as another client would. */
const createSession = async (url: string): Promise<string> => {
  const res = await fetch(new URL("/api/sessions", url), { method: "POST" })
  return ((await res.json()) as { session: string }).session
}

const clipboard = (page: Page) => page.evaluate(() => navigator.clipboard.readText())

describe.skipIf(unavailable !== null)("the chat people expect (issue 13)", () => {
  const suite = browserSuite()
  const { e2e, serve, newPage, open, temp } = suite

  /** A page on `url` whose websocket runs through `holdableSocket`, connected and caught up. */
  const openHeld = async (url: string) => {
    const page = await newPage()
    const socket = await holdableSocket(page)
    await page.goto(url)
    await connected(page)
    await ready(page)
    return { page, socket }
  }

  for (const size of SIZES) {
    e2e(`defect 1 (${size.name}): a notice covers no control, and can be dismissed`, async () => {
      const s = await serve({ turns: [answer("First answer.")] })
      const page = await open(s.url, { mobile: size.mobile })
      await send(page, "hello")
      await waitCompleted(page, 0, "First answer")
      if (size.mobile) await page.getByTestId("menu").click()
      await page.getByRole("button", { name: /^Fork the current session/ }).click()
      const notice = page.getByTestId("notice").filter({ hasText: "Forked at event" })
      await notice.waitFor()
      await composer(page).fill("typing after the fork")
      expect(await coveredControls(page)).toEqual([])
      expect(await onTop(page, "send")).toBe(true)
      await shot(page, `ux-notice-${size.name}`)
      await notice.getByTestId("dismiss-notice").click()
      await countIs(page, "notice", 0)
    })
  }

  e2e("defect 2: approving twice, or after another tab did, is quiet information, not a red failure", async () => {
    const s = await serve({ turns: [evalTurn("2 ** 10"), answer("It is 1024.")] })
    const a = await open(s.url)
    await send(a, "What is 2 to the 10th?")
    await a.getByTestId("approve").waitFor()
    // Tab B sees the card, but A's approval reaches it only after B clicked too.
    const b = await newPage()
    const bSocket = await holdableSocket(b)
    await b.goto(a.url())
    await connected(b)
    await b.getByTestId("approve").waitFor()
    bSocket.hold()
    await a.getByTestId("approve").click()
    await a.getByTestId("tool-output").filter({ hasText: "1024" }).waitFor()
    await b.getByTestId("approve").click()
    bSocket.release()
    await b.getByTestId("tool-output").filter({ hasText: "1024" }).waitFor()
    await b.getByTestId("already-decided").filter({ hasText: "Already approved by another tab/client." }).waitFor()
    expect(await b.getByTestId("decided-by").innerText()).toBe("approved by another tab/client")
    expect(await a.getByTestId("decided-by").innerText()).toBe("approved by you")
    expect(await b.getByTestId("nack").count()).toBe(0)
    expect(await b.locator('[data-testid="notice"][data-kind="error"]').count()).toBe(0)
    expect(await b.locator('[role="alert"]').count()).toBe(0)
    await shot(b, "ux-raced-approve")
  })

  e2e("defect 2: a quick second approve in the same tab says 'already approved by you'", async () => {
    const s = await serve({ turns: [evalTurn("6 * 7"), answer("It is 42.")] })
    const { page, socket } = await openHeld(s.url)
    await send(page, "six times seven")
    await page.getByTestId("approve").waitFor()
    socket.hold()
    await page.getByTestId("approve").click()
    // The first click was acked; the card has not heard of it yet, so a second click gets through.
    await page.locator('[data-testid="approve"]:not([disabled])').waitFor()
    await page.getByTestId("approve").click()
    socket.release()
    await page.getByTestId("already-decided").filter({ hasText: "Already approved by you." }).waitFor()
    await waitCompleted(page, 1, "42")
    expect(await page.locator('[data-testid="tool-card"][data-status="succeeded"]').count()).toBe(1)
    expect(await page.locator('[role="alert"]').count()).toBe(0)
  })

  e2e("defect 2: Stop pressed just after the reply ended by itself is quiet too", async () => {
    const s = await serve({ turns: [{ text: "A short reply that ends by itself.", chunkChars: 2, delayMs: 20 }] })
    const { page, socket } = await openHeld(s.url)
    await send(page, "say something short")
    await page.getByTestId("streaming-cursor").waitFor()
    socket.hold()
    await socket.heldUntil('"TurnCompleted"')
    await page.getByTestId("stop").click()
    await page.locator('[data-testid="stop"]:not([disabled])').waitFor()
    socket.release()
    await waitCompleted(page, 0, "ends by itself")
    expect(await page.getByTestId("notice").count()).toBe(0)
    expect(await page.locator('[role="alert"]').count()).toBe(0)
  })

  e2e("defect 3: a card being edited resets when another tab approves, and shows the args that ran", async () => {
    const s = await serve({ turns: [evalTurn("2 ** 10"), answer("It is 1024.")] })
    const a = await open(s.url)
    await send(a, "What is 2 to the 10th?")
    await a.getByTestId("approve").waitFor()
    const b = await open(a.url())
    await b.getByTestId("edit").click()
    await b.getByTestId("edit-args").fill('{"code": "999"}')
    await a.getByTestId("approve").click()
    await b.getByTestId("tool-output").filter({ hasText: "1024" }).waitFor()
    expect(await b.getByTestId("edit-args").count()).toBe(0)
    expect(await b.getByTestId("tool-code").innerText()).toContain("2 ** 10")
    expect(await b.getByTestId("tool-card").innerText()).not.toContain("999")
    await shot(b, "ux-edit-reset")
  })

  for (const size of SIZES) {
    e2e(`defect 4 (${size.name}): an unknown session link says so and offers a new session`, async () => {
      const s = await serve({ turns: [answer("Fresh start.")] })
      const page = await newPage({ mobile: size.mobile })
      await page.goto(`${s.url}#session=doesnotexist`)
      await page.getByTestId("session-not-found").filter({ hasText: "Session not found" }).waitFor()
      expect(await composer(page).count()).toBe(0)
      await shot(page, `ux-not-found-${size.name}`)
      await page.getByTestId("start-new").click()
      // A new chat: the server gets it with its first message.
      await page.waitForFunction(() => location.hash === "", undefined, { polling: 50 })
      await ready(page)
      await composer(page).waitFor()
      expect(await page.getByTestId("session-not-found").count()).toBe(0)
      if (!size.mobile) expect(await focused(page)).toBe("composer")
      await send(page, "hi")
      await waitCompleted(page, 0, "Fresh start")
      await page.waitForFunction(() => location.hash.startsWith("#session="), undefined, { polling: 50 })
    })
  }

  e2e("defect 4: a malformed or oversized session link is not found either, and the page keeps working", async () => {
    const s = await serve({ turns: [] })
    const page = await newPage()
    for (const hash of ["%E0%A4%A", "x".repeat(300), "%00%0A"]) {
      await page.goto(`${s.url}#session=${hash}`)
      await page.getByTestId("session-not-found").waitFor()
      expect(await composer(page).count()).toBe(0)
    }
    await page.getByTestId("start-new").click()
    await ready(page)
    await composer(page).waitFor()
  })

  for (const size of SIZES) {
    e2e(`defect 5 (${size.name}): a dropped connection shows in the chat; actions wait; typed text stays`, async () => {
      const data = temp("data")
      const first = await serve({ turns: [slow()] }, { store: "sqlite", data })
      const page = await open(first.url, { mobile: size.mobile })
      await send(page, "Tell me a long story")
      await page.getByTestId("streaming-cursor").waitFor()
      await composer(page).fill("a follow-up I am still writing")
      await first.stop("SIGKILL")
      await page.getByTestId("connection-banner").waitFor()
      await page.getByTestId("lost-mark").filter({ hasText: "connection lost — waiting for the server" }).waitFor()
      expect(await page.getByTestId("streaming-cursor").count()).toBe(0)
      expect(await page.getByTestId("send").isDisabled()).toBe(true)
      expect(await page.getByTestId("stop").isDisabled()).toBe(true)
      expect(await page.getByTestId("new-session").isDisabled()).toBe(true)
      expect(await composer(page).inputValue()).toBe("a follow-up I am still writing")
      await shot(page, `ux-disconnected-${size.name}`)
      // The script entry comes from the tape: the interrupted reply was entry 0, the next turn plays entry 1.
      await serve({ turns: [slow(), answer("Back.")] }, { store: "sqlite", data, port: first.port })
      await connected(page)
      await page.getByTestId("connection-banner").waitFor({ state: "detached" })
      await page.locator('[data-testid="assistant-message"][data-status="interrupted"]').waitFor()
      expect(await page.getByTestId("lost-mark").count()).toBe(0)
      expect(await composer(page).inputValue()).toBe("a follow-up I am still writing")
      await page.getByTestId("send").click()
      await waitCompleted(page, 0, "Back")
    })
  }

  e2e("defect 6: each busy period starts on Queue, even after 'Interrupt & send' was chosen", async () => {
    const s = await serve({ turns: [slow(), slow(), answer("Done.")] })
    const page = await open(s.url)
    await send(page, "first")
    await page.getByTestId("streaming-cursor").waitFor()
    expect(await page.getByTestId("mode-queue").isChecked()).toBe(true)
    await page.getByTestId("mode-interrupt").check()
    expect(await page.getByTestId("send").innerText()).toBe("Interrupt & send")
    await send(page, "second, interrupting")
    // The interrupt ended that period; the new turn is a new one, and it starts on Queue.
    await page.getByTestId("interrupted-mark").waitFor()
    await page.locator('[data-testid="assistant-message"][data-status="streaming"]').waitFor()
    expect(await page.getByTestId("mode-queue").isChecked()).toBe(true)
    expect(await page.getByTestId("send").innerText()).toBe("Queue")
    await page.getByTestId("mode-interrupt").check()
    await page.getByTestId("stop").click()
    await page.locator('[data-testid="assistant-message"][data-status="interrupted"]').nth(1).waitFor()
    await send(page, "third")
    await waitCompleted(page, 0, "Done")
    expect(await page.getByTestId("mode-queue").count()).toBe(0)
  })

  e2e("defect 7 (mobile): the drawer closes after + New and on a tap outside; travel controls fit; the title reads", async () => {
    const s = await serve({ turns: [answer("Short answer."), answer("Another.")] })
    const page = await open(s.url, { mobile: true })
    await send(page, "hello there")
    await waitCompleted(page, 0, "Short answer")
    const title = page.getByTestId("title")
    expect(await title.innerText()).toBe("hello there")
    const fits = await title.evaluate((el) => el.scrollWidth <= el.clientWidth && el.clientWidth >= 120)
    expect(fits).toBe(true)
    await shot(page, "ux-mobile-chat")
    const drawer = page.locator("#sessions")
    await page.getByTestId("menu").click()
    await drawer.waitFor({ state: "visible" })
    const before = sessionOf(page)
    await page.getByTestId("new-session").click()
    await page.waitForFunction((old) => !location.hash.includes(old), before, { polling: 50 })
    await drawer.waitFor({ state: "hidden" })
    expect(await onTop(page, "composer")).toBe(true)
    await shot(page, "ux-mobile-new")
    await page.getByTestId("menu").click()
    await drawer.waitFor({ state: "visible" })
    await page.mouse.click(370, 420)
    await drawer.waitFor({ state: "hidden" })
    // Travel on the first session: the controls fit in two lines at most, one line per button.
    await page.goBack()
    await waitCompleted(page, 0, "Short answer")
    await page.getByRole("button", { name: "Previous event" }).click()
    await page.getByTestId("back-to-live").waitFor()
    for (const id of ["fork-here", "back-to-live"]) {
      const box = await page.getByTestId(id).boundingBox()
      expect(box).not.toBeNull()
      expect(box!.height).toBeLessThan(40)
      expect(box!.x + box!.width).toBeLessThanOrEqual(390)
    }
    expect((await page.getByTestId("scrubber").boundingBox())!.width).toBeGreaterThan(250)
    expect((await page.getByTestId("scrubber-bar").boundingBox())!.height).toBeLessThan(100)
    await shot(page, "ux-mobile-travel")
  })

  e2e("defect 8: code blocks in replies are highlighted, named and copyable; an image is a placeholder, never loaded", async () => {
    const reply = [
      "Here is some code:",
      "",
      "```python",
      "def square(x):",
      "    return x * x  # a comment",
      "```",
      "",
      "and some JavaScript:",
      "",
      "```js",
      "const twice = (n) => n * 2",
      "```",
      "",
      "![a sleeping cat](https://example.com/cat.png)"
    ].join("\n")
    const s = await serve({ turns: [{ text: reply, chunkChars: 16, delayMs: 5 }] })
    const page = await open(s.url)
    const remote: Array<string> = []
    page.on("request", (r) => {
      if (!r.url().startsWith(s.url)) remote.push(r.url())
    })
    await send(page, "show me code")
    await waitCompleted(page, 0, "and some JavaScript")
    const blocks = page.getByTestId("code-block")
    await countIs(page, "code-block", 2)
    expect(await texts(page, "code-lang")).toEqual(["Python", "JavaScript"])
    expect(await blocks.nth(0).locator(".tok-kw").first().innerText()).toBe("def")
    expect(await blocks.nth(0).locator(".tok-com").innerText()).toBe("# a comment")
    await blocks.nth(1).getByTestId("copy").click()
    await blocks.nth(1).locator('[data-testid="copy"][data-state="copied"]').waitFor()
    expect(await clipboard(page)).toBe("const twice = (n) => n * 2")
    const placeholder = assistant(page, 0).locator("[data-image-placeholder]")
    expect(await placeholder.innerText()).toContain("a sleeping cat")
    expect(await placeholder.locator("a").getAttribute("href")).toBe("https://example.com/cat.png")
    expect(await page.locator("img").count()).toBe(0)
    expect(remote).toEqual([])
    await shot(page, "ux-code-blocks")
  })

  e2e("defect 12: focus is in the composer on load and after + New; after a decision it goes to the next card, then the composer", async () => {
    // The scripted model keys its entries by turn id, which every session's first turn shares: one session talks.
    const s = await serve({ turns: [evalCalls("1 + 1", "2 + 2"), answer("2 and 4.")] })
    const page = await open(`${s.url}#session=${await createSession(s.url)}`)
    expect(await focused(page)).toBe("composer")
    await page.getByTestId("send").focus()
    await page.getByTestId("new-session").click()
    await page.waitForFunction(() => location.hash === "", undefined, { polling: 50 })
    await page.waitForFunction(() => document.activeElement?.getAttribute("data-testid") === "composer", undefined, { polling: 50 })
    await send(page, "two sums")
    await countIs(page, "approve", 2)
    await page.getByTestId("approve").first().click()
    await page.waitForFunction(
      () => document.activeElement?.getAttribute("data-testid") === "approve" && document.activeElement.closest('[data-testid="tool-card"]') === document.querySelectorAll('[data-testid="tool-card"]')[1],
      undefined,
      { polling: 50 }
    )
    await page.keyboard.press("Enter")
    await page.waitForFunction(() => document.activeElement?.getAttribute("data-testid") === "composer", undefined, { polling: 50 })
    await waitCompleted(page, 1, "2 and 4")
  })

  e2e("defect 15: inspecting an event keeps the live chat; time travel only when asked; the JSON is shown once", async () => {
    const { page } = await twoExchanges(suite)
    await page.locator('[data-testid="event-row"]').last().click()
    await page.getByTestId("event-details").waitFor()
    expect(await page.getByTestId("inspector").count()).toBe(0)
    expect(await composer(page).count()).toBe(1)
    await countIs(page, "user-message", 2)
    expect(await page.getByTestId("event-json").count()).toBe(1)
    expect(await page.getByTestId("event-json").innerText()).toContain('"TurnCompleted"')
    // A person asks for the past: now the chat is as it was.
    await page.locator('[data-testid="event-row"][data-type="TurnStarted"]').first().click()
    await page.getByTestId("travel-here").click()
    await page.getByTestId("inspector").waitFor()
    await countIs(page, "user-message", 1)
    expect(await page.getByTestId("event-json").count()).toBe(1)
    await page.getByTestId("back-to-live").click()
    await countIs(page, "user-message", 2)
  })

  e2e("defect 16: '1 event', actors in words (you, another tab/client, policy: auto), no raw user ids", async () => {
    const workspace = temp("workspace")
    const s = await serve({ turns: [{ text: "Listing.", toolCalls: [{ tool: "list_files", args: { path: "." } }] }, answer("Nothing there.")] }, { env: { TAPE_WORKSPACE: workspace } })
    const page = await open(`${s.url}#session=${await createSession(s.url)}`)
    expect(await page.getByTestId("scrub-pos").innerText()).toBe("live · 1 event")
    await send(page, "what files are there?")
    await page.locator('[data-testid="tool-card"]').getByTestId("decided-by").filter({ hasText: "approved by policy: auto" }).waitFor()
    await waitCompleted(page, 1, "Nothing there")
    const by = (p: Page, type: string) => p.locator(`[data-testid="event-row"][data-type="${type}"]`).first().getByTestId("event-by").innerText()
    expect(await by(page, "UserMessageAdded")).toBe("you")
    expect(await by(page, "ToolCallApproved")).toBe("policy: auto")
    expect(await page.locator('[data-testid="event-row"][data-type="AssistantDelta"]').count()).toBe(0)
    expect(await page.locator("body").innerText()).not.toContain("user:")
    const other = await open(page.url())
    expect(await by(other, "UserMessageAdded")).toBe("another tab/client")
    // "you" lasts across a reload of the tab.
    await page.reload()
    await ready(page)
    expect(await by(page, "UserMessageAdded")).toBe("you")
  })

  e2e("copies a message and a reply", async () => {
    const s = await serve({ turns: [answer("The **answer** is 4.")] })
    const page = await open(s.url)
    await send(page, "what is 2 + 2?")
    await waitCompleted(page, 0, "answer is 4")
    await page.getByTestId("user-message").hover()
    await page.getByTestId("user-message").getByTestId("copy").click()
    expect(await clipboard(page)).toBe("what is 2 + 2?")
    await assistant(page, 0).getByTestId("copy").click()
    await assistant(page, 0).locator('[data-testid="copy"][data-state="copied"]').waitFor()
    expect(await clipboard(page)).toBe("The **answer** is 4.")
  })

  e2e("offers 'Jump to latest' when scrolled up during a stream", async () => {
    const long = Array.from({ length: 60 }, (_, i) => `Paragraph ${i + 1} of a long streamed reply.`).join("\n\n")
    const s = await serve({ turns: [{ text: long, chunkChars: 12, delayMs: 30 }] })
    const page = await open(s.url)
    await send(page, "a long one please")
    await page.getByTestId("assistant-text").filter({ hasText: "Paragraph 20" }).waitFor()
    expect(await page.getByTestId("jump-latest").count()).toBe(0)
    await page.getByTestId("messages").evaluate((el) => el.scrollTo({ top: 0 }))
    await page.getByTestId("jump-latest").waitFor()
    await shot(page, "ux-streaming-scrolled-up")
    await page.getByTestId("jump-latest").click()
    await page.getByTestId("jump-latest").waitFor({ state: "detached" })
    const gap = await page.getByTestId("messages").evaluate((el) => el.scrollHeight - el.scrollTop - el.clientHeight)
    expect(gap).toBeLessThan(48)
    await waitCompleted(page, 0, "Paragraph 60")
  })

  e2e("'Approve all' approves every pending call", async () => {
    const s = await serve({ turns: [evalCalls("1 + 1", "2 + 2", "3 + 3"), answer("2, 4 and 6.")] })
    const page = await open(s.url)
    await send(page, "three sums")
    const bar = page.getByTestId("approve-all-bar")
    await bar.filter({ hasText: "3 tool calls wait for your approval" }).waitFor()
    await shot(page, "ux-approval")
    await page.getByTestId("approve-all").click()
    await waitCompleted(page, 1, "2, 4 and 6")
    expect(await page.locator('[data-testid="tool-card"][data-status="succeeded"]').count()).toBe(3)
    expect(await bar.count()).toBe(0)
  })

  e2e("Back and Forward move between sessions", async () => {
    const s = await serve({ turns: [answer("An answer.")] })
    const page = await open(s.url)
    await send(page, "alpha")
    await waitCompleted(page, 0, "An answer")
    const a = sessionOf(page)
    await page.getByTestId("new-session").click()
    await page.waitForFunction((old) => !location.hash.includes(old), a, { polling: 50 })
    await ready(page)
    await send(page, "beta")
    await page.getByTestId("user-message").filter({ hasText: "beta" }).waitFor()
    const b = sessionOf(page)
    await page.goBack()
    await page.getByTestId("user-message").filter({ hasText: "alpha" }).waitFor()
    expect(sessionOf(page)).toBe(a)
    expect(await texts(page, "user-message")).toEqual([expect.stringContaining("alpha")])
    await page.goForward()
    await page.getByTestId("user-message").filter({ hasText: "beta" }).waitFor()
    expect(sessionOf(page)).toBe(b)
    expect(await texts(page, "user-message")).toEqual([expect.stringContaining("beta")])
  })

  e2e("the timeline groups events by turn, folds deltas, filters by type and actor, and shows full type names", async () => {
    const s = await serve({ turns: [evalTurn("17 * 23"), answer("17 × 23 = 391, which is the answer.")] })
    const page = await open(s.url)
    await shot(page, "ux-empty")
    await send(page, "What is 17 * 23?")
    await page.getByTestId("approve").click()
    await waitCompleted(page, 1, "391")
    await countIs(page, "turn-row", 2)
    const deltas = page.getByTestId("deltas-row").first()
    expect(Number(await deltas.getAttribute("data-count"))).toBeGreaterThan(3)
    expect(await deltas.innerText()).toMatch(/AssistantDelta × \d+[\s\S]*characters/)
    expect(await page.locator('[data-testid="event-row"][data-type="AssistantDelta"]').count()).toBe(0)
    await deltas.click()
    await page.locator('[data-testid="event-row"][data-type="AssistantDelta"]').first().waitFor()
    // Full type names at 1280 px: no type is cut.
    const cut = await page.getByTestId("event-type").evaluateAll((els) => els.filter((e) => e.scrollWidth > e.clientWidth).map((e) => e.textContent))
    expect(cut).toEqual([])
    await shot(page, "ux-timeline-by-turn")
    await page.getByTestId("filters-toggle").click()
    const cutNames = await page.locator('[data-testid="filters"] .fname').evaluateAll((els) => els.filter((e) => e.scrollWidth > e.clientWidth).map((e) => e.textContent))
    expect(cutNames).toEqual([])
    await page.getByTestId("only-type-ToolCallRequested").click()
    await page.getByTestId("only-type-ToolExecutionSucceeded").click()
    await page.getByTestId("timeline-count").filter({ hasText: /^2 \// }).waitFor()
    expect(await page.locator('[data-testid="event-row"]').evaluateAll((els) => els.map((e) => e.getAttribute("data-type")))).toEqual([
      "ToolCallRequested",
      "ToolExecutionSucceeded"
    ])
    await countIs(page, "filter-chip", 2)
    await shot(page, "ux-timeline-filtered")
    await page.getByRole("button", { name: "Clear all filters" }).click()
    await page.getByTestId("hide-actor-model").click()
    await page.getByTestId("hide-actor-system").click()
    const who = await page.getByTestId("event-by").allInnerTexts()
    expect(new Set(who)).toEqual(new Set(["you", "a tool"]))
  })

  e2e("the activity panel shows what runs now and what waits for you", async () => {
    const s = await serve({ turns: [{ ...slow(), toolCalls: [{ tool: "eval", args: { code: "1 + 1" } }] }, answer("Two.")] })
    const page = await open(s.url)
    await send(page, "one plus one, slowly")
    await page.getByTestId("activity-model").filter({ hasText: /streaming turn-\d+/ }).waitFor()
    await shot(page, "ux-streaming")
    await page.getByTestId("activity-pending").filter({ hasText: "1 approval (eval)" }).waitFor()
    expect(await page.getByTestId("activity-model").innerText()).toContain("idle")
    await page.getByTestId("approve").click()
    await waitCompleted(page, 1, "Two")
    await page.getByTestId("activity-pending").filter({ hasText: "nothing" }).waitFor()
    expect(await page.getByTestId("activity-tools").innerText()).toContain("idle")
  })
})

if (unavailable) test.skip(`web ux e2e tests skipped: ${unavailable}`, () => undefined)

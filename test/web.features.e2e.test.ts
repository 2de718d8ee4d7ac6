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
      expect(started.map((e) => e.retryOf ?? null)).toEqual([null, started[0]?.turnId ?? "the first turn"])
      // Regenerate the last reply: a third request, the second reply marked as run again.
      await second.getByTestId("retry").click()
      await page.locator('[data-testid="assistant-message"][data-status="completed"]').filter({ hasText: "Take 3" }).waitFor()
      expect(await second.getAttribute("data-retried")).toBe("true")
      await countIs(page, "assistant-message", 3)
      expect(await page.getByTestId("retry").count()).toBe(1)
      await shot(page, `features-regenerated-${size.name}`)
    })
  }

  e2e("Retry: an interrupted reply offers Retry too; the retry streams again and ends", async () => {
    const s = await serve({ turns: [slow("A reply that streams slowly enough to be stopped, and then to be run again from the start.")] })
    const page = await open(s.url)
    await send(page, "go slowly")
    await page.getByTestId("streaming-cursor").waitFor()
    await page.getByTestId("stop").click()
    const stopped = page.locator('[data-testid="assistant-message"][data-status="interrupted"]')
    await stopped.getByTestId("interrupted-mark").waitFor()
    expect(await stopped.getByTestId("retry").innerText()).toContain("Retry")
    await stopped.getByTestId("retry").click()
    await waitCompleted(page, 0, "run again from the start")
    expect(await stopped.getAttribute("data-retried")).toBe("true")
  })

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

  for (const size of SIZES) {
    e2e(`Edit and resend (${size.name}): editing forks a branch; ‹ n / m › switches between them; nothing is lost`, async () => {
      const provider = fake()
      const s = await serve(undefined, { env: fakeModelEnv(provider) })
      const page = await open(s.url, { mobile: size.mobile })
      await send(page, "first question")
      await waitCompleted(page, 0, "You said: first question")
      await send(page, "second question")
      await waitCompleted(page, 1, "You said: second question")
      const original = sessionOf(page)
      expect(await page.getByTestId("branches").count()).toBe(0)

      // Edit the second message: a new session (a fork just before it) answers the new text.
      const second = page.getByTestId("user-message").nth(1)
      await second.hover()
      await second.getByTestId("edit-message").click()
      await second.getByTestId("edit-message-text").fill("second question, edited")
      await second.getByTestId("edit-message-send").click()
      await movedFrom(page, original)
      await waitCompleted(page, 1, "You said: second question, edited")
      const branch = sessionOf(page)
      expect(await texts(page, "user-message")).toEqual([expect.stringContaining("first question"), expect.stringContaining("second question, edited")])
      const edited = page.getByTestId("user-message").nth(1)
      await edited.getByTestId("branch-pos").filter({ hasText: "2 / 2" }).waitFor()
      // The first message has no siblings: only the second one branched.
      expect(await page.getByTestId("user-message").nth(0).getByTestId("branches").count()).toBe(0)
      await shot(page, `features-branches-${size.name}`)
      const forked = (await tapeOf(s.url, branch))[0]
      expect(forked?.forkedFrom).toEqual({ session: original, seq: (await tapeOf(s.url, original)).findIndex((e) => e.type === "UserMessageAdded" && e.text === "second question") })

      // ‹ goes back to the original line, untouched; › returns to the branch.
      await edited.getByTestId("branch-prev").click()
      await movedFrom(page, branch)
      expect(sessionOf(page)).toBe(original)
      await waitCompleted(page, 1, "You said: second question")
      expect(await texts(page, "user-message")).toEqual([expect.stringContaining("first question"), expect.stringContaining("second question")])
      await page.getByTestId("user-message").nth(1).getByTestId("branch-pos").filter({ hasText: "1 / 2" }).waitFor()
      await page.getByTestId("user-message").nth(1).getByTestId("branch-next").click()
      await movedFrom(page, original)
      expect(sessionOf(page)).toBe(branch)

      // Edit the first message inside the branch: the new branch is a fork of the session that wrote that prefix.
      const first = page.getByTestId("user-message").nth(0)
      await first.hover()
      await first.getByTestId("edit-message").click()
      await first.getByTestId("edit-message-text").fill("another start")
      await first.getByTestId("edit-message-text").press("Enter")
      await movedFrom(page, branch)
      await waitCompleted(page, 0, "You said: another start")
      const third = sessionOf(page)
      expect((await tapeOf(s.url, third))[0]?.forkedFrom).toEqual({ session: original, seq: 1 })
      await page.getByTestId("user-message").nth(0).getByTestId("branch-pos").filter({ hasText: "2 / 2" }).waitFor()
      // Every line is still there, each its own session, titled after where it came from.
      const titles = (await sessionsOn(s.url)).map((x) => x.title).sort()
      expect(titles).toEqual(["another start (fork @1)", "first question", `first question (fork @${forked?.forkedFrom && (forked.forkedFrom as { seq: number }).seq})`])
      await page.getByTestId("user-message").nth(0).getByTestId("branch-prev").click()
      await movedFrom(page, third)
      expect(sessionOf(page)).toBe(original)
      await waitCompleted(page, 1, "You said: second question")
    })
  }

  e2e("Sessions: no empty rows from a first visit or + New; rename; search by title and by text; fork and import badges", async () => {
    const s = await serve({ turns: [answer("An answer."), answer("Another answer.")] })
    const page = await open(s.url)
    // A first visit shows a new chat, which the server has not got yet; so does + New.
    expect(await page.getByTestId("session-row").count()).toBe(0)
    expect(await sessionsOn(s.url)).toEqual([])
    await page.getByTestId("new-session").click()
    await page.getByTestId("new-session").click()
    expect(await sessionsOn(s.url)).toEqual([])
    expect(sessionOf(page)).toBe("")
    await send(page, "alpha topic")
    await waitCompleted(page, 0, "An answer")
    expect((await sessionsOn(s.url)).map((x) => x.title)).toEqual(["alpha topic"])
    const alpha = sessionOf(page)
    await page.getByTestId("new-session").click()
    await send(page, "beta about cats")
    await waitCompleted(page, 0, "An answer")
    await send(page, "do you like dogs")
    await waitCompleted(page, 1, "Another answer")
    await countIs(page, "session-row", 2)
    const beta = sessionOf(page)

    // Rename another session than the shown one, from its row.
    const alphaRow = page.locator(`li:has([data-session="${alpha}"])`)
    await alphaRow.getByTestId("session-actions").click()
    await alphaRow.getByTestId("rename-session").click()
    await alphaRow.getByTestId("rename-input").fill("Renamed alpha")
    await alphaRow.getByTestId("rename-input").press("Enter")
    await alphaRow.getByTestId("session-title").filter({ hasText: "Renamed alpha" }).waitFor()
    expect((await tapeOf(s.url, alpha)).filter((e) => e.type === "SessionRenamed").map((e) => e.title)).toEqual(["Renamed alpha"])

    // Search: by title, by what was written, nothing found, cleared.
    const search = page.getByTestId("session-search")
    await search.fill("renamed")
    await page.getByTestId("search-status").filter({ hasText: "1 session with" }).waitFor()
    expect(await texts(page, "session-title")).toEqual(["Renamed alpha"])
    await search.fill("dogs")
    await page.getByTestId("search-status").filter({ hasText: "“dogs”" }).waitFor()
    expect(await texts(page, "session-title")).toEqual(["beta about cats"])
    await search.fill("zebra")
    await page.locator(".empty").filter({ hasText: "No session matches." }).waitFor()
    await shot(page, "features-sessions-search")
    await search.press("Escape")
    await countIs(page, "session-row", 2)

    // Import beta's tape: badged "imported" (not "fork"), titled as such.
    const file = join(temp("tape"), "beta.jsonl")
    writeFileSync(file, (await tapeOf(s.url, beta)).map((e) => JSON.stringify(e)).join("\n") + "\n")
    await page.getByTestId("import-input").setInputFiles(file)
    await page.getByTestId("title").filter({ hasText: "beta about cats (imported)" }).waitFor()
    const imported = page.locator('li:has([data-testid="session-row"][aria-current="true"])')
    await imported.getByTestId("badge-imported").waitFor()
    expect(await imported.getByTestId("badge-fork").count()).toBe(0)
    // Fork it from the sidebar: badged "fork", titled "… (fork @N)".
    await page.getByRole("button", { name: /Fork the current session at event/ }).click()
    await page.getByTestId("title").filter({ hasText: /^beta about cats \(fork @\d+\)$/ }).waitFor()
    await page.locator('li:has([data-testid="session-row"][aria-current="true"])').getByTestId("badge-fork").waitFor()
    await countIs(page, "session-row", 4)
    await shot(page, "features-sessions")
  })

  for (const size of SIZES) {
    e2e(`Sessions (${size.name}): delete asks first; a running one is stopped first; the shown one gives way`, async () => {
      const s = await serve({ turns: [slow(), answer("Done.")] })
      const page = await open(s.url, { mobile: size.mobile })
      await send(page, "keep this one")
      await page.getByTestId("stop").click()
      await page.getByTestId("interrupted-mark").waitFor()
      const kept = sessionOf(page)
      if (size.mobile) await page.getByTestId("menu").click()
      await page.getByTestId("new-session").click()
      await send(page, "a long one")
      await page.getByTestId("streaming-cursor").waitFor()
      const running = sessionOf(page)
      if (size.mobile) await page.getByTestId("menu").click()
      const row = page.locator(`li:has([data-session="${running}"])`)
      await row.getByTestId("session-actions").click()
      await row.getByTestId("delete-session").click()
      // Cancel keeps it.
      await row.getByRole("button", { name: "Cancel" }).click()
      expect(await row.getByTestId("delete-confirm").count()).toBe(0)
      await row.getByTestId("session-actions").click()
      await row.getByTestId("delete-session").click()
      await row.getByTestId("confirm-delete").click()
      // It runs: the server refuses (409 busy), and the page offers to stop it first.
      await row.getByTestId("stop-and-delete").waitFor()
      expect(await row.getByTestId("delete-confirm").innerText()).toContain("It is running or waiting for an approval")
      await shot(page, `features-delete-busy-${size.name}`)
      expect((await sessionsOn(s.url)).map((x) => x.session)).toContain(running)
      await row.getByTestId("stop-and-delete").click()
      await row.waitFor({ state: "detached" })
      expect((await fetch(new URL(`/api/sessions/${running}/events`, s.url))).status).toBe(404)
      // The shown session was deleted: the newest other one is shown.
      await page.waitForFunction((k) => location.hash.endsWith(`=${k}`), kept, { polling: 50 })
      await page.getByTestId("user-message").filter({ hasText: "keep this one" }).waitFor()
      expect((await sessionsOn(s.url)).map((x) => x.session)).toEqual([kept])
    })
  }

  e2e("Invalid tool calls show what the model sent; after three such replies the runtime stops the loop, and a message goes on", async () => {
    const bad = (n: number) => ({ text: `Attempt ${n}.`, toolCalls: [{ tool: "no_such_tool", args: { query: `try ${n}`, limit: [n, 10] } }], chunkChars: 8, delayMs: 5 })
    const s = await serve({ turns: [bad(1), bad(2), bad(3), answer("Back on track.")] })
    const page = await open(s.url)
    await send(page, "use a tool that does not exist")
    const stopped = page.getByTestId("loop-stopped")
    await stopped.waitFor()
    expect(await stopped.getAttribute("data-reason")).toBe("invalid_calls")
    expect(await stopped.innerText()).toContain("The runtime stopped the agent.")
    expect(await stopped.innerText()).toContain("last three replies asked only for tool calls that could not be made")
    const cards = page.locator('[data-testid="tool-card"][data-status="invalid"]')
    await countIs(page, "tool-card", 3)
    // What the model sent, not {}.
    const raw = await cards.nth(1).getByTestId("raw-args").innerText()
    expect(JSON.parse(raw)).toEqual({ query: "try 2", limit: [2, 10] })
    expect(await cards.nth(1).getByTestId("tool-error").innerText()).toContain("no_such_tool")
    // The loop is over: nothing runs, and the chat can go on.
    expect(await page.getByTestId("stop").count()).toBe(0)
    await shot(page, "features-loop-stopped")
    await send(page, "never mind")
    await waitCompleted(page, 3, "Back on track")
  })

  e2e("Edited args are checked against the tool's schema before they are sent, in words (defect 14)", async () => {
    const s = await serve({ turns: [evalTurn("1 + 1"), answer("Done.")] })
    const page = await open(s.url)
    await send(page, "compute")
    const card = page.getByTestId("tool-card")
    await card.getByTestId("tool-source").filter({ hasText: "built-in" }).waitFor()
    await card.getByTestId("edit").click()
    const box = card.getByTestId("edit-args")
    const error = card.getByTestId("edit-error")
    const approve = card.getByTestId("approve-edited")
    const cases: Array<[string, string]> = [
      ['["2 + 2"]', "The arguments must be a JSON object ({ … })."],
      ["{}", "These arguments do not fit eval: code: is missing (it is required)."],
      ['{"code": "2 + 2", "timeout": 3}', "These arguments do not fit eval: timeout: is not one of its arguments."],
      ['{"code": 5}', "These arguments do not fit eval: code: should be text."]
    ]
    for (const [text, said] of cases) {
      await box.fill(text)
      await error.filter({ hasText: said }).waitFor()
      expect(await approve.isDisabled()).toBe(true)
    }
    await shot(page, "features-schema-check")
    await box.fill('{"code": "2 + 2"}')
    await error.waitFor({ state: "detached" })
    await approve.click()
    await card.getByTestId("tool-output").filter({ hasText: "4" }).waitFor()
    await waitCompleted(page, 1, "Done")
    // Nothing refused reached the tape: one approval, with the args that fit.
    const approvals = (await tapeOf(s.url, sessionOf(page))).filter((e) => e.type === "ToolCallApproved")
    expect(approvals.map((e) => e.args)).toEqual([{ code: "2 + 2" }])
  })

  e2e("Without the catalogue the server's refusal of edited args is still worded for people (defect 14)", async () => {
    const s = await serve({ turns: [evalTurn("1 + 1"), answer("Done.")] })
    const page = await newPage()
    await page.route("**/api/tools", (route) => route.fulfill({ status: 503, contentType: "application/json", body: '{"error":{"code":"store_error","message":"down"}}' }))
    await page.goto(s.url)
    await connected(page)
    await ready(page)
    await send(page, "compute")
    const card = page.getByTestId("tool-card")
    await card.getByTestId("edit").click()
    await card.getByTestId("edit-args").fill('{"code": 5}')
    await card.getByTestId("approve-edited").click()
    const nack = card.getByTestId("nack")
    await nack.waitFor()
    expect(await nack.innerText()).toBe("The edited arguments do not fit the tool: code: should be text.")
    expect(await page.locator("body").innerText()).not.toMatch(/└─|readonly code|invalid_args/)
  })

  for (const size of SIZES) {
    e2e(`Tools panel (${size.name}): every tool with its source, policy and why it is not offered; MCP servers with their state; cards show the source`, async () => {
      const dir = temp("agent-config")
      const config = join(dir, "agent-tape.config.ts")
      writeFileSync(
        config,
        `import { defineConfig, tool, Schema } from "agent-tape"
export default defineConfig({
  tools: {
    notes: tool({
      description: "Read or write a note",
      args: Schema.Struct({ mode: Schema.Literal("read", "write"), key: Schema.String }),
      policy: (args) => (args.mode === "read" ? "auto" : "ask"),
      run: async ({ key }) => key
    })
  },
  mcpServers: { srv: { command: ${JSON.stringify(process.execPath)}, args: [${JSON.stringify(serverScript)}, "--hostile"] } }
})
`
      )
      const s = await serve(
        { turns: [{ text: "Echoing.", toolCalls: [{ tool: "mcp__srv__echo", args: { message: "hi there" } }] }, answer("It echoed.")] },
        { env: { TAPE_CONFIG: config, TAPE_WORKSPACE: join(dir, "ws") } }
      )
      const page = await open(s.url, { mobile: size.mobile })
      await page.getByTestId("open-tools").click()
      const panel = page.getByTestId("tools-panel")
      await panel.waitFor()
      const row = (name: string) => panel.locator(`[data-testid="tool-row"][data-tool="${name}"]`)
      await row("mcp__srv__echo").waitFor()
      expect(await row("eval").getByTestId("tool-row-source").innerText()).toBe("built-in")
      expect(await row("eval").getByTestId("tool-row-policy").innerText()).toBe("asks for approval")
      expect(await row("notes").getByTestId("tool-row-source").innerText()).toBe("your config")
      expect(await row("notes").getByTestId("tool-row-policy").innerText()).toBe("asks or not, by its arguments")
      expect(await row("read_file").getByTestId("tool-row-policy").innerText()).toBe("runs without asking")
      expect(await row("mcp__srv__echo").getByTestId("tool-row-source").innerText()).toBe("MCP: srv")
      // http_get cannot work with no host allowed: listed, not offered, and why.
      expect(await row("http_get").getAttribute("data-offered")).toBe("false")
      expect(await row("http_get").getByTestId("tool-row-reason").innerText()).toContain("no host is allowed")
      const server = panel.locator('[data-testid="server-row"][data-server="srv"]')
      expect(await server.getByTestId("server-state").innerText()).toBe("ready")
      expect(await server.innerText()).toMatch(/\d+ tools left out/)
      await shot(page, `features-tools-panel-${size.name}`)
      const width = await panel.evaluate((el) => el.getBoundingClientRect().width)
      expect(width).toBeLessThanOrEqual(size.mobile ? 390 : 560)
      await page.keyboard.press("Escape")
      await panel.waitFor({ state: "detached" })
      // A tool card says where its tool comes from.
      await send(page, "echo something")
      const card = page.getByTestId("tool-card")
      expect(await card.getByTestId("tool-source").innerText()).toBe("MCP: srv")
      await card.getByTestId("approve").click()
      await card.getByTestId("tool-output").filter({ hasText: "hi there" }).waitFor()
      await waitCompleted(page, 1, "It echoed")
    })
  }

  for (const size of SIZES) {
    e2e(`Model picker (${size.name}): a new chat and a session pick a model; each reply names the model that wrote it`, async () => {
      const provider = fake()
      const s = await serve(undefined, { env: fakeModelEnv(provider) })
      const page = await open(s.url, { mobile: size.mobile })
      const picker = page.getByTestId("model-picker")
      expect(await picker.inputValue()).toBe("fake-model")
      expect(await picker.locator("option").allInnerTexts()).toEqual(["fake-model (default)", "built-in model"])
      const box = await picker.boundingBox()
      expect(box !== null && box.x + box.width <= (size.mobile ? 390 : 1280)).toBe(true)
      // Picked in a new chat: chosen when its first message creates the session.
      await picker.selectOption("offline")
      await send(page, "hello")
      await page.locator('[data-testid="assistant-message"][data-status="completed"]').first().waitFor()
      expect(await assistant(page, 0).getByTestId("reply-model").innerText()).toBe("built-in model")
      expect(provider.requests.length).toBe(0)
      const session = sessionOf(page)
      const tape = await tapeOf(s.url, session)
      expect(tape.filter((e) => e.type === "ModelChosen").map((e) => e.model)).toEqual(["offline"])
      expect(tape.findIndex((e) => e.type === "ModelChosen")).toBeLessThan(tape.findIndex((e) => e.type === "UserMessageAdded"))
      expect(await picker.inputValue()).toBe("offline")
      // Picked in the session: the next reply is the provider's, and says so.
      await picker.selectOption("fake-model")
      await page.waitForFunction(() => document.querySelector<HTMLSelectElement>('[data-testid="model-picker"]')?.value === "fake-model", undefined, { polling: 50 })
      await send(page, "and now?")
      await waitCompleted(page, 1, "You said: and now?")
      expect(await assistant(page, 1).getByTestId("reply-model").innerText()).toBe("fake-model")
      expect(provider.requests.map((r) => r.body["model"])).toEqual(["fake-model"])
      expect((await tapeOf(s.url, session)).filter((e) => e.type === "TurnStarted").map((e) => e.model)).toEqual(["offline", "fake-model"])
      await shot(page, `features-model-picker-${size.name}`)
    })
  }

  e2e("The memory tab shows the whole request the turn sent: system prompt with the tools, every message, the tool results", async () => {
    const s = await serve({ turns: [evalTurn("17 * 23"), answer("It is 391.")] })
    const page = await open(s.url)
    await send(page, "What is 17 * 23?")
    await page.getByTestId("approve").click()
    await waitCompleted(page, 1, "It is 391")
    // The second turn's request: after the tool result.
    await page.locator('[data-testid="event-row"][data-type="TurnStarted"]').nth(1).click()
    await page.getByTestId("travel-here").click()
    await page.getByTestId("inspector").waitFor()
    await page.getByTestId("tab-memory").click()
    await page.getByTestId("prompt-message").first().waitFor()
    const roles = await page.getByTestId("prompt-message").evaluateAll((els) => els.map((e) => e.getAttribute("data-role")))
    expect(roles[0]).toBe("system")
    expect(roles).toContain("user")
    expect(roles).toContain("assistant")
    const all = await page.getByTestId("prompt").innerText()
    expect(all).toContain("What turn turn-")
    const system = await page.getByTestId("prompt-message").first().innerText()
    expect(system).toContain("- eval:")
    expect(system).toContain("Answer in JSON")
    expect(all).toContain("What is 17 * 23?")
    expect(all).toContain("<tool_result")
    expect(all).toContain("391")
    await shot(page, "features-memory-request")
    // The raw JSON is folded until asked for.
    const raw = page.getByTestId("prompt-raw")
    expect(await raw.evaluate((d) => (d as HTMLDetailsElement).open)).toBe(false)
    await raw.locator("summary").click()
    expect(await raw.locator("pre").innerText()).toContain('"messages"')
    // The first turn's request has no tool result yet.
    await page.locator('[data-testid="event-row"][data-type="TurnStarted"]').first().click()
    await page.getByTestId("prompt-summary").filter({ hasText: "turn-3" }).waitFor()
    expect(await page.getByTestId("prompt").innerText()).not.toContain("<tool_result")
  })

  e2e("An approval from an imported tape no longer counts: the card says so and asks again; approving runs it once", async () => {
    const s = await serve({ turns: [answer("unused"), answer("It was 4.")] })
    const page = await open(s.url)
    const S = "copied"
    const line = (seq: number, by: string, event: Record<string, unknown>) => JSON.stringify({ session: S, seq, at: 1_700_000_000_000 + seq * 1000, by, ...event })
    const tape = [
      line(1, "system", { type: "SessionCreated", title: "Add two and two" }),
      line(2, "user:alice", { type: "UserMessageAdded", messageId: "msg-2", text: "add two and two" }),
      line(3, "system", { type: "TurnStarted", turnId: "turn-3", model: "scripted" }),
      line(4, "model", { type: "AssistantDelta", turnId: "turn-3", text: "Let me add them." }),
      line(5, "model", { type: "ToolCallRequested", turnId: "turn-3", callId: "call-5", tool: "eval", args: { code: "2 + 2" } }),
      line(6, "model", { type: "TurnCompleted", turnId: "turn-3" }),
      line(7, "user:alice", { type: "ToolCallApproved", callId: "call-5" })
    ]
    const file = join(temp("tape"), "approved.jsonl")
    writeFileSync(file, tape.join("\n") + "\n")
    await page.getByTestId("import-input").setInputFiles(file)
    await page.getByTestId("title").filter({ hasText: "Add two and two (imported)" }).waitFor()
    const card = page.getByTestId("tool-card")
    await card.getByTestId("reopened").waitFor()
    expect(await card.getAttribute("data-status")).toBe("pending")
    expect(await card.getByTestId("reopened").innerText()).toContain("Approved before this session was imported, and not run")
    expect(await card.getByTestId("reopened").innerText()).toContain("runs only if you approve it again")
    await shot(page, "features-reopened")
    await card.getByTestId("approve").click()
    await card.getByTestId("tool-output").filter({ hasText: "4" }).waitFor()
    expect(await card.getByTestId("reopened").count()).toBe(0)
    await waitCompleted(page, 1, "It was 4")
    const events = await tapeOf(s.url, sessionOf(page))
    expect(events.filter((e) => e.type === "ToolExecutionStarted").length).toBe(1)
    expect(events.filter((e) => e.type === "ToolCallReopened").length).toBe(1)
  })
})

if (unavailable) test.skip(`web features e2e tests skipped: ${unavailable}`, () => undefined)

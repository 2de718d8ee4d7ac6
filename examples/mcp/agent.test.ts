// Specs for the example agent, the way you would write them for your own (`bun test examples/mcp`): the rules with
// given/when/then over your config's tools, and a whole session with a scripted model through the real pipeline.
import { describe, expect, test } from "bun:test"
import { Effect } from "effect"
import { decideContextFor, given, withAgent } from "agent-tape/testing"
import config from "./agent-tape.config.ts"

// The MCP server is not started by these specs: they are about the memory tool and its policy.
const { mcpServers: _mcp, ...withoutMcp } = config
const ctx = decideContextFor(withoutMcp)

describe("the example agent", () => {
  test("recall runs by itself; remember waits for approval", () => {
    const streaming = [
      { type: "SessionCreated" as const },
      { type: "UserMessageAdded" as const, messageId: "msg-2", text: "hi", by: "user:me" as const },
      { type: "TurnStarted" as const, turnId: "turn-3", model: "scripted" }
    ]
    given(streaming, ctx)
      .when({ type: "model_tool_call", turnId: "turn-3", tool: "memory", args: { action: "recall" } }, "model")
      .then([
        { type: "ToolCallRequested", turnId: "turn-3", callId: "call-4", tool: "memory", args: { action: "recall" } },
        { type: "ToolCallApproved", callId: "call-4", by: "policy:auto" }
      ])
    given(streaming, ctx)
      .when({ type: "model_tool_call", turnId: "turn-3", tool: "memory", args: { action: "remember", key: "door", fact: "4921" } }, "model")
      .then([{ type: "ToolCallRequested", turnId: "turn-3", callId: "call-4", tool: "memory", args: { action: "remember", key: "door", fact: "4921" } }])
  })

  test("a session: remember (approved), then recall; the model hears both results", async () => {
    const script = {
      turns: [
        { text: "Noting it.", toolCalls: [{ tool: "memory", args: { action: "remember", key: "door", fact: "4921" } }] },
        { text: "Checking.", toolCalls: [{ tool: "memory", args: { action: "recall", key: "door" } }] },
        { text: "The door code is 4921." }
      ]
    }
    const tape = await withAgent({ config: withoutMcp, model: script }, (agent) =>
      Effect.gen(function* () {
        const session = yield* agent.create()
        yield* agent.submit(session, { type: "send_message", text: "remember the door code 4921" })
        const asked = yield* agent.waitFor(session, (t) => t.some((e) => e.type === "TurnCompleted"))
        const call = asked.find((e) => e.type === "ToolCallRequested")
        if (call?.type !== "ToolCallRequested") throw new Error("no call")
        yield* agent.submit(session, { type: "approve", callId: call.callId })
        return yield* agent.waitFor(session, (t) => t.filter((e) => e.type === "TurnCompleted").length === 3)
      })
    )
    const outputs = tape.flatMap((e) => (e.type === "ToolExecutionSucceeded" ? [e.output] : []))
    expect(outputs).toEqual(["remembered door", "4921"])
    expect(tape.filter((e) => e.type === "ToolCallApproved").map((e) => e.by)).toEqual(["user:test", "policy:auto"])
  })
})

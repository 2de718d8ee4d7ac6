// The final parse's fast path (issue 15): a reply that is the answer format in strict JSON with no tool call is read
// without BAML's parser, and must read exactly as BAML reads it. Seeded (PLAIN_REPLY_SEED replays a run) and bounded.
import { describe, expect, test } from "bun:test"
import fc from "fast-check"
import { b } from "../baml_client/index.ts"
import { plainReply } from "../src/llm/LlmClient.ts"
import { toolTypesFor } from "../src/llm/toolTypes.ts"
import { builtinParameters } from "./support/toolParams.ts"

const seed = Number(process.env.PLAIN_REPLY_SEED ?? 15_015)
const tb = toolTypesFor(["eval", "read_file"].map((name) => ({ name, description: `the ${name} tool`, parameters: builtinParameters(name) })))

/** Texts with what JSON escapes and what markdown and the answer format themselves use. */
const text = fc.string({ unit: fc.constantFrom("a", "Z", " ", "\n", "\t", "\"", "\\", "{", "}", "[", "]", ":", ",", "é", "😀", "`", "*", "#", "\u0000", "\u2028"), maxLength: 40 })
const spacing = fc.constantFrom("", " ", "\n", "  \n")

describe("plainReply (the final parse without BAML)", () => {
  test("for every strict answer with no tool call it reads what BAML's parser reads", () => {
    fc.assert(
      fc.property(text, spacing, fc.boolean(), (t, ws, withCalls) => {
        const raw = `${ws}{${ws}"text":${ws}${JSON.stringify(t)}${withCalls ? `,${ws}"toolCalls":${ws}[]` : ""}${ws}}${ws}`
        const fast = plainReply(raw)
        expect(fast).toBeDefined()
        const baml = b.parse.Chat(raw, { tb })
        expect({ text: fast?.text, toolCalls: fast?.toolCalls }).toEqual({ text: baml.text, toolCalls: (baml as { toolCalls?: unknown }).toolCalls ?? [] })
      }),
      { seed, numRuns: 300 }
    )
  })

  test("every other shape is left to BAML's parser", () => {
    const others = [
      'Sure! {"text":"hi","toolCalls":[]}',
      '```json\n{"text":"hi","toolCalls":[]}\n```',
      '{"text":"hi","toolCalls":[{"tool":"eval","args":{"code":"1"}}]}',
      '{"text":"hi","toolCalls":[],"mood":"happy"}',
      '{"text":42,"toolCalls":[]}',
      '{"toolCalls":[]}',
      '{"text":"hi",}',
      '{text:"hi"}',
      '["hi"]',
      ""
    ]
    for (const raw of others) expect([raw, plainReply(raw)]).toEqual([raw, undefined])
  })
})

// The SSE decoder against the WHATWG reference parser of @effect/experimental (what it replaced, issue 15): the same
// events for any event stream, whatever the line ends and however the network splits it. Seeded and bounded.
import { describe, expect, test } from "bun:test"
import { Sse } from "@effect/experimental"
import fc from "fast-check"
import { makeSseDecoder, type SseEvent } from "../src/llm/sse.ts"

/**
 * What the reference parser makes of the whole stream at once (closed by a blank line, as `end` does), with its line
 * ends written as LF: the reference mishandles a lone CR (it merges "data:\rdata:\n\n" into one line end too few).
 */
const reference = (text: string): Array<SseEvent> => {
  const out: Array<SseEvent> = []
  const parser = Sse.makeParser((e) => {
    if (e._tag === "Event") out.push({ event: e.event, data: e.data })
  })
  parser.feed(`${text.replace(/\r\n?/g, "\n")}\n\n`)
  return out
}

const decoded = (parts: ReadonlyArray<string>): Array<SseEvent> => {
  const d = makeSseDecoder()
  const out: Array<SseEvent> = []
  for (const p of parts) out.push(...d.push(p))
  out.push(...d.end())
  return out
}

const lineEnd = fc.constantFrom("\n", "\r\n", "\r")
const value = fc.string({ unit: fc.constantFrom("a", "b", " ", ":", "é", "{", "}", "\""), maxLength: 12 })
const line = fc.oneof(
  fc.tuple(fc.constantFrom("data", "event", "id", "retry", "other", "dat"), fc.constantFrom(":", ": ", ":  ", ""), value).map(([f, c, v]) => `${f}${c}${c === "" ? "" : v}`),
  value.map((v) => `:${v}`),
  fc.constant("")
)
const stream = fc.array(fc.tuple(line, lineEnd).map(([l, e]) => l + e), { maxLength: 40 }).map((ls) => ls.join(""))

/** `text` cut at the given fractions (sorted, deduplicated). */
const split = (text: string, cuts: ReadonlyArray<number>): Array<string> => {
  const at = [...new Set(cuts.map((c) => Math.floor(c * text.length)))].sort((a, b) => a - b)
  const parts: Array<string> = []
  let from = 0
  for (const i of at) {
    parts.push(text.slice(from, i))
    from = i
  }
  parts.push(text.slice(from))
  return parts
}

describe("SSE decoder (property)", () => {
  test("the same events as the reference parser for any stream, any line ends (LF, CRLF, CR) and any split", () => {
    fc.assert(
      fc.property(stream, fc.array(fc.double({ min: 0, max: 1, noNaN: true }), { maxLength: 8 }), (text, cuts) => {
        expect(decoded(split(text, cuts))).toEqual(reference(text))
      }),
      { seed: 15, numRuns: 2000 }
    )
  })

  test("a line longer than one chunk is read whole once it ends", () => {
    const long = "x".repeat(100_000)
    const parts = split(`data: ${long}\n\n`, Array.from({ length: 50 }, (_, i) => i / 50))
    expect(decoded(parts)).toEqual([{ event: "message", data: long }])
  })
})

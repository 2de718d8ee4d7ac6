/**
 * An incremental scanner for the `text` of a raw model reply, so that streaming the text costs O(chunk) per chunk
 * instead of re-parsing the whole reply (see `makeReplyAssembler` in LlmClient.ts). It knows one shape only: after optional whitespace
 * and an optional ```` ```json ```` / ```` ``` ```` fence, a JSON object whose first key is `"text"` with a string
 * value. Fed the raw reply chunk by chunk, it returns the newly decoded characters of that string (every JSON escape,
 * `\uXXXX` and surrogate pairs included; an escape split across chunks, or a high surrogate whose partner has not
 * arrived yet, waits for the next chunk) and says when the string has closed. Anything else (`"toolCalls"` first,
 * prose before the JSON, another key, a bad escape) makes it `unknown`: the caller then parses the reply with BAML
 * as before. It decides nothing about the reply: BAML's parse of the whole reply stays the truth.
 */

/**
 * - `prefix`: still reading what comes before the text string (nothing decided yet);
 * - `text`: inside the text string;
 * - `closed`: the text string has ended (tool calls, if any, follow);
 * - `unknown`: the reply does not have the expected shape.
 */
export type ReplyScanState = "prefix" | "text" | "closed" | "unknown"

export interface ReplyScanner {
  readonly state: ReplyScanState
  /** Feeds the next raw chunk; returns the text it adds ("" when none, and always "" once closed or unknown). */
  readonly push: (chunk: string) => string
}

// Phases of the scan (character by character before the string; in runs inside it).
const LEAD = 0 // whitespace, then "```" or "{"
const FENCE = 1 // the rest of "```"
const LANG = 2 // an optional "json" after the fence
const PRE_OBJECT = 3 // whitespace, then "{"
const PRE_KEY = 4 // whitespace, then '"'
const KEY = 5 // text"
const PRE_COLON = 6 // whitespace, then ":"
const PRE_VALUE = 7 // whitespace, then '"'
const STRING = 8 // inside the text string
const ESCAPE = 9 // after a backslash
const HEX = 10 // inside \uXXXX
const CLOSED = 11
const UNKNOWN = 12

const KEY_TEXT = 'text"'
const LANG_JSON = "json"

const isSpace = (c: number): boolean => c === 0x20 || c === 0x0a || c === 0x0d || c === 0x09
const isHighSurrogate = (c: number): boolean => c >= 0xd800 && c <= 0xdbff

const hexValue = (c: number): number => {
  if (c >= 0x30 && c <= 0x39) return c - 0x30
  if (c >= 0x61 && c <= 0x66) return c - 0x57
  if (c >= 0x41 && c <= 0x46) return c - 0x37
  return -1
}

const SIMPLE_ESCAPES: Readonly<Record<string, string>> = { '"': '"', "\\": "\\", "/": "/", b: "\b", f: "\f", n: "\n", r: "\r", t: "\t" }

/** A fresh scanner for one raw reply (a retry of the call needs a new one). */
export const makeReplyScanner = (): ReplyScanner => {
  let phase = LEAD
  /** Progress inside the fence, the language tag, the key, or the hex digits of an escape. */
  let count = 0
  let hex = 0
  /** A decoded high surrogate held back until the next chunk shows what follows it. */
  let held = ""

  const stateOf = (): ReplyScanState =>
    phase === UNKNOWN ? "unknown" : phase === CLOSED ? "closed" : phase >= STRING ? "text" : "prefix"

  /** One character before the string; returns whether the scan goes on. */
  const lead = (c: number): boolean => {
    switch (phase) {
      case LEAD:
        if (isSpace(c)) return true
        if (c === 0x60) {
          phase = FENCE
          count = 1
          return true
        }
        if (c === 0x7b) {
          phase = PRE_KEY
          return true
        }
        break
      case FENCE:
        if (c === 0x60) {
          if (++count === 3) {
            phase = LANG
            count = 0
          }
          return true
        }
        break
      case LANG:
        if (count < LANG_JSON.length && (c | 0x20) === LANG_JSON.charCodeAt(count)) {
          count++
          return true
        }
        if (count !== 0 && count !== LANG_JSON.length) break
        if (isSpace(c)) {
          phase = PRE_OBJECT
          return true
        }
        if (c === 0x7b) {
          phase = PRE_KEY
          return true
        }
        break
      case PRE_OBJECT:
        if (isSpace(c)) return true
        if (c === 0x7b) {
          phase = PRE_KEY
          return true
        }
        break
      case PRE_KEY:
        if (isSpace(c)) return true
        if (c === 0x22) {
          phase = KEY
          count = 0
          return true
        }
        break
      case KEY:
        if (c === KEY_TEXT.charCodeAt(count)) {
          if (++count === KEY_TEXT.length) phase = PRE_COLON
          return true
        }
        break
      case PRE_COLON:
        if (isSpace(c)) return true
        if (c === 0x3a) {
          phase = PRE_VALUE
          return true
        }
        break
      case PRE_VALUE:
        if (isSpace(c)) return true
        if (c === 0x22) {
          phase = STRING
          return true
        }
        break
    }
    phase = UNKNOWN
    return false
  }

  const push = (chunk: string): string => {
    if (phase === CLOSED || phase === UNKNOWN) return ""
    const n = chunk.length
    let i = 0
    while (i < n && phase < STRING) {
      if (!lead(chunk.charCodeAt(i))) return ""
      i++
    }
    let out = held
    held = ""
    while (i < n) {
      if (phase === STRING) {
        // A run of plain characters up to the next quote or backslash.
        let j = i
        let c = 0
        while (j < n) {
          c = chunk.charCodeAt(j)
          if (c === 0x22 || c === 0x5c) break
          j++
        }
        if (j > i) out += chunk.slice(i, j)
        if (j === n) break
        i = j + 1
        if (c === 0x22) {
          phase = CLOSED
          return out
        }
        phase = ESCAPE
      } else if (phase === ESCAPE) {
        const ch = chunk[i]!
        i++
        if (ch === "u") {
          phase = HEX
          count = 0
          hex = 0
          continue
        }
        const simple = SIMPLE_ESCAPES[ch]
        if (simple === undefined) {
          phase = UNKNOWN
          return out
        }
        out += simple
        phase = STRING
      } else {
        // HEX
        const v = hexValue(chunk.charCodeAt(i))
        i++
        if (v < 0) {
          phase = UNKNOWN
          return out
        }
        hex = hex * 16 + v
        if (++count === 4) {
          out += String.fromCharCode(hex)
          phase = STRING
        }
      }
    }
    // Keep a pair together: a trailing high surrogate waits for what follows it.
    if (out.length > 0 && isHighSurrogate(out.charCodeAt(out.length - 1))) {
      held = out.slice(-1)
      out = out.slice(0, -1)
    }
    return out
  }

  return {
    get state() {
      return stateOf()
    },
    push
  }
}

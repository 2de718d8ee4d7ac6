/**
 * Server-sent events as model providers stream them: an incremental decoder (text in, whole events out) and the
 * readers of OpenAI chat-completions and Anthropic messages events.
 * Pure; does no I/O.
 */

/** One decoded event. */
export interface SseEvent {
  /** The `event:` field, `message` when absent. */
  readonly event: string
  /** The `data:` lines joined by `\n`. */
  readonly data: string
}

/** An incremental decoder: `push` text as it arrives (any split), get back the events it completes. */
export interface SseDecoder {
  readonly push: (text: string) => Array<SseEvent>
  /** The stream ended: an event still open (no blank line after it) is delivered rather than lost. */
  readonly end: () => Array<SseEvent>
  /** Characters of the line still open (not yet ended by a line break), for a cap on one line's size. */
  readonly openLine: () => number
}

/**
 * The WHATWG event-stream rules (LF, CRLF or CR line ends, `:` comments, one leading space stripped from a value, an
 * event dispatched at a blank line when it has data, a leading BOM dropped), read a line at a time with one regex
 * step per line (the parser of @effect/experimental read character by character: 6 % of the server's CPU at K = 100,
 * issue 15). A CR last in a chunk is held back until the next chunk, because it may be the first half of a CRLF (read
 * alone, the LF would be an empty line: the event's name lost and its data cut in two); `end` closes an event the
 * provider did not end with a blank line. `id:` and `retry:` fields are ignored (the retry schedule is ours, not the
 * provider's).
 */
export const makeSseDecoder = (): SseDecoder => {
  let out: Array<SseEvent> = []
  let heldCr = false
  let open = 0
  let first = true
  let data = ""
  let hasData = false
  let name: string | undefined
  const LINE = /\r\n?|\n/g
  const line = (text: string) => {
    if (text === "") {
      if (hasData) out.push({ event: name ?? "message", data: data.slice(0, -1) })
      data = ""
      hasData = false
      name = undefined
      return
    }
    const colon = text.indexOf(":")
    if (colon === 0) return
    const field = colon < 0 ? text : text.slice(0, colon)
    const value = colon < 0 ? "" : text.slice(text.charCodeAt(colon + 1) === 32 ? colon + 2 : colon + 1)
    if (field === "data") {
      data += `${value}\n`
      hasData = true
    } else if (field === "event") name = value
  }
  /** The start of a line not yet ended, in pieces (joined once it ends: a long line is never rescanned). */
  let rest: Array<string> = []
  const parse = (input: string) => {
    const chunk = first && input.charCodeAt(0) === 0xfeff ? input.slice(1) : input
    first = false
    LINE.lastIndex = 0
    let at = 0
    for (let m = LINE.exec(chunk); m !== null; m = LINE.exec(chunk)) {
      const piece = chunk.slice(at, m.index)
      if (rest.length > 0) {
        rest.push(piece)
        line(rest.join(""))
        rest = []
      } else line(piece)
      at = m.index + m[0].length
    }
    if (at < chunk.length) rest.push(at === 0 ? chunk : chunk.slice(at))
  }
  const take = (): Array<SseEvent> => {
    const events = out
    out = []
    return events
  }
  const feed = (text: string) => {
    if (text === "") return
    parse(text)
    const lf = text.lastIndexOf("\n")
    const cr = text.lastIndexOf("\r")
    const lastBreak = Math.max(lf, cr)
    open = lastBreak < 0 ? open + text.length : text.length - lastBreak - 1
  }
  const push = (text: string): Array<SseEvent> => {
    let chunk = heldCr ? `\r${text}` : text
    heldCr = chunk.endsWith("\r")
    if (heldCr) chunk = chunk.slice(0, -1)
    feed(chunk)
    return take()
  }
  const end = (): Array<SseEvent> => {
    feed(heldCr ? "\r\n\n" : "\n\n")
    heldCr = false
    return take()
  }
  return { push, end, openLine: () => open }
}

/** Token counts as far as the provider has told them. */
export interface TokenUsage {
  readonly inputTokens?: number
  readonly outputTokens?: number
}

/** What one provider event means for the reply. */
export type StreamPiece =
  /** More raw reply text. */
  | { readonly type: "text"; readonly text: string }
  /** Token usage (each field the latest the provider sent). */
  | { readonly type: "usage"; readonly usage: TokenUsage }
  /** The provider said the reply is complete (a finish reason, `[DONE]`, `message_stop`). */
  | { readonly type: "complete" }
  /** Nothing more will come (`[DONE]`, `message_stop`): stop reading, even if the connection stays open. */
  | { readonly type: "stop" }
  /**
   * The provider reported an error inside the stream; `body` is the event's data; `retryable` unless its type says
   * the request itself is wrong (bad request, key, permission, size).
   */
  | { readonly type: "error"; readonly message: string; readonly body: string; readonly retryable: boolean }

const isRecord = (v: unknown): v is Record<string, unknown> => typeof v === "object" && v !== null && !Array.isArray(v)

const record = (v: unknown): Record<string, unknown> | undefined => (isRecord(v) ? v : undefined)

const count = (v: unknown): number | undefined => (typeof v === "number" && Number.isFinite(v) ? v : undefined)

const parseJson = (data: string): Record<string, unknown> | undefined => {
  try {
    return record(JSON.parse(data))
  } catch {
    return undefined
  }
}

/** Error types (Anthropic's `error.type`, OpenAI's `error.type` / `code`) that another attempt cannot fix. */
const FINAL_ERRORS = new Set([
  "invalid_request_error",
  "authentication_error",
  "permission_error",
  "not_found_error",
  "request_too_large",
  "invalid_api_key",
  "insufficient_quota"
])

const errorPiece = (json: Record<string, unknown>, data: string): StreamPiece | undefined => {
  const error = json["error"]
  if (error === undefined || error === null) return undefined
  const fields = record(error)
  const message = typeof error === "string" ? error : typeof fields?.["message"] === "string" ? String(fields["message"]) : data
  const kinds = [fields?.["type"], fields?.["code"]].filter((k): k is string => typeof k === "string")
  return { type: "error", message, body: data, retryable: !kinds.some((k) => FINAL_ERRORS.has(k)) }
}

const usageOf = (fields: Partial<Record<keyof TokenUsage, number | undefined>>): TokenUsage => ({
  ...(fields.inputTokens === undefined ? {} : { inputTokens: fields.inputTokens }),
  ...(fields.outputTokens === undefined ? {} : { outputTokens: fields.outputTokens })
})

/** An OpenAI chat-completions stream event (`choices[0].delta.content`, the `usage` chunk, `[DONE]`). */
export const openAiPieces = (event: SseEvent): Array<StreamPiece> => {
  if (event.data.trim() === "[DONE]") return [{ type: "complete" }, { type: "stop" }]
  const json = parseJson(event.data)
  if (json === undefined) return []
  const error = errorPiece(json, event.data)
  if (error !== undefined) return [error]
  const out: Array<StreamPiece> = []
  const choice = Array.isArray(json["choices"]) ? record(json["choices"][0]) : undefined
  const content = record(choice?.["delta"])?.["content"]
  if (typeof content === "string" && content !== "") out.push({ type: "text", text: content })
  const usage = record(json["usage"])
  if (usage !== undefined) {
    out.push({ type: "usage", usage: usageOf({ inputTokens: count(usage["prompt_tokens"]), outputTokens: count(usage["completion_tokens"]) }) })
  }
  const finish = choice?.["finish_reason"]
  if (typeof finish === "string" && finish !== "") out.push({ type: "complete" })
  return out
}

/** Anthropic's `usage` object: cached prompt tokens are counted apart from input_tokens; the prompt is all of them. */
const anthropicUsage = (usage: Record<string, unknown>): TokenUsage => {
  const parts = [usage["input_tokens"], usage["cache_creation_input_tokens"], usage["cache_read_input_tokens"]].map(count)
  const input = parts.some((p) => p !== undefined) ? parts.reduce<number>((sum, p) => sum + (p ?? 0), 0) : undefined
  return usageOf({ inputTokens: input, outputTokens: count(usage["output_tokens"]) })
}

/**
 * An Anthropic messages stream event: text from `content_block_start` / `content_block_delta` (`text_delta`), usage
 * from `message_start` / `message_delta`, the end at `message_stop`, `error` events; `ping` and the rest mean nothing here.
 */
export const anthropicPieces = (event: SseEvent): Array<StreamPiece> => {
  const json = parseJson(event.data)
  if (json === undefined) return []
  const type = typeof json["type"] === "string" ? json["type"] : event.event
  switch (type) {
    case "message_start": {
      const usage = record(record(json["message"])?.["usage"])
      return usage === undefined ? [] : [{ type: "usage", usage: anthropicUsage(usage) }]
    }
    case "content_block_start": {
      // A text block may start with text of its own (usually "").
      const block = record(json["content_block"])
      const text = block?.["type"] === "text" ? block["text"] : undefined
      return typeof text === "string" && text !== "" ? [{ type: "text", text }] : []
    }
    case "content_block_delta": {
      const delta = record(json["delta"])
      const text = delta?.["type"] === "text_delta" ? delta["text"] : undefined
      return typeof text === "string" && text !== "" ? [{ type: "text", text }] : []
    }
    case "message_delta": {
      // Counts so far (cumulative), output tokens at least; newer versions repeat the input counts.
      const usage = record(json["usage"])
      return usage === undefined ? [] : [{ type: "usage", usage: anthropicUsage(usage) }]
    }
    case "message_stop":
      return [{ type: "complete" }, { type: "stop" }]
    case "error":
      return [errorPiece(json, event.data) ?? { type: "error", message: event.data, body: event.data, retryable: true }]
    default:
      return []
  }
}

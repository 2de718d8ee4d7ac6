/**
 * Server-sent events as model providers stream them: an incremental decoder (text in, whole events out)
 * and the readers of OpenAI chat-completions and Anthropic messages events. Pure; does no I/O.
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
}

/** A decoder following the WHATWG event-stream rules (LF, CRLF or CR line ends; `:` comments; one leading space stripped). */
export const makeSseDecoder = (): SseDecoder => {
  let buffer = ""
  let event = ""
  let data: Array<string> = []
  const dispatch = (out: Array<SseEvent>) => {
    if (data.length > 0) out.push({ event: event === "" ? "message" : event, data: data.join("\n") })
    event = ""
    data = []
  }
  const line = (l: string, out: Array<SseEvent>) => {
    if (l === "") return dispatch(out)
    if (l.startsWith(":")) return
    const colon = l.indexOf(":")
    const field = colon < 0 ? l : l.slice(0, colon)
    const raw = colon < 0 ? "" : l.slice(colon + 1)
    const value = raw.startsWith(" ") ? raw.slice(1) : raw
    if (field === "data") data.push(value)
    else if (field === "event") event = value
  }
  const push = (text: string): Array<SseEvent> => {
    buffer += text
    const out: Array<SseEvent> = []
    let start = 0
    for (;;) {
      const lf = buffer.indexOf("\n", start)
      const cr = buffer.indexOf("\r", start)
      if (lf < 0 && cr < 0) break
      if (cr >= 0 && (lf < 0 || cr < lf)) {
        // A CR last in the buffer may be the first half of a CRLF split across two network chunks.
        if (cr === buffer.length - 1) break
        line(buffer.slice(start, cr), out)
        start = buffer[cr + 1] === "\n" ? cr + 2 : cr + 1
      } else {
        line(buffer.slice(start, lf), out)
        start = lf + 1
      }
    }
    buffer = buffer.slice(start)
    return out
  }
  const end = (): Array<SseEvent> => {
    const out: Array<SseEvent> = []
    const rest = buffer.endsWith("\r") ? buffer.slice(0, -1) : buffer
    buffer = ""
    if (rest !== "") for (const l of rest.split(/\r\n|\r|\n/)) line(l, out)
    dispatch(out)
    return out
  }
  return { push, end }
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
  /** The provider said the reply is complete (`[DONE]`, a finish reason, `message_stop`). */
  | { readonly type: "complete" }
  /** The provider reported an error inside the stream; `body` is the event's data. */
  | { readonly type: "error"; readonly message: string; readonly body: string }

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

const errorPiece = (json: Record<string, unknown>, data: string): StreamPiece | undefined => {
  const error = json["error"]
  if (error === undefined || error === null) return undefined
  const message = typeof error === "string" ? error : typeof record(error)?.["message"] === "string" ? String(record(error)?.["message"]) : data
  return { type: "error", message, body: data }
}

const usageOf = (fields: Partial<Record<keyof TokenUsage, number | undefined>>): TokenUsage => ({
  ...(fields.inputTokens === undefined ? {} : { inputTokens: fields.inputTokens }),
  ...(fields.outputTokens === undefined ? {} : { outputTokens: fields.outputTokens })
})

/** An OpenAI chat-completions stream event (`choices[0].delta.content`, the `usage` chunk, `[DONE]`). */
export const openAiPieces = (event: SseEvent): Array<StreamPiece> => {
  if (event.data.trim() === "[DONE]") return [{ type: "complete" }]
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

/** An Anthropic messages stream event (`content_block_delta` text, `message_start` / `message_delta` usage, `message_stop`). */
export const anthropicPieces = (event: SseEvent): Array<StreamPiece> => {
  const json = parseJson(event.data)
  if (json === undefined) return []
  const type = typeof json["type"] === "string" ? json["type"] : event.event
  switch (type) {
    case "message_start": {
      const usage = record(record(json["message"])?.["usage"])
      if (usage === undefined) return []
      // Cached prompt tokens are counted apart from input_tokens; the prompt is all of them.
      const parts = [usage["input_tokens"], usage["cache_creation_input_tokens"], usage["cache_read_input_tokens"]].map(count)
      const input = parts.some((p) => p !== undefined) ? parts.reduce<number>((sum, p) => sum + (p ?? 0), 0) : undefined
      return [{ type: "usage", usage: usageOf({ inputTokens: input, outputTokens: count(usage["output_tokens"]) }) }]
    }
    case "content_block_delta": {
      const delta = record(json["delta"])
      const text = delta?.["type"] === "text_delta" ? delta["text"] : undefined
      return typeof text === "string" && text !== "" ? [{ type: "text", text }] : []
    }
    case "message_delta": {
      const usage = record(json["usage"])
      return usage === undefined ? [] : [{ type: "usage", usage: usageOf({ outputTokens: count(usage["output_tokens"]) }) }]
    }
    case "message_stop":
      return [{ type: "complete" }]
    case "error":
      return [errorPiece(json, event.data) ?? { type: "error", message: event.data, body: event.data }]
    default:
      return []
  }
}

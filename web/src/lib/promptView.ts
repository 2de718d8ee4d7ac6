/**
 * A provider's request body (as `GET /api/sessions/:id/prompt` renders it) read for people: the messages by role,
 * with their text, whatever the provider's shape — OpenAI chat completions (`messages[].content` a string or parts),
 * Anthropic messages (`system` beside `messages`, content blocks), Bedrock Converse (`system[]`, `content[].text`) —
 * and the request's other settings. Pure; the body is the server's, but read as untrusted JSON (no assumption holds).
 */

export interface PromptMessage {
  readonly role: string
  readonly text: string
}

export interface PromptView {
  readonly messages: ReadonlyArray<PromptMessage>
  /** The body's other top-level fields (model, max_tokens, stream…), as short JSON. */
  readonly settings: ReadonlyArray<{ readonly key: string; readonly value: string }>
  /** Characters of all the messages' text. */
  readonly chars: number
}

const isRecord = (v: unknown): v is Record<string, unknown> => typeof v === "object" && v !== null && !Array.isArray(v)

/** The text of a content value: a string, or parts whose `text` are joined; other parts are named in brackets. */
const textOf = (content: unknown): string => {
  if (typeof content === "string") return content
  if (Array.isArray(content)) {
    return content
      .map((part) => {
        if (typeof part === "string") return part
        if (isRecord(part) && typeof part["text"] === "string") return part["text"]
        return `[${isRecord(part) && typeof part["type"] === "string" ? part["type"] : "part"}]`
      })
      .join("\n")
  }
  if (content === undefined || content === null) return ""
  return JSON.stringify(content) ?? ""
}

const short = (v: unknown): string => {
  const text = JSON.stringify(v) ?? String(v)
  return text.length > 120 ? `${text.slice(0, 119)}…` : text
}

/** The fields that hold the conversation; every other top-level field is a setting. */
const CONVERSATION = new Set(["messages", "system"])

export const promptView = (body: unknown): PromptView => {
  const messages: Array<PromptMessage> = []
  if (!isRecord(body)) return { messages, settings: [{ key: "body", value: short(body) }], chars: 0 }
  if (body["system"] !== undefined) messages.push({ role: "system", text: textOf(body["system"]) })
  const list = body["messages"]
  if (Array.isArray(list)) {
    for (const m of list) {
      if (isRecord(m)) messages.push({ role: typeof m["role"] === "string" ? m["role"] : "?", text: textOf(m["content"]) })
      else messages.push({ role: "?", text: textOf(m) })
    }
  }
  const settings = Object.keys(body)
    .filter((k) => !CONVERSATION.has(k))
    .map((key) => ({ key, value: short(body[key]) }))
  return { messages, settings, chars: messages.reduce((n, m) => n + m.text.length, 0) }
}

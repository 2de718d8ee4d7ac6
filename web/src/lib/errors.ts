/**
 * Server refusals and failures in words for people: each error code the server, the link or the HTTP client can
 * answer gets a sentence, and the server's schema errors become "code: should be text". Pure.
 */

const sentence = (s: string): string => {
  const t = s.trim()
  if (t === "") return t
  const first = t.charAt(0).toUpperCase() + t.slice(1)
  return /[.!?…)]$/.test(first) ? first : `${first}.`
}

const kinds: ReadonlyMap<string, string> = new Map([
  ["string", "text"],
  ["number", "a number"],
  ["boolean", "true or false"],
  ["an integer", "a whole number"],
  ["integer", "a whole number"],
  ["object", "an object ({ … })"],
  ["array", "a list ([ … ])"],
  ["null", "null"]
])

/** What a value should be, in words: "text", "a whole number", … (JSON Schema and Effect Schema type names alike). */
export const kindWord = (type: string): string => kinds.get(type) ?? type

/** One "path: problem" part of the server's schema errors, reworded ("code: expected string" → "code: should be text"). */
const part = (text: string): string => {
  const m = /^(.*?): (expected (.+)|is unexpected|is missing)$/s.exec(text.trim())
  if (m === null) return text.trim()
  const [, where = "", problem = "", want] = m
  if (want !== undefined) return `${where}: should be ${kindWord(want)}`
  return `${where}: ${problem === "is missing" ? "is missing (it is required)" : "is not one of its arguments"}`
}

/**
 * The server's schema errors (`path: expected type; other.path: is missing`; it never shows the value) as short
 * sentences for people. Text of another shape comes back unchanged.
 */
export const humanSchemaError = (text: string): string => text.split("; ").map(part).join("; ")

/** The schema part of "invalid args for eval: <tree>" messages, reworded. */
const argsProblem = (message: string): string => {
  const at = message.lastIndexOf("invalid args for ")
  if (at === -1) return humanSchemaError(message)
  const rest = message.slice(at + "invalid args for ".length)
  const colon = rest.indexOf(": ")
  return colon === -1 ? rest : humanSchemaError(rest.slice(colon + 2))
}

/** A refusal or failure as one sentence for people; `code` is the server's (or the client's) error code. */
export const humanError = (code: string, message: string): string => {
  switch (code) {
    case "not_pending":
      return "This tool call was already decided."
    case "unknown_call":
      return "This tool call is not part of this session."
    case "invalid_args":
      return sentence(`The edited arguments do not fit the tool: ${argsProblem(message)}`)
    case "empty_message":
      return "A message needs some text."
    case "nothing_to_interrupt":
      return "Nothing is running, so there is nothing to stop."
    case "unknown_message":
      return "That queued message was already sent or cancelled."
    case "unknown_session":
      return "This session does not exist on the server (the link may be wrong, or it was deleted)."
    case "rate_limited":
      return "Too many actions at once; wait a moment and try again."
    case "disconnected":
      return "Not connected to the server, so nothing was sent; try again when it is back."
    case "timeout":
      return "The server did not answer in time; it may or may not have done it. The tape will show which."
    case "network":
      return "The server could not be reached."
    case "bad_seq":
      return sentence(`That event is not on this tape (${message})`)
    case "bad_tape":
      return sentence(`That file is not a valid tape: ${humanSchemaError(message).slice(0, 300)}`)
    case "too_large":
      return sentence(`That file is too large: ${message}`)
    case "not_last_turn":
      return "Only the last reply can be run again, and only before a new message follows it."
    case "busy":
      return "The session is busy (a reply streams, or a tool call runs or waits for approval); try again when it is idle."
    case "empty_title":
      return "A title needs some text."
    case "unknown_model":
      return "That model is not one of this server's choices; pick one from the list."
    case "render_failed":
      return sentence(`The server could not render the request for this turn: ${message.slice(0, 200)}`)
    case "store_error":
      return sentence(`The server could not read or save the session: ${message}`)
    case "bad_frame":
    case "bad_server_frame":
    case "bad_response":
      return sentence(`The server and this page did not understand each other (${message.slice(0, 200)}); reloading the page may help`)
    default:
      return /^http_\d+$/.test(code) ? sentence(`The server answered with an error (HTTP ${code.slice(5)}): ${message}`) : sentence(message || code)
  }
}

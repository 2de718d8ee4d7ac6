/**
 * The one gate for untrusted text on its way into the prompt: conversation texts, tool results, args, names and
 * docs. It defuses every string that BAML's renderer or our own prompt markup would read as structure, and changes
 * nothing else, so the model still reads the text as it was. It decides nothing about what text is untrusted.
 */

/**
 * Where a text lands in baml_src/chat.baml:
 * - `text`: free text between our tags (messages, tool results, args JSON);
 * - `line`: one line of the system prompt (tool names, descriptions, args docs): line breaks become spaces;
 * - `attribute`: inside `"…"` of our own `<tool_call …>` / `<tool_result …>` tags: also `& " < >` escaped.
 */
export type UntrustedContext = "text" | "line" | "attribute"

/**
 * What BAML's renderer reads as structure in a rendered prompt (@boundaryml/baml 0.226, internal_baml_jinja): it
 * splits the whole rendered text on `BAML_CHAT_ROLE_MAGIC_STRING_DELIMITER` (a role switch whose JSON between
 * `:baml-start-baml:` and `:baml-end-baml:` names the new role, e.g. `system`) and each message on
 * `BAML_MEDIA_MAGIC_STRING_DELIMITER` (an image/audio/pdf part from the JSON between `:baml-start-media:` and
 * `:baml-end-media:`, or a render error that fails every later turn when the JSON is not media). Both delimiters
 * (and the older `BAML_IMAGE_MAGIC_STRING_DELIMITER`) end in `MAGIC_STRING_DELIMITER`: breaking that word breaks
 * them all; the section markers are broken too, in case a later BAML reads them alone.
 */
const BAML_DELIMITER = /magic_string_delimiter/gi
const BAML_SECTION = /:(?=baml-(?:start|end)-)/gi

/** The opening `<` of our own tags (baml_src/chat.baml), in any case and spacing a model might still read as one. */
const OUR_TAG = /<(?=\s*\/?\s*tool[\s_-]*(?:call|result))/gi

/** Chat-template control tokens (`<|im_start|>`, `<|eot_id|>`): servers that tokenise content with special tokens read them as turns. */
const CONTROL_TOKEN = /<(?=\|[^\s|<>]{1,64}\|>)/g

const LINE_BREAK = /[\r\n\u0085\u2028\u2029]+/g

/**
 * What any of the patterns above needs in a text (each starts at a `<`, the delimiter word, or a section marker): a
 * text without it is returned as is after one scan, not four (every message passes here at every turn).
 */
const MAY_NEED = /<|magic_string_delimiter|:baml-(?:start|end)-/i

const ATTRIBUTE_ESCAPES: Readonly<Record<string, string>> = { "&": "&amp;", '"': "&quot;", "<": "&lt;", ">": "&gt;" }

/**
 * `text` made inert for the prompt in `context` (see {@link UntrustedContext}): it cannot switch roles, add media,
 * open or close our `<tool_call>` / `<tool_result>` blocks, or carry chat-template control tokens. Defused
 * markers stay readable (`MAGIC-STRING-DELIMITER`, `&lt;/tool_result>`, `&lt;|im_start|>`); all other text is
 * unchanged. Apply it to every untrusted string exactly once, where the prompt's inputs are built.
 */
export const neutralise = (text: string, context: UntrustedContext = "text"): string => {
  switch (context) {
    case "text":
      return MAY_NEED.test(text) ? defuseText(text) : text
    case "line":
      return neutralise(text, "text").replace(LINE_BREAK, " ")
    case "attribute":
      // With `<` escaped no tag or control token can form; what is left to defuse is BAML's.
      return defuseBaml(text.replace(LINE_BREAK, " ").replace(/[&"<>]/g, (c) => ATTRIBUTE_ESCAPES[c] ?? c))
    default: {
      const _exhaustive: never = context
      return _exhaustive
    }
  }
}

/** `neutralise` of a text in the `text` context, every pattern applied (exported for the test of its shortcut). */
export const defuseText = (text: string): string => defuseBaml(text).replace(OUR_TAG, "&lt;").replace(CONTROL_TOKEN, "&lt;")

const defuseBaml = (text: string): string =>
  text.replace(BAML_DELIMITER, (word) => word.replace(/_/g, "-")).replace(BAML_SECTION, ": ")

/**
 * Every string of a JSON value (a tool's args schema: descriptions, titles, enum values) through `neutralise` as one
 * line; keys are kept (property names are limited to a safe set before they reach BAML). Deeper than `maxDepth` is cut.
 */
export const neutraliseJson = <A>(value: A, maxDepth = 64): A => {
  const walk = (v: unknown, depth: number): unknown => {
    if (typeof v === "string") return neutralise(v, "line")
    if (v === null || typeof v !== "object" || depth >= maxDepth) return typeof v === "object" && v !== null ? {} : v
    if (Array.isArray(v)) return v.map((x) => walk(x, depth + 1))
    const out: Record<string, unknown> = {}
    for (const [k, x] of Object.entries(v)) out[k] = walk(x, depth + 1)
    return out
  }
  return walk(value, 0) as A
}

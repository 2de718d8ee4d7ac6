/**
 * Tiny syntax highlighting for tool arguments: JSON values and JavaScript source, to escaped HTML with token spans.
 * Everything is escaped first, so the output is safe to insert; no dependency.
 */
export const escapeHtml = (s: string): string =>
  s.replace(/[&<>"']/g, (c) => (c === "&" ? "&amp;" : c === "<" ? "&lt;" : c === ">" ? "&gt;" : c === '"' ? "&quot;" : "&#39;"))

const span = (cls: string, text: string) => `<span class="tok-${cls}">${escapeHtml(text)}</span>`

/** Pretty JSON text with keys, strings, numbers and literals marked. */
export const highlightJson = (value: unknown): string => {
  const text = JSON.stringify(value, null, 2) ?? "undefined"
  return text.replace(
    /("(?:\\.|[^"\\])*")(\s*:)?|\b(true|false|null)\b|(-?\d+(?:\.\d+)?(?:[eE][+-]?\d+)?)|([^"\w-]+|[\w-])/g,
    (_m, str: string | undefined, colon: string | undefined, lit: string | undefined, num: string | undefined, other: string | undefined) =>
      str !== undefined
        ? colon !== undefined
          ? span("key", str) + escapeHtml(colon)
          : span("str", str)
        : lit !== undefined
          ? span("lit", lit)
          : num !== undefined
            ? span("num", num)
            : escapeHtml(other ?? "")
  )
}

const KEYWORDS = new Set(
  "await async break case catch class const continue default delete do else export extends false finally for function if import in instanceof let new null return switch this throw true try typeof undefined var void while yield of".split(
    " "
  )
)

/** JavaScript with comments, strings, numbers and keywords marked. */
export const highlightJs = (code: string): string =>
  code.replace(
    /(\/\/[^\n]*|\/\*[\s\S]*?\*\/)|("(?:\\.|[^"\\\n])*"|'(?:\\.|[^'\\\n])*'|`(?:\\.|[^`\\])*`)|(\b\d+(?:\.\d+)?\b)|([A-Za-z_$][\w$]*)|([^])/g,
    (_m, com: string | undefined, str: string | undefined, num: string | undefined, word: string | undefined, other: string | undefined) =>
      com !== undefined
        ? span("com", com)
        : str !== undefined
          ? span("str", str)
          : num !== undefined
            ? span("num", num)
            : word !== undefined
              ? KEYWORDS.has(word)
                ? span("kw", word)
                : escapeHtml(word)
              : escapeHtml(other ?? "")
  )

/**
 * Tiny syntax highlighting for tool arguments and the code blocks of replies (JSON, JavaScript/TypeScript, Python,
 * shell, SQL), to escaped HTML with token spans.
 * Everything is escaped first, so the output is safe to insert; no dependency.
 */
export const escapeHtml = (s: string): string =>
  s.replace(/[&<>"']/g, (c) => (c === "&" ? "&amp;" : c === "<" ? "&lt;" : c === ">" ? "&gt;" : c === '"' ? "&quot;" : "&#39;"))

const span = (cls: string, text: string) => `<span class="tok-${cls}">${escapeHtml(text)}</span>`

/** JSON text with keys, strings, numbers and literals marked. */
export const highlightJsonText = (text: string): string =>
  text.replace(
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

/** A value as pretty JSON text, marked. */
export const highlightJson = (value: unknown): string => highlightJsonText(JSON.stringify(value, null, 2) ?? "undefined")

/** How one language is tokenized: its comments, its string quotes and its keywords. */
interface Grammar {
  readonly name: string
  /** Regex sources of comments, tried first. */
  readonly comments: ReadonlyArray<string>
  /** Regex sources of string literals. */
  readonly strings: ReadonlyArray<string>
  readonly keywords: ReadonlySet<string>
  readonly caseInsensitive?: boolean
}

const words = (s: string): ReadonlySet<string> => new Set(s.split(" "))
const DQ = String.raw`"(?:\\.|[^"\\\n])*"`
const SQ = String.raw`'(?:\\.|[^'\\\n])*'`
const JS_KEYWORDS =
  "await async break case catch class const continue default delete do else export extends false finally for function if import in instanceof let new null return switch this throw true try typeof undefined var void while yield of"
const js: Grammar = {
  name: "JavaScript",
  comments: [String.raw`\/\/[^\n]*`, String.raw`\/\*[\s\S]*?\*\/`],
  strings: [DQ, SQ, String.raw`\`(?:\\.|[^\`\\])*\``],
  keywords: words(JS_KEYWORDS)
}
const ts: Grammar = {
  ...js,
  name: "TypeScript",
  keywords: words(`${JS_KEYWORDS} interface type enum implements readonly as declare namespace public private protected abstract keyof satisfies never unknown any`)
}
const python: Grammar = {
  name: "Python",
  comments: [String.raw`#[^\n]*`],
  strings: [String.raw`"{3}[\s\S]*?"{3}`, String.raw`'{3}[\s\S]*?'{3}`, DQ, SQ],
  keywords: words(
    "and as assert async await break class continue def del elif else except False finally for from global if import in is lambda None nonlocal not or pass raise return True try while with yield self print"
  )
}
const shell: Grammar = {
  name: "Shell",
  comments: [String.raw`(?<![\w$])#[^\n]*`],
  strings: [DQ, SQ],
  keywords: words("if then else elif fi for while until do done case esac function in return export local echo cd exit set unset source sudo")
}
const sql: Grammar = {
  name: "SQL",
  comments: [String.raw`--[^\n]*`, String.raw`\/\*[\s\S]*?\*\/`],
  strings: [SQ, DQ],
  keywords: words(
    "select from where and or not insert into values update set delete create table index drop alter add primary key foreign references join left right inner outer on group by order having limit offset as distinct null is in like between case when then else end union all exists returning with"
  ),
  caseInsensitive: true
}

// A Map, not an object: the fence's word is the model's, and `constructor` or `__proto__` must name no grammar.
const grammars: ReadonlyMap<string, Grammar> = new Map(
  Object.entries({
    js, javascript: js, mjs: js, cjs: js, jsx: js,
    ts, typescript: ts, tsx: ts,
    py: python, python,
    sh: shell, bash: shell, shell, zsh: shell, console: shell,
    sql
  })
)

const compiled = new Map<Grammar, RegExp>()
const regexOf = (g: Grammar): RegExp => {
  let re = compiled.get(g)
  if (!re) {
    re = new RegExp(`(${g.comments.join("|")})|(${g.strings.join("|")})|(\\b\\d+(?:\\.\\d+)?\\b)|([A-Za-z_$][\\w$]*)|([^])`, "g")
    compiled.set(g, re)
  }
  return re
}

const highlightWith = (g: Grammar, code: string): string =>
  code.replace(regexOf(g), (_m, com: string | undefined, str: string | undefined, num: string | undefined, word: string | undefined, other: string | undefined) =>
    com !== undefined
      ? span("com", com)
      : str !== undefined
        ? span("str", str)
        : num !== undefined
          ? span("num", num)
          : word !== undefined
            ? g.keywords.has(g.caseInsensitive ? word.toLowerCase() : word)
              ? span("kw", word)
              : escapeHtml(word)
            : escapeHtml(other ?? "")
  )

/** JavaScript with comments, strings, numbers and keywords marked. */
export const highlightJs = (code: string): string => highlightWith(js, code)

/** The language named after a code fence, in words (`py` → `Python`); the fence's own word when unknown. */
export const languageName = (lang: string): string => {
  const key = lang.trim().toLowerCase()
  if (key === "") return "text"
  if (key === "json") return "JSON"
  return grammars.get(key)?.name ?? (key.length > 24 ? `${key.slice(0, 23)}…` : key)
}

/** Code of a fenced block, escaped and marked for its language (escaped only when the language is unknown). */
export const highlightCode = (code: string, lang: string): string => {
  const key = lang.trim().toLowerCase()
  if (key === "json") return highlightJsonText(code)
  const g = grammars.get(key)
  return g ? highlightWith(g, code) : escapeHtml(code)
}

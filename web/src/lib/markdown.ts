/**
 * Assistant Markdown to sanitized blocks (marked, then DOMPurify): model text is untrusted, so nothing it writes
 * may run script, load remote content or style the page. Top-level code blocks come out as their own blocks (the
 * view highlights them and adds a copy button); images become a placeholder with their alt text and link, never loaded.
 * Browser-only (DOMPurify needs a DOM).
 */
import DOMPurify from "dompurify"
import { Marked, type Token, type Tokens } from "marked"
import { escapeHtml } from "./highlight.ts"

const SAFE_URL = /^(?:https?:|mailto:|#)/i

const marked = new Marked({
  gfm: true,
  breaks: true,
  async: false,
  renderer: {
    // An image would fetch from any host the model names: say what it was, and link it, instead.
    image({ href, text }) {
      const alt = text.trim() === "" ? "an image" : `“${escapeHtml(text.trim())}”`
      const link = /^https?:/i.test(href) ? ` <a href="${escapeHtml(href)}">${escapeHtml(href.length > 80 ? `${href.slice(0, 79)}…` : href)}</a>` : ""
      return `<span data-image-placeholder="">Image not shown: ${alt}${link}</span>`
    }
  }
})

let hooked = false
const purify = (html: string): string => {
  if (!hooked) {
    // Links open in a new tab without referrer.
    DOMPurify.addHook("afterSanitizeAttributes", (node) => {
      if (node.tagName === "A") {
        node.setAttribute("target", "_blank")
        node.setAttribute("rel", "noopener noreferrer nofollow")
      }
    })
    hooked = true
  }
  return DOMPurify.sanitize(html, {
    FORBID_TAGS: ["img", "style", "form", "input", "button", "textarea", "select", "iframe", "video", "audio", "svg", "math"],
    FORBID_ATTR: ["style", "class", "id"],
    ALLOWED_URI_REGEXP: SAFE_URL
  })
}

/** A piece of a reply: sanitized HTML, or a fenced code block (raw code and the fence's language word). */
export type Block = { readonly kind: "html"; readonly html: string } | { readonly kind: "code"; readonly lang: string; readonly code: string }

const isCode = (t: Token): t is Tokens.Code => t.type === "code"

const parse = (tokens: Array<Token>): string => {
  const html = marked.parser(tokens)
  return purify(typeof html === "string" ? html : "")
}

export const renderBlocks = (text: string): Array<Block> => {
  const out: Array<Block> = []
  let group: Array<Token> = []
  const flush = () => {
    if (group.length > 0) out.push({ kind: "html", html: parse(group) })
    group = []
  }
  for (const t of marked.lexer(text)) {
    if (isCode(t)) {
      flush()
      out.push({ kind: "code", lang: (t.lang ?? "").trim().split(/\s+/)[0] ?? "", code: t.text })
    } else group.push(t)
  }
  flush()
  return out
}

/**
 * Assistant Markdown to sanitized HTML (marked, then DOMPurify): model text is untrusted, so nothing it writes
 * may run script, load remote content or style the page. Browser-only (DOMPurify needs a DOM).
 */
import DOMPurify from "dompurify"
import { Marked } from "marked"

const marked = new Marked({ gfm: true, breaks: true, async: false })

let hooked = false
const purify = (html: string): string => {
  if (!hooked) {
    // Links open in a new tab without referrer; images are dropped (they would fetch from any host the model names).
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
    ALLOWED_URI_REGEXP: /^(?:https?:|mailto:|#)/i
  })
}

export const renderMarkdown = (text: string): string => {
  const html = marked.parse(text)
  return purify(typeof html === "string" ? html : "")
}

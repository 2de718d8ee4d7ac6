/** Validation of edited tool arguments before they are sent: a JSON object, or an error saying why not. Pure. */
import type { JsonObject } from "../../../src/domain/Event.ts"

export type ParsedArgs = { readonly ok: true; readonly args: JsonObject } | { readonly ok: false; readonly error: string }

const isObject = (v: unknown): v is JsonObject => typeof v === "object" && v !== null && !Array.isArray(v)

export const parseArgs = (text: string): ParsedArgs => {
  let value: unknown
  try {
    value = JSON.parse(text)
  } catch (e) {
    return { ok: false, error: `Not valid JSON: ${e instanceof Error ? e.message : String(e)}` }
  }
  return isObject(value) ? { ok: true, args: value } : { ok: false, error: "The arguments must be a JSON object ({ … })." }
}

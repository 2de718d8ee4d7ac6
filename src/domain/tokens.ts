/**
 * The memory's token estimate: gpt-tokenizer's o200k_base encoding (the one of OpenAI's current models; other
 * providers' tokenizers differ by a few percent on English and code, which the budget's 80 % threshold absorbs).
 * Pure and synchronous; special-token text in a message is counted as text, never refused.
 */
import { countTokens } from "gpt-tokenizer"

const NO_SPECIAL = { disallowedSpecial: new Set<string>() }

/** Characters counted per call of the tokenizer: its merge step is quadratic in one unbroken run (80,000 × "w" takes 2 s). */
const PIECE_CHARS = 512
/** Characters counted exactly; the rest of a longer text is counted at the rate of its first part. */
const EXACT_CHARS = 65_536

/**
 * Tokens of one text, as the model's tokenizer would count it (o200k_base), in bounded time whatever the text: in
 * pieces of 512 characters (a cut may add a token: within 1 % on prose), the first 64 KiB exactly and the rest in
 * proportion.
 */
export const tokensOf = (text: string): number => {
  if (text === "") return 0
  const head = text.length <= EXACT_CHARS ? text : text.slice(0, EXACT_CHARS)
  let n = 0
  for (let i = 0; i < head.length; i += PIECE_CHARS) n += countTokens(head.slice(i, i + PIECE_CHARS), NO_SPECIAL)
  return head.length === text.length ? n : Math.ceil((n * text.length) / head.length)
}

/** A cheap estimate for a text still growing (a streamed delta): about four characters a token. */
export const roughTokensOf = (text: string): number => Math.ceil(text.length / 4)

/** What a message costs besides its text (role markers, separators), as chat formats count it. */
export const MESSAGE_OVERHEAD = 4

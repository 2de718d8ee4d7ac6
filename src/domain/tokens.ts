/**
 * The memory's token estimate: gpt-tokenizer's o200k_base encoding (the one of OpenAI's current models; other
 * providers' tokenizers differ by a few percent on English and code, which the budget's 80 % threshold absorbs).
 * Pure and synchronous; special-token text in a message is counted as text, never refused.
 */
import { countTokens } from "gpt-tokenizer"

const NO_SPECIAL = { disallowedSpecial: new Set<string>() }

/** Tokens of one text, as the model's tokenizer would count it (o200k_base). */
export const tokensOf = (text: string): number => (text === "" ? 0 : countTokens(text, NO_SPECIAL))

/** A cheap estimate for a text still growing (a streamed delta): about four characters a token. */
export const roughTokensOf = (text: string): number => Math.ceil(text.length / 4)

/** What a message costs besides its text (role markers, separators), as chat formats count it. */
export const MESSAGE_OVERHEAD = 4

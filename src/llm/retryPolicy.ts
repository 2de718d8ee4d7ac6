/**
 * The `retry_policy` blocks of baml_src/chat.baml as Effect Schedules. They are read from the BAML source that the
 * generated client inlines, so BAML's runtime (Bedrock path) and our own HTTP path (every other provider) retry
 * from one set of numbers, declared once. Pure apart from reading that inlined source once.
 */
import { Duration, Schedule } from "effect"
import { getBamlFiles } from "../../baml_client/inlinedbaml.ts"

/** A BAML retry policy (https://docs.boundaryml.com/ref/llm-client-strategies/retry-policy), its defaults filled in. */
export interface RetryPolicy {
  /** Retries after the first attempt. */
  readonly maxRetries: number
  /** `constant_delay`: every pause is `delayMs`; `exponential_backoff`: `delayMs * multiplier^n`, at most `maxDelayMs`. */
  readonly strategy:
    | { readonly type: "constant_delay"; readonly delayMs: number }
    | { readonly type: "exponential_backoff"; readonly delayMs: number; readonly multiplier: number; readonly maxDelayMs: number }
}

const withoutComments = (source: string): string => source.replace(/\/\/[^\n]*/g, "")

/** The body of the `{ ... }` block opening at `open` (the index of its `{`), braces balanced. */
const blockAt = (source: string, open: number): string | undefined => {
  let depth = 0
  for (let i = open; i < source.length; i++) {
    const c = source[i]
    if (c === "{") depth++
    else if (c === "}" && --depth === 0) return source.slice(open + 1, i)
  }
  return undefined
}

const numberField = (block: string, name: string): number | undefined => {
  const m = new RegExp(`(?:^|\\s)${name}\\s+(-?[0-9]+(?:\\.[0-9]+)?)(?=\\s|$)`).exec(block)
  return m?.[1] === undefined ? undefined : Number(m[1])
}

/** Every `retry_policy Name { ... }` of `source` (BAML text), by name. Throws on a block this reader does not know. */
export const parseRetryPolicies = (source: string): ReadonlyMap<string, RetryPolicy> => {
  const text = withoutComments(source)
  const policies = new Map<string, RetryPolicy>()
  for (const m of text.matchAll(/(?:^|\s)retry_policy\s+([A-Za-z_][A-Za-z0-9_]*)\s*\{/g)) {
    const name = m[1] ?? ""
    const body = blockAt(text, (m.index ?? 0) + m[0].length - 1)
    const maxRetries = body === undefined ? undefined : numberField(body, "max_retries")
    if (body === undefined || maxRetries === undefined) throw new Error(`retry_policy ${name}: max_retries is required`)
    const open = /(?:^|\s)strategy\s*\{/.exec(body)
    const strategyBody = open === null ? "" : (blockAt(body, open.index + open[0].length - 1) ?? "")
    const type = /(?:^|\s)type\s+([a-z_]+)/.exec(strategyBody)?.[1] ?? "constant_delay"
    // Defaults as BAML documents them.
    const strategy: RetryPolicy["strategy"] =
      type === "constant_delay"
        ? { type, delayMs: numberField(strategyBody, "delay_ms") ?? 200 }
        : type === "exponential_backoff"
          ? {
              type,
              delayMs: numberField(strategyBody, "delay_ms") ?? 200,
              multiplier: numberField(strategyBody, "multiplier") ?? 1.5,
              maxDelayMs: numberField(strategyBody, "max_delay_ms") ?? 10_000
            }
          : (() => {
              throw new Error(`retry_policy ${name}: unknown strategy ${type}`)
            })()
    policies.set(name, { maxRetries, strategy })
  }
  return policies
}

/** The policies of baml_src as the generated client carries them. */
export const bamlRetryPolicies: ReadonlyMap<string, RetryPolicy> = parseRetryPolicies(Object.values(getBamlFiles()).join("\n"))

/** The policy `name` of baml_src; a name that is not declared there is a bug, so it throws. */
export const bamlRetryPolicy = (name: string): RetryPolicy => {
  const policy = bamlRetryPolicies.get(name)
  if (policy === undefined) throw new Error(`retry_policy ${name} is not declared in baml_src`)
  return policy
}

/** The pause before retry number `retry` (0 for the first), as BAML's runtime computes it. */
export const policyDelay = (policy: RetryPolicy, retry: number): Duration.Duration => {
  const s = policy.strategy
  switch (s.type) {
    case "constant_delay":
      return Duration.millis(s.delayMs)
    case "exponential_backoff":
      return Duration.millis(Math.min(s.delayMs * s.multiplier ** retry, s.maxDelayMs))
    default: {
      const _exhaustive: never = s
      return _exhaustive
    }
  }
}

/**
 * The policy as a Schedule over the errors of failed attempts: at most `maxRetries` retries, only while
 * `retryable(error)`, each after the policy's pause or the error's own `retryAfter` when that is longer
 * (a provider's `Retry-After`); an error asking for a pause longer than `maxRetryAfter` ends the retries.
 */
export const policySchedule = <E>(
  policy: RetryPolicy,
  options: {
    readonly retryable: (error: E) => boolean
    readonly retryAfter: (error: E) => Duration.Duration | undefined
    readonly maxRetryAfter: Duration.Duration
  }
): Schedule.Schedule<unknown, E> =>
  Schedule.recurs(policy.maxRetries).pipe(
    Schedule.intersect(Schedule.identity<E>()),
    Schedule.whileInput((error: E) => {
      const after = options.retryAfter(error)
      return options.retryable(error) && (after === undefined || Duration.lessThanOrEqualTo(after, options.maxRetryAfter))
    }),
    Schedule.modifyDelay(([retry, error]: [number, E]) => {
      const after = options.retryAfter(error)
      const pause = policyDelay(policy, retry)
      return after === undefined ? pause : Duration.max(pause, after)
    })
  )

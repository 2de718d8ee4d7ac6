/**
 * The bench's scripted model: an OpenAI-compatible SSE endpoint in the bench process (same wire format as
 * src/llm/offline.ts) that records the send time of every chunk, so latency is measured from the endpoint's send.
 * A request is matched to its plan by the `bench-<id>` token in the prompt.
 */

/** What one reply streams: the reply text, split into `chunkChars` raw characters per SSE chunk, one every `delayMs`. */
export interface Plan {
  readonly text: string
  readonly chunkChars: number
  readonly delayMs: number
}

/** One streamed reply and the `performance.now()` at which each content chunk was written. */
export interface Streamed {
  readonly id: string
  readonly plan: Plan
  readonly pieces: ReadonlyArray<string>
  readonly sends: Array<number>
  /** Offset of the reply text inside the raw reply (`{"text":"` → 9). */
  readonly textOffset: number
  /** `performance.now()` when the request reached the endpoint (before its body was read). */
  readonly requestAt: number
  closed: boolean
}

/** The raw model output BAML's `Reply` parser expects (as in src/llm/offline.ts `renderReply`). */
export const renderReply = (text: string): string => JSON.stringify({ text, toolCalls: [] })

/** A reply text of `chars` plain ASCII characters (no escapes, so raw offsets map 1:1 to text offsets). */
export const replyText = (chars: number): string => {
  const words = "the quick brown fox jumps over a lazy dog while agents stream tapes "
  let s = ""
  while (s.length < chars) s += words
  return s.slice(0, chars)
}

/** Text of `chunks` raw chunks of `chunkChars` once wrapped in the reply JSON (the JSON adds 27 characters). */
export const textForChunks = (chunks: number, chunkChars: number): string => replyText(Math.max(1, chunks * chunkChars - renderReply("").length))

export interface BenchEndpoint {
  readonly baseUrl: string
  readonly port: number
  /** Registers the plan for requests whose prompt carries `bench-<id>`. */
  readonly expect: (id: string, plan: Plan) => void
  readonly streams: Map<string, Streamed>
  readonly stop: () => Promise<void>
}

const encoder = new TextEncoder()

export const startEndpoint = (): BenchEndpoint => {
  const plans = new Map<string, Plan>()
  const streams = new Map<string, Streamed>()
  let requestIds = 0

  const server = Bun.serve({
    hostname: "127.0.0.1",
    port: 0,
    idleTimeout: 0,
    async fetch(req) {
      const requestAt = performance.now()
      const body = (await req.json().catch(() => undefined)) as { messages?: unknown; stream?: unknown } | undefined
      const prompt = JSON.stringify(body?.messages ?? [])
      const ids = [...prompt.matchAll(/bench-([a-z0-9]+)/g)]
      const id = ids.at(-1)?.[1]
      const plan = id === undefined ? undefined : plans.get(id)
      if (id === undefined || plan === undefined) {
        return Response.json({ error: { message: "no bench plan for this prompt", type: "invalid_request_error" } }, { status: 400 })
      }
      const raw = renderReply(plan.text)
      const pieces: Array<string> = []
      for (let i = 0; i < raw.length; i += plan.chunkChars) pieces.push(raw.slice(i, i + plan.chunkChars))
      const streamed: Streamed = { id, plan, pieces, sends: [], textOffset: raw.indexOf('"text":"') + 8, requestAt, closed: false }
      streams.set(id, streamed)
      const rid = `chatcmpl-b${++requestIds}`
      const model = "bench"
      const sse = (data: unknown) => encoder.encode(`data: ${JSON.stringify(data)}\n\n`)
      const chunk = (delta: object, finish: string | null) =>
        sse({ id: rid, object: "chat.completion.chunk", created: 0, model, choices: [{ index: 0, delta, finish_reason: finish }] })
      const usage = { prompt_tokens: 10, completion_tokens: Math.ceil(raw.length / 4), total_tokens: 10 + Math.ceil(raw.length / 4) }
      if (body?.stream !== true) {
        streamed.closed = true
        return Response.json({ id: rid, object: "chat.completion", created: 0, model, choices: [{ index: 0, message: { role: "assistant", content: raw }, finish_reason: "stop" }], usage })
      }
      let sent = 0
      const t0 = performance.now()
      req.signal.addEventListener("abort", () => (streamed.closed = true), { once: true })
      const stream = new ReadableStream<Uint8Array>({
        start(controller) {
          controller.enqueue(chunk({ role: "assistant", content: "" }, null))
        },
        async pull(controller) {
          if (streamed.closed) return
          const piece = pieces[sent]
          if (piece === undefined) {
            controller.enqueue(chunk({}, "stop"))
            controller.enqueue(sse({ id: rid, object: "chat.completion.chunk", created: 0, model, choices: [], usage }))
            controller.enqueue(encoder.encode("data: [DONE]\n\n"))
            streamed.closed = true
            controller.close()
            return
          }
          if (plan.delayMs > 0) {
            // Paced on absolute time (t0 + k·delay), so the rate is exact and does not drift with timer lateness.
            const due = t0 + (sent + 1) * plan.delayMs - performance.now()
            if (due > 0) await Bun.sleep(due)
            if (streamed.closed) return
          }
          controller.enqueue(chunk({ content: piece }, null))
          streamed.sends.push(performance.now())
          sent += 1
        },
        cancel() {
          streamed.closed = true
        }
      })
      return new Response(stream, { headers: { "content-type": "text/event-stream", "cache-control": "no-cache" } })
    }
  })
  return {
    baseUrl: `http://127.0.0.1:${server.port}/v1`,
    port: server.port ?? 0,
    expect: (id, plan) => {
      plans.set(id, plan)
    },
    streams,
    stop: () => server.stop(true)
  }
}

/**
 * Per-chunk latency bookkeeping for one reply: feed it the text as it reaches the client; each chunk's latency is
 * counted once, when the client has the last text character of that chunk.
 */
export class ChunkClock {
  private received = 0
  private rawReceived = 0
  private lastAt = 0

  constructor(
    private readonly textLength: number,
    private readonly chunkChars: number,
    private readonly out: Array<number>
  ) {}

  /** `n` more text characters arrived at `at`; `s` is the endpoint's record (send times) of this reply. */
  add(n: number, at: number, s: Streamed | undefined): void {
    const from = this.received
    this.received += n
    this.lastAt = at
    this.count(from, this.received, at, s)
  }

  /**
   * `n` more characters of the raw reply (the reply JSON as the endpoint streamed it, `{"text":"` included) arrived:
   * what a relay that forwards the provider's deltas untouched (the floor, the peer) delivers.
   */
  addRaw(n: number, at: number, s: Streamed | undefined): void {
    const from = this.rawReceived
    this.rawReceived += n
    this.lastAt = at
    if (s === undefined) return
    const a = Math.max(0, from - s.textOffset)
    const b = Math.max(0, Math.min(this.textLength, this.rawReceived - s.textOffset))
    this.received = Math.max(this.received, b)
    if (b > a) this.count(a, b, at, s)
  }

  /** Counts the latency of every chunk whose last text character is in text positions [from, to). */
  private count(from: number, to: number, at: number, s: Streamed | undefined): void {
    if (s === undefined) return
    const p = s.textOffset
    for (let j = from; j < to && j < this.textLength; j++) {
      const c = Math.floor((j + p) / this.chunkChars)
      const lastOfChunk = Math.min(c * this.chunkChars + this.chunkChars - 1 - p, this.textLength - 1)
      if (j === lastOfChunk) {
        const sent = s.sends[c]
        if (sent !== undefined) this.out.push(at - sent)
      }
    }
  }

  get done(): boolean {
    return this.received >= this.textLength
  }

  get last(): number {
    return this.lastAt
  }
}

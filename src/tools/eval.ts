/**
 * The `eval` tool: JavaScript in a fresh QuickJS WebAssembly runtime per call, with no host objects,
 * and limits on time, memory, stack and output. Each call runs in a worker thread (evalWorker.ts) so runaway
 * code never blocks this thread; interrupting the call terminates its worker at once.
 */
import { Effect, Schema } from "effect"
import { type Tool, ToolError, type ToolOutput } from "./Tool.ts"
import type { WorkerReply, WorkerRequest } from "./evalWorker.ts"

/** Limits of one `eval` call. */
export interface EvalLimits {
  /** Wall-clock budget of the whole call (compile, run, pending jobs, rendering). */
  readonly timeLimitMs: number
  /** QuickJS's heap limit; this build enforces it per allocation only, the hard cap is `sandboxHeapMaxBytes`. */
  readonly memoryLimitBytes: number
  /** Stack the sandbox may use before "stack overflow". */
  readonly maxStackBytes: number
  /** Characters of output (console lines and result) kept; beyond it the output is cut and `truncated`. */
  readonly outputLimitChars: number
}

/** 2 s, 32 MiB, 512 KiB of stack, 16 KiB of output. */
export const defaultEvalLimits: EvalLimits = {
  timeLimitMs: 2_000,
  memoryLimitBytes: 32 * 1024 * 1024,
  maxStackBytes: 512 * 1024,
  outputLimitChars: 16 * 1024
}

/** Args of `eval`. */
export const EvalArgs = Schema.Struct({
  code: Schema.String.annotations({
    description: "JavaScript to run; the last expression's value is returned, console output captured, top-level await allowed"
  })
})
export type EvalArgs = typeof EvalArgs.Type

/** The `eval` tool with the given limits (defaults: 2 s, 32 MiB, 512 KiB stack, 16 KiB output). */
export const makeEvalTool = (limits: Partial<EvalLimits> = {}): Tool<EvalArgs, typeof EvalArgs.Encoded> => {
  const effective: EvalLimits = { ...defaultEvalLimits, ...limits }
  return {
    name: "eval",
    description:
      "Run JavaScript in an isolated QuickJS sandbox (no network, files, timers or host objects; limited time and memory).",
    args: EvalArgs,
    policy: "ask",
    run: ({ code }) => runSandboxed(code, effective)
  }
}

/**
 * Evaluations in flight right now (0 whenever no `eval` runs), worker threads alive (busy, idle or starting), and
 * the WebAssembly heap size the last finished evaluation reported: tests prove disposal with them.
 */
export const sandboxStats = (): {
  readonly live: number
  readonly heapBytes: number | undefined
  readonly workers: number
} => ({ live, heapBytes: lastHeapBytes, workers: pool.size })

/**
 * Runs `code` in a fresh sandbox on a worker thread, disposed however the call ends. This thread stays free while
 * the code runs; interruption terminates the worker at once (its memory goes with it), and a worker that does not
 * answer within the time limit plus a margin is terminated too.
 */
export const runSandboxed = Effect.fn("Tool.eval")(function* (code: string, limits: EvalLimits = defaultEvalLimits) {
  // The worker copies the code into the sandbox heap; a huge copy must be refused before it is attempted.
  if (code.length > MAX_CODE_CHARS)
    return yield* new ToolError({ message: `the code is too long (${code.length} characters; at most ${MAX_CODE_CHARS})` })
  return yield* runInWorker(code, limits)
})

/** Hard cap of each worker's WebAssembly heap (QuickJS's own limit cannot count, see evalWorker.ts). */
export const sandboxHeapMaxBytes = 48 * 1024 * 1024

const MAX_CODE_CHARS = 256 * 1024
/**
 * Workers alive at most; further calls wait for one to be free. Each holds a 16–48 MiB heap; a few more than the
 * cores, so that runaway calls spinning until their time limit do not hold up every other call.
 */
const MAX_WORKERS = Math.max(4, Math.min(8, navigator.hardwareConcurrency || 4))
/** Idle workers kept warm indefinitely; extra idle ones are terminated after IDLE_TRIM_MS. */
const KEEP_IDLE = 1
const IDLE_TRIM_MS = 10_000
/** A worker that does not answer by the time limit plus this is terminated (the in-worker limit failed). */
const GUARD_MARGIN_MS = 1_000
/** A worker that is not ready (QuickJS loaded) by then is given up. */
const START_TIMEOUT_MS = 15_000

let live = 0
let lastHeapBytes: number | undefined

type WorkerEvent =
  | { readonly kind: "reply"; readonly reply: WorkerReply }
  | { readonly kind: "crash"; readonly message: string }

/** One worker thread; `listen` routes its messages to whoever uses it now. */
class EvalWorker {
  private readonly worker: Worker
  private listener: ((event: WorkerEvent) => void) | undefined
  /** The worker died or was terminated: it is never handed out again. */
  dead = false

  constructor() {
    this.worker = new Worker(new URL("./evalWorker.ts", import.meta.url), {
      name: "eval-sandbox",
      env: {},
      // Idle workers must not keep the process alive; a running call holds its own guard timer.
      ref: false
    })
    this.worker.addEventListener("message", (event: MessageEvent<WorkerReply>) =>
      this.listener?.({ kind: "reply", reply: event.data })
    )
    this.worker.addEventListener("error", (event: ErrorEvent) => this.crash(event.message || "worker error"))
    this.worker.addEventListener("messageerror", () => this.crash("a message could not be read"))
    this.worker.addEventListener("close", () => this.crash("the worker exited"))
    this.post({ type: "init", heapMaxBytes: sandboxHeapMaxBytes })
  }

  listen(listener: (event: WorkerEvent) => void): void {
    this.listener = listener
  }

  post(request: WorkerRequest): void {
    this.worker.postMessage(request)
  }

  terminate(): void {
    this.listener = undefined
    if (this.dead) return
    this.dead = true
    this.worker.terminate()
  }

  private crash(message: string): void {
    if (this.dead) return
    this.dead = true
    this.listener?.({ kind: "crash", message })
  }
}

/** A call waiting for a worker; `deliver` gets a ready worker, or the error that no worker could start. */
interface Waiter {
  readonly deliver: (worker: EvalWorker | ToolError) => void
}

/**
 * Ready workers for `runInWorker`: one is kept warm while idle, more are started for concurrent calls (up to
 * MAX_WORKERS; beyond that calls wait), and a worker terminated on interrupt or timeout is replaced lazily.
 */
class WorkerPool {
  private readonly idle: Array<EvalWorker> = []
  private readonly waiting: Array<Waiter> = []
  private starting = 0
  private total = 0
  private trimTimer: ReturnType<typeof setTimeout> | undefined

  get size(): number {
    return this.total
  }

  /** Hands a ready worker to `deliver`, now or once one is free; the returned function withdraws the request. */
  acquire(deliver: Waiter["deliver"]): () => void {
    const waiter: Waiter = { deliver }
    this.waiting.push(waiter)
    this.pump()
    return () => {
      const index = this.waiting.indexOf(waiter)
      if (index !== -1) this.waiting.splice(index, 1)
    }
  }

  /** Takes back a worker whose run ended normally; it serves the next waiter or waits warm. */
  release(worker: EvalWorker): void {
    if (worker.dead) return this.discard(worker)
    this.idle.push(worker)
    this.pump()
    this.scheduleTrim()
  }

  /** Terminates a worker (interrupted, timed out, crashed or untrusted); a replacement starts only when needed. */
  discard(worker: EvalWorker): void {
    worker.terminate()
    this.total--
    this.pump()
  }

  private pump(): void {
    while (this.waiting.length > 0) {
      const worker = this.idle.pop()
      if (worker === undefined) break
      if (worker.dead) {
        this.discard(worker)
        return
      }
      this.waiting.shift()?.deliver(worker)
    }
    while (this.waiting.length > this.starting && this.total < MAX_WORKERS) this.spawn()
  }

  private spawn(): void {
    this.total++
    this.starting++
    let worker: EvalWorker
    try {
      worker = new EvalWorker()
    } catch (cause) {
      this.starting--
      this.total--
      this.failOne(cause)
      return
    }
    const timer = setTimeout(() => started(new Error(`not ready after ${START_TIMEOUT_MS} ms`)), START_TIMEOUT_MS)
    let done = false
    const started = (failure: unknown): void => {
      if (done) return
      done = true
      clearTimeout(timer)
      this.starting--
      if (failure === undefined) return this.release(worker)
      worker.terminate()
      this.total--
      this.failOne(failure)
      this.pump()
    }
    worker.listen((event) =>
      event.kind === "crash" ? started(new Error(event.message)) : event.reply.type === "ready" ? started(undefined) : undefined
    )
  }

  private failOne(cause: unknown): void {
    this.waiting.shift()?.deliver(new ToolError({ message: `the JavaScript sandbox could not be loaded (${String(cause)})`, cause }))
  }

  private scheduleTrim(): void {
    if (this.idle.length <= KEEP_IDLE || this.trimTimer !== undefined) return
    this.trimTimer = setTimeout(() => {
      this.trimTimer = undefined
      // The least recently used go first; pump hands out the most recently used.
      while (this.idle.length > KEEP_IDLE) {
        const worker = this.idle.shift()
        if (worker !== undefined) {
          worker.terminate()
          this.total--
        }
      }
    }, IDLE_TRIM_MS)
    this.trimTimer.unref()
  }
}

const pool = new WorkerPool()

const timeLimitMessage = (limits: EvalLimits) =>
  `eval stopped: the time limit of ${limits.timeLimitMs} ms was exceeded (the sandbox did not stop by itself and was terminated)`

/** One evaluation on a pooled worker; interruption withdraws the request or terminates the worker at once. */
const runInWorker = (code: string, limits: EvalLimits): Effect.Effect<ToolOutput, ToolError> =>
  Effect.async<ToolOutput, ToolError>((resume) => {
    live++
    let done = false
    let worker: EvalWorker | undefined
    let guard: ReturnType<typeof setTimeout> | undefined
    const end = (keep: boolean): void => {
      done = true
      live--
      if (guard !== undefined) clearTimeout(guard)
      if (worker !== undefined) (keep ? pool.release(worker) : pool.discard(worker))
    }
    const settle = (result: Effect.Effect<ToolOutput, ToolError>, keep: boolean): void => {
      if (done) return
      end(keep)
      resume(result)
    }
    const withdraw = pool.acquire((acquired) => {
      if (acquired instanceof ToolError) return settle(Effect.fail(acquired), false)
      if (done) return pool.release(acquired)
      worker = acquired
      acquired.listen((event) => {
        if (event.kind === "crash")
          return settle(
            Effect.fail(new ToolError({ message: `eval stopped: the JavaScript sandbox crashed (${event.message}); it was discarded` })),
            false
          )
        const reply = event.reply
        if (reply.type !== "result") return
        lastHeapBytes = reply.heapBytes
        if (reply.ok) settle(Effect.succeed({ output: reply.output, truncated: reply.truncated }), true)
        else settle(Effect.fail(new ToolError({ message: reply.error })), !reply.discard)
      })
      guard = setTimeout(
        () => settle(Effect.fail(new ToolError({ message: timeLimitMessage(limits) })), false),
        limits.timeLimitMs + GUARD_MARGIN_MS
      )
      acquired.post({ type: "run", code, limits })
    })
    return Effect.sync(() => {
      if (done) return
      withdraw()
      end(false)
    })
  })

/**
 * The worker thread behind the `eval` tool (see eval.ts): it loads its own QuickJS WebAssembly module once,
 * then runs one evaluation at a time, each in a fresh runtime and context with no host objects, and posts the
 * outcome back. Runaway code blocks only this thread; the main thread terminates the worker to stop it.
 *
 * Protocol: the main thread posts `init` once (the worker answers `ready` when the module is loaded or its loading
 * failed), then one `run` at a time, each answered by one `result`.
 */
import {
  newQuickJSWASMModule,
  newVariant,
  type QuickJSContext,
  type QuickJSHandle,
  type QuickJSRuntime,
  type QuickJSWASMModule,
  RELEASE_SYNC
} from "quickjs-emscripten"
import type { EvalLimits } from "./eval.ts"

/** A message from the main thread. */
export type WorkerRequest =
  | { readonly type: "init"; readonly heapMaxBytes: number }
  | { readonly type: "run"; readonly code: string; readonly limits: EvalLimits }

/** How one evaluation ended: the output for the model, or the error message (console output so far included). */
export type Outcome =
  | { readonly ok: true; readonly output: string; readonly truncated: boolean }
  | { readonly ok: false; readonly error: string }

/**
 * A message from the worker. `discard` means the worker's state can no longer be trusted (a host-side exception
 * inside the WebAssembly module, or the module failed to load): the main thread terminates it rather than reuse it.
 * `heapBytes` is the size of this worker's WebAssembly heap after the run.
 */
export type WorkerReply =
  | { readonly type: "ready" }
  | (Outcome & { readonly type: "result"; readonly discard: boolean; readonly heapBytes: number | undefined })

declare const self: {
  postMessage(message: WorkerReply): void
  addEventListener(type: "message", listener: (event: MessageEvent<WorkerRequest>) => void): void
}

const WASM_PAGE = 64 * 1024
// The module's declared minimum: 16 MiB.
const HEAP_INITIAL_BYTES = 16 * 1024 * 1024

let heapMaxBytes = 48 * 1024 * 1024
let loaded: Promise<QuickJSWASMModule> | undefined
let current: QuickJSWASMModule | undefined

const abandonModule = (): void => {
  loaded = undefined
  current = undefined
}

// Our own module instance, loaded once per worker and reused by its runs. QuickJS cannot measure allocation
// sizes in this build (malloc_usable_size is unavailable), so its memory limit only refuses single huge
// allocations; the hard cap is the maximum of the WebAssembly memory we give it.
const loadModule = (): Promise<QuickJSWASMModule> =>
  (loaded ??= newQuickJSWASMModule(
    newVariant(RELEASE_SYNC, {
      wasmMemory: new WebAssembly.Memory({
        initial: HEAP_INITIAL_BYTES / WASM_PAGE,
        maximum: Math.max(HEAP_INITIAL_BYTES, heapMaxBytes) / WASM_PAGE
      })
    })
  ).then(
    (module) => {
      current = module
      return module
    },
    (cause: unknown) => {
      abandonModule()
      throw cause
    }
  ))

// A host-side exception (not a JS exception inside the sandbox, which comes back as a value) means the
// WebAssembly module may be damaged: it is abandoned (see Sandbox.guard) and the worker asks to be discarded.
const crashMessage = (cause: unknown): string =>
  cause instanceof RangeError
    ? "eval stopped: the code nested too deeply for the sandbox (host stack exhausted); the sandbox was discarded"
    : `eval stopped: the JavaScript sandbox crashed (${String(cause)}); it was discarded`

/** Runs `code` in a fresh sandbox, disposed however the run ends. Synchronous: only this worker's thread waits. */
const evaluate = async (code: string, limits: EvalLimits): Promise<Outcome & { readonly discard: boolean }> => {
  let module: QuickJSWASMModule
  try {
    module = await loadModule()
  } catch (cause) {
    return { ok: false, error: `the JavaScript sandbox could not be loaded (${String(cause)})`, discard: true }
  }
  let sandbox: Sandbox | undefined
  try {
    sandbox = new Sandbox(module, limits)
    sandbox.start(code)
    while (sandbox.step() === "again") {
      // the deadline is checked by every step and by the interrupt handler
    }
    return { ...sandbox.finish(), discard: false }
  } catch (cause) {
    return { ok: false, error: crashMessage(cause), discard: true }
  } finally {
    sandbox?.dispose()
  }
}

self.addEventListener("message", (event) => {
  const request = event.data
  switch (request.type) {
    case "init":
      heapMaxBytes = request.heapMaxBytes
      void loadModule().then(
        () => self.postMessage({ type: "ready" }),
        () => self.postMessage({ type: "ready" })
      )
      return
    case "run":
      void evaluate(request.code, request.limits).then((outcome) =>
        self.postMessage({ ...outcome, type: "result", heapBytes: current?.getWasmMemory().buffer.byteLength })
      )
      return
  }
})

const JOB_BATCH = 1_000
const MAX_STACK_LINES = 10
const MAX_WRAP_CANDIDATES = 8

const mib = (bytes: number) => `${Math.round((bytes / 1024 / 1024) * 10) / 10} MiB`

/**
 * Runs inside the sandbox once: installs `console` (writing through the host function it is given, which
 * is never put on the global object) and returns `render`, the JSON-ish printer used for the result.
 */
const PRELUDE = `(function (write, limit, maxStackLines) {
  "use strict";
  const isArray = Array.isArray, keysOf = Object.keys, quote = JSON.stringify, isView = ArrayBuffer.isView;
  const ErrorCtor = Error, PromiseCtor = Promise, MapCtor = Map, SetCtor = Set, DateCtor = Date, RegExpCtor = RegExp;
  const MAX_ITEMS = 50, MAX_DEPTH = 5, IDENT = /^[A-Za-z_$][A-Za-z0-9_$]*$/;
  function render(value, raw) {
    let size = 0;
    const seen = [];
    const str = (s) => quote(s.length > limit ? s.slice(0, limit) + "…" : s);
    const errorText = (e, top) => {
      const head = String(e.name) + ": " + String(e.message);
      if (!top || typeof e.stack !== "string" || e.stack.length === 0) return head;
      return head + "\\n" + e.stack.split("\\n").filter((l) => l.length > 0).slice(0, maxStackLines).join("\\n");
    };
    const items = (list, depth) => {
      const out = [];
      for (let i = 0; i < list.length && i < MAX_ITEMS && size <= limit; i++) out.push(r(list[i], depth + 1));
      if (list.length > out.length) out.push("… " + (list.length - out.length) + " more");
      return out.join(", ");
    };
    const obj = (v, depth) => {
      if (seen.indexOf(v) !== -1) return "[Circular]";
      if (v instanceof ErrorCtor) return errorText(v, depth === 0);
      if (v instanceof PromiseCtor) return "Promise {}";
      if (v instanceof DateCtor) return isNaN(v.getTime()) ? "Invalid Date" : v.toISOString();
      if (v instanceof RegExpCtor) return String(v);
      if (depth >= MAX_DEPTH) return isArray(v) ? "[Array]" : "[Object]";
      seen.push(v);
      try {
        if (isArray(v)) return "[" + items(v, depth) + "]";
        if (isView(v)) return "TypedArray(" + v.length + ") [" + items(v, depth) + "]";
        if (v instanceof MapCtor) {
          const entries = [];
          for (const [k, x] of v) {
            if (entries.length >= MAX_ITEMS) break;
            entries.push(r(k, depth + 1) + " => " + r(x, depth + 1));
          }
          return "Map(" + v.size + ") {" + entries.join(", ") + "}";
        }
        if (v instanceof SetCtor) {
          const entries = [];
          for (const x of v) { if (entries.length >= MAX_ITEMS) break; entries.push(r(x, depth + 1)); }
          return "Set(" + v.size + ") {" + entries.join(", ") + "}";
        }
        const keys = keysOf(v);
        const parts = [];
        for (let i = 0; i < keys.length && i < MAX_ITEMS && size <= limit; i++) {
          const k = keys[i];
          parts.push((IDENT.test(k) ? k : quote(k)) + ": " + r(v[k], depth + 1));
        }
        if (keys.length > parts.length) parts.push("… " + (keys.length - parts.length) + " more");
        return parts.length === 0 ? "{}" : "{ " + parts.join(", ") + " }";
      } finally {
        seen.pop();
      }
    };
    const r = (v, depth) => {
      if (size > limit) return "…";
      let out;
      switch (typeof v) {
        case "string": out = str(v); break;
        case "number": out = v === 0 && 1 / v < 0 ? "-0" : String(v); break;
        case "boolean": out = String(v); break;
        case "bigint": out = String(v) + "n"; break;
        case "undefined": out = "undefined"; break;
        case "symbol": out = v.toString(); break;
        case "function": out = "[Function " + (v.name || "anonymous") + "]"; break;
        default: out = v === null ? "null" : obj(v, depth);
      }
      size += out.length;
      return out;
    };
    try {
      if (raw && typeof value === "string") return value.length > limit ? value.slice(0, limit) + "…" : value;
      return r(value, 0);
    } catch (e) {
      try { return "[unrenderable value: " + String(e) + "]"; } catch (_) { return "[unrenderable value]"; }
    }
  }
  const print = (level) => function () {
    let line = "";
    for (let i = 0; i < arguments.length && line.length <= limit; i++) line += (i > 0 ? " " : "") + render(arguments[i], true);
    write(level, line.length > limit ? line.slice(0, limit) + "…" : line);
  };
  const log = print("log");
  globalThis.console = { log, info: log, debug: log, warn: print("warn"), error: print("error") };
  return render;
})`

/** One fresh runtime and context; every handle it makes is disposed by `dispose`. */
class Sandbox {
  private readonly runtime: QuickJSRuntime
  private readonly context: QuickJSContext
  private readonly owned: Array<QuickJSHandle> = []
  private readonly render: QuickJSHandle
  private readonly deadline: number
  private timedOut = false
  private disposed = false
  private crashed = false
  private lines: Array<string> = []
  private outputChars = 0
  private truncated = false
  private result: QuickJSHandle | undefined
  private failure: string | undefined

  constructor(module: QuickJSWASMModule, private readonly limits: EvalLimits) {
    this.deadline = performance.now() + limits.timeLimitMs
    this.runtime = module.newRuntime()
    try {
      this.runtime.setMemoryLimit(limits.memoryLimitBytes)
      this.runtime.setMaxStackSize(limits.maxStackBytes)
      this.runtime.setInterruptHandler(() => {
        if (performance.now() > this.deadline) this.timedOut = true
        return this.timedOut
      })
      this.context = this.runtime.newContext()
      this.runtime.removeModuleLoader()
      const preludeResult = this.context.evalCode(PRELUDE, "prelude.js", { type: "global", strict: true })
      const prelude = this.own(this.context.unwrapResult(preludeResult))
      const write = this.own(this.context.newFunction("write", (level, text) => this.write(level, text)))
      const limit = this.own(this.context.newNumber(limits.outputLimitChars))
      const stackLines = this.own(this.context.newNumber(MAX_STACK_LINES))
      const renderResult = this.context.callFunction(prelude, this.context.undefined, write, limit, stackLines)
      this.render = this.own(this.context.unwrapResult(renderResult))
    } catch (error) {
      this.crashed = true
      abandonModule()
      this.dispose()
      throw error
    }
  }

  /** Compiles and runs the code; top-level `await` makes it the body of an async function. */
  start(code: string): void {
    this.guard(() => this.startUnguarded(code))
  }

  /** Runs one batch of pending jobs; "done" once the result settled, failed, or nothing can run any more. */
  step(): "again" | "done" {
    return this.guard(() => this.stepUnguarded())
  }

  /** The output for the model, or the error (with the console output so far). */
  finish(): Outcome {
    return this.guard(() => this.finishUnguarded())
  }

  /** Frees every handle, the context and the runtime; never throws, and never touches a crashed module. */
  dispose(): void {
    if (this.disposed) return
    this.disposed = true
    if (this.crashed) return
    try {
      for (const handle of this.owned.reverse()) if (handle.alive) handle.dispose()
      if (this.context?.alive) this.context.dispose()
      if (this.runtime.alive) this.runtime.dispose()
    } catch {
      abandonModule()
    }
  }

  // After a host-side exception the C state of the module is inconsistent (e.g. a stack unwound mid-call):
  // freeing into it could abort, so the module is abandoned whole and left to the garbage collector.
  private guard<A>(f: () => A): A {
    try {
      return f()
    } catch (error) {
      this.crashed = true
      abandonModule()
      throw error
    }
  }

  private startUnguarded(code: string): void {
    const source = this.pickSource(code)
    const evaluated = this.context.evalCode(source, "sandbox.js", { type: "global" })
    if (evaluated.error) this.failure = this.uncaught(this.own(evaluated.error))
    else this.result = this.own(evaluated.value)
  }

  private stepUnguarded(): "again" | "done" {
    if (this.failure !== undefined || this.result === undefined) return "done"
    const ran = this.runtime.executePendingJobs(JOB_BATCH)
    if (ran.error) {
      this.failure = this.uncaught(this.own(ran.error))
      return "done"
    }
    const pending = this.isPendingPromise(this.result)
    if (!this.runtime.hasPendingJob()) {
      if (pending) this.failure = "the promise never settled: nothing is left to run (no timers, network or I/O here)"
      return "done"
    }
    if (performance.now() > this.deadline) {
      this.timedOut = true
      this.failure = this.timeLimitMessage()
      return "done"
    }
    return "again"
  }

  private finishUnguarded(): Outcome {
    if (this.failure === undefined && this.result !== undefined && !this.timedOut) {
      const settled = this.settledValue(this.result)
      if (settled.ok) {
        const rendered = this.renderValue(settled.value)
        if (rendered !== undefined) {
          this.append(`=> ${rendered}`)
          return { ok: true, output: this.lines.join("\n"), truncated: this.truncated }
        }
      } else this.failure = this.uncaught(settled.value)
    }
    const failure = this.timedOut ? this.timeLimitMessage() : (this.failure ?? "the sandbox stopped without a result")
    const logged = this.lines.length > 0 ? `\n--- console output before the error ---\n${this.lines.join("\n")}` : ""
    const message = `${failure}${logged}`
    const cap = this.limits.outputLimitChars
    return { ok: false, error: message.length > cap ? `${message.slice(0, cap)}…` : message }
  }

  private own(handle: QuickJSHandle): QuickJSHandle {
    this.owned.push(handle)
    return handle
  }

  private write(level: QuickJSHandle, text: QuickJSHandle): void {
    if (this.context.typeof(text) !== "string") return
    const kind = this.context.typeof(level) === "string" ? this.context.getString(level) : "log"
    this.append((kind === "log" ? "" : `[${kind}] `) + this.context.getString(text))
  }

  private append(line: string): void {
    const room = this.limits.outputLimitChars - this.outputChars
    if (room <= 0) {
      this.truncated = true
      return
    }
    const kept = line.length > room ? line.slice(0, room) : line
    if (kept.length < line.length) this.truncated = true
    this.lines.push(kept)
    this.outputChars += kept.length + 1
  }

  // A global script keeps "last expression is the result"; only code that fails to compile because of
  // top-level await is wrapped, trying `return <last statement>` so its value still comes back.
  private pickSource(code: string): string {
    if (this.compiles(code) || !/\bawait\b/.test(code)) return code
    const candidates = [`(async () => (${code}\n))()`]
    const cuts: Array<number> = []
    for (let i = code.length - 1; i >= 0 && cuts.length < MAX_WRAP_CANDIDATES; i--) {
      if ((code[i] === ";" || code[i] === "\n") && code.slice(i + 1).trim().length > 0) cuts.push(i)
    }
    for (const cut of cuts) candidates.push(`(async () => {${code.slice(0, cut + 1)}\nreturn (${code.slice(cut + 1)}\n);})()`)
    candidates.push(`(async () => {${code}\n})()`)
    return candidates.find((candidate) => this.compiles(candidate)) ?? code
  }

  private compiles(source: string): boolean {
    const compiled = this.context.evalCode(source, "sandbox.js", { type: "global", compileOnly: true })
    const ok = compiled.error === undefined
    compiled.dispose()
    return ok
  }

  private isPendingPromise(handle: QuickJSHandle): boolean {
    const state = this.context.getPromiseState(handle)
    if (state.type === "fulfilled" && !state.notAPromise) state.value.dispose()
    if (state.type === "rejected") state.error.dispose()
    return state.type === "pending"
  }

  private settledValue(handle: QuickJSHandle): { readonly ok: boolean; readonly value: QuickJSHandle } {
    const state = this.context.getPromiseState(handle)
    switch (state.type) {
      case "fulfilled":
        return { ok: true, value: state.notAPromise ? handle : this.own(state.value) }
      case "rejected":
        return { ok: false, value: this.own(state.error) }
      case "pending":
        return { ok: false, value: this.own(this.context.newError("the promise never settled")) }
      default: {
        const _exhaustive: never = state
        return _exhaustive
      }
    }
  }

  private renderValue(value: QuickJSHandle): string | undefined {
    const rendered = this.context.callFunction(this.render, this.context.undefined, value)
    if (rendered.error) {
      this.failure = this.uncaught(this.own(rendered.error))
      return undefined
    }
    const text = this.own(rendered.value)
    return this.context.typeof(text) === "string" ? this.context.getString(text) : "[unrenderable value]"
  }

  private uncaught(error: QuickJSHandle): string {
    if (this.timedOut) return this.timeLimitMessage()
    const rendered = this.context.callFunction(this.render, this.context.undefined, error)
    const text =
      rendered.error === undefined && this.context.typeof(rendered.value) === "string"
        ? this.context.getString(rendered.value)
        : "[unrenderable exception]"
    rendered.dispose()
    if (this.timedOut) return this.timeLimitMessage()
    if (text.startsWith("InternalError: out of memory"))
      return `Uncaught ${text}\n(the sandbox has about ${mib(this.limits.memoryLimitBytes)} of memory)`
    if (text.startsWith("InternalError: stack overflow"))
      return `Uncaught InternalError: stack overflow (the sandbox stack limit is ${this.limits.maxStackBytes / 1024} KiB)`
    return `Uncaught ${text}`
  }

  private timeLimitMessage(): string {
    return `eval stopped: the time limit of ${this.limits.timeLimitMs} ms was exceeded`
  }
}

// The eval sandbox under escape and abuse attempts: each must be contained with a clear error or harmless output.
import { describe, expect, test } from "bun:test"
import { Effect, Either, Exit, Fiber } from "effect"
import {
  defaultEvalLimits,
  type EvalLimits,
  makeEvalTool,
  runSandboxed,
  sandboxHeapMaxBytes,
  sandboxStats
} from "../src/tools/eval.ts"
import type { ToolOutput } from "../src/tools/Tool.ts"

// Runaway code is stopped after 300 ms, not 2 s (one test checks the 2 s default); code expected to finish, or to
// hit another limit first, gets 10 s so a busy machine cannot turn it into a time-limit failure.
const fast: EvalLimits = { ...defaultEvalLimits, timeLimitMs: 300 }
const roomy: EvalLimits = { ...defaultEvalLimits, timeLimitMs: 10_000 }

const attempt = (code: string, limits: EvalLimits = roomy): Promise<Either.Either<ToolOutput, string>> =>
  Effect.runPromise(runSandboxed(code, limits).pipe(Effect.mapError((error) => error.message), Effect.either))

const succeeds = async (code: string, limits: EvalLimits = roomy): Promise<ToolOutput> => {
  const result = await attempt(code, limits)
  if (Either.isLeft(result)) throw new Error(`expected success, got error: ${result.left}`)
  return result.right
}

const output = async (code: string, limits: EvalLimits = roomy): Promise<string> => (await succeeds(code, limits)).output

const fails = async (code: string, limits: EvalLimits = roomy): Promise<string> => {
  const result = await attempt(code, limits)
  if (Either.isRight(result)) throw new Error(`expected an error, got output: ${result.right.output}`)
  return result.left
}

// Everything a QuickJS context has of its own; anything else on globalThis would be a host object.
const standardGlobals = new Set([
  "Object", "Function", "Array", "Number", "parseFloat", "parseInt", "Infinity", "NaN", "undefined", "Boolean", "String",
  "Symbol", "Date", "Promise", "RegExp", "Error", "AggregateError", "EvalError", "RangeError", "ReferenceError",
  "SyntaxError", "TypeError", "URIError", "InternalError", "globalThis", "JSON", "Math", "Intl", "ArrayBuffer",
  "SharedArrayBuffer", "Uint8Array", "Int8Array", "Uint16Array", "Int16Array", "Uint32Array", "Int32Array",
  "Float16Array", "Float32Array", "Float64Array", "Uint8ClampedArray", "BigUint64Array", "BigInt64Array", "DataView",
  "Map", "BigInt", "Set", "WeakMap", "WeakSet", "WeakRef", "FinalizationRegistry", "Proxy", "Reflect", "decodeURI",
  "decodeURIComponent", "encodeURI", "encodeURIComponent", "escape", "unescape", "eval", "isFinite", "isNaN",
  "Iterator", "console"
])

describe("eval: the basics", () => {
  test("returns the last expression, JSON-ish", async () => {
    expect(await output("1 + 1")).toBe("=> 2")
    expect(await output("({ a: 1, b: [1, 'two', { c: null }] })")).toBe('=> { a: 1, b: [1, "two", { c: null }] }')
    expect(await output("'text'")).toBe('=> "text"')
  })

  test("captures console.log, warn and error in order, before the result", async () => {
    expect(await output("console.log('a', 1, { b: 2 }); console.warn('w'); console.error('e'); 42")).toBe(
      "a 1 { b: 2 }\n[warn] w\n[error] e\n=> 42"
    )
  })

  test("the tool's schema and default policy", async () => {
    const tool = makeEvalTool()
    expect(tool.name).toBe("eval")
    expect(tool.policy).toBe("ask")
    expect(await Effect.runPromise(tool.run({ code: "6 * 7" }))).toEqual({ output: "=> 42", truncated: false })
  })
})

describe("eval: escape attempts", () => {
  test("1. process is absent", async () => {
    expect(await output("typeof process")).toBe('=> "undefined"')
    expect(await fails("process.exit(1)")).toContain("ReferenceError: 'process' is not defined")
  })

  test("2. Bun is absent", async () => {
    expect(await fails("Bun.file('/etc/passwd')")).toContain("ReferenceError: 'Bun' is not defined")
  })

  test("3. require is absent", async () => {
    expect(await fails("require('fs').readFileSync('/etc/passwd', 'utf8')")).toContain("'require' is not defined")
  })

  test("4. dynamic import('fs') is refused", async () => {
    expect(await fails("import('fs')")).toContain("could not load module 'fs'")
    expect(await fails("await import('node:child_process')")).toContain("could not load module")
  })

  test("5. static import is a syntax error", async () => {
    expect(await fails("import fs from 'fs'; fs")).toContain("SyntaxError")
  })

  test("6. globalThis holds only standard built-ins", async () => {
    const names = await output("Object.getOwnPropertyNames(globalThis).join(',')")
    const list = names.slice(4, -1).split(",")
    expect(list.length).toBeGreaterThan(20)
    expect(list.filter((name) => !standardGlobals.has(name))).toEqual([])
  })

  test("7. this.constructor.constructor('return process')() finds no process", async () => {
    expect(await fails("this.constructor.constructor('return process')()")).toContain("'process' is not defined")
  })

  test("8. Function('return this')() is the sandbox's own global", async () => {
    expect(await output("const g = Function('return this')(); [g === globalThis, typeof g.process, typeof g.Bun]")).toBe(
      '=> [true, "undefined", "undefined"]'
    )
  })

  test("9. ({}).constructor.constructor reaches only sandbox code", async () => {
    expect(await output("({}).constructor.constructor('return typeof require + typeof fetch')()")).toBe('=> "undefinedundefined"')
  })

  test("10. prototype pollution stays inside the sandbox", async () => {
    expect(await output("Object.prototype.polluted = 'yes'; Array.prototype.evil = 1; ({}).polluted")).toBe('=> "yes"')
    expect(({} as Record<string, unknown>).polluted).toBeUndefined()
    expect(([] as unknown as Record<string, unknown>).evil).toBeUndefined()
    // and the next call gets a fresh context
    expect(await output("({}).polluted")).toBe("=> undefined")
  })

  test("11. Error.prepareStackTrace and captureStackTrace tricks do nothing", async () => {
    expect(
      await output("Error.prepareStackTrace = (e, frames) => frames; const s = new Error('x').stack; [typeof s, typeof Error.captureStackTrace]")
    ).toBe('=> ["string", "undefined"]')
  })

  test("12. eval and new Function inside the sandbox work but stay contained", async () => {
    expect(await output("eval('1 + 2') + new Function('return 4')()")).toBe("=> 7")
    expect(await output("[eval('typeof process'), new Function('return typeof Bun')()]")).toBe('=> ["undefined", "undefined"]')
  })

  test("13. WebAssembly is not exposed", async () => {
    expect(await output("typeof WebAssembly")).toBe('=> "undefined"')
  })

  test("14. SharedArrayBuffer is inert and Atomics.wait is absent", async () => {
    expect(await output("new SharedArrayBuffer(8).byteLength")).toBe("=> 8")
    expect(await fails("Atomics.wait(new Int32Array(new SharedArrayBuffer(8)), 0, 0)")).toContain("'Atomics' is not defined")
  })

  test("15. no network: fetch, XMLHttpRequest, WebSocket are absent", async () => {
    expect(await output("[typeof fetch, typeof XMLHttpRequest, typeof WebSocket]")).toBe(
      '=> ["undefined", "undefined", "undefined"]'
    )
    expect(await fails("await fetch('http://127.0.0.1/')")).toContain("'fetch' is not defined")
  })

  test("16. no timers: setTimeout, setInterval, queueMicrotask are absent", async () => {
    expect(await output("[typeof setTimeout, typeof setInterval, typeof setImmediate, typeof queueMicrotask]")).toBe(
      '=> ["undefined", "undefined", "undefined", "undefined"]'
    )
  })

  test("17. the host write function behind console is not reachable", async () => {
    expect(await output("[typeof write, Object.keys(globalThis).includes('write'), Object.keys(console).join()]")).toBe(
      '=> ["undefined", false, "log,info,debug,warn,error"]'
    )
  })

  test("18. Symbol tricks: inspect.custom and toPrimitive are not called by the renderer", async () => {
    expect(
      await output(
        "({ a: 1, [Symbol.for('nodejs.util.inspect.custom')]() { throw new Error('called') }, [Symbol.toPrimitive]() { throw new Error('called') } })"
      )
    ).toBe("=> { a: 1 }")
    expect(await output("Symbol('s')")).toBe("=> Symbol(s)")
  })

  test("19. Proxy traps that throw or loop are contained", async () => {
    expect(await output("new Proxy({}, { ownKeys() { throw new Error('keys') } })")).toBe("=> [unrenderable value: Error: keys]")
    expect(await fails("new Proxy({}, { ownKeys() { for (;;) {} } })", fast)).toContain("time limit of 300 ms")
  })

  test("20. a getter that never returns, hit while rendering the result, is stopped", async () => {
    expect(await fails("({ get x() { for (;;) {} } })", fast)).toContain("time limit of 300 ms")
  })

  test("21. sandboxes do not share globals", async () => {
    expect(await output("globalThis.leak = 1; leak")).toBe("=> 1")
    expect(await output("typeof leak")).toBe('=> "undefined"')
  })
})

describe("eval: abuse of time, memory, stack and output", () => {
  test("22. while(true){} stops at the default 2 s time limit", async () => {
    const started = performance.now()
    expect(await fails("while (true) {}", defaultEvalLimits)).toBe("eval stopped: the time limit of 2000 ms was exceeded")
    expect(performance.now() - started).toBeLessThan(5_000)
  })

  test("23. try/catch cannot swallow the time limit", async () => {
    expect(await fails("for (;;) { try { while (true) {} } catch (e) {} }", fast)).toContain("time limit of 300 ms")
  })

  test("24. for(;;){} in a promise job is stopped", async () => {
    expect(await fails("Promise.resolve().then(() => { for (;;) {} }); 1", fast)).toContain("time limit of 300 ms")
  })

  test("25. an endless async loop that yields every turn is stopped", async () => {
    expect(await fails("(async () => { for (;;) await null })()", fast)).toContain("time limit of 300 ms")
  })

  test("26. new Array(1e9).fill(0) hits the memory limit", async () => {
    const error = await fails("new Array(1e9).fill(0)")
    expect(error).toContain("out of memory")
    expect(error).toContain("32 MiB")
  })

  test("27. accumulating strings hits the memory limit", async () => {
    expect(await fails("const a = []; for (;;) a.push('x'.repeat(1 << 20) + a.length)")).toContain("out of memory")
  })

  test("28. string doubling is stopped", async () => {
    expect(await fails("let s = 'x'; for (;;) { s += s; s.indexOf('y') }")).toMatch(/string too long|out of memory/)
  })

  test("29. typed arrays cannot grow the host heap past the cap", async () => {
    expect(await fails("const a = []; for (;;) a.push(new Uint8Array(1 << 20))")).toContain("out of memory")
    expect(sandboxStats().heapBytes ?? Number.POSITIVE_INFINITY).toBeLessThanOrEqual(sandboxHeapMaxBytes)
  })

  test("30. catastrophic regex backtracking is stopped by the time limit", async () => {
    expect(await fails("/^(a+)+$/.test('a'.repeat(40) + 'b')", fast)).toContain("time limit of 300 ms")
  })

  test("31. code too long to copy into the sandbox is refused up front", async () => {
    expect(await fails(`'${"x".repeat(300 * 1024)}'`)).toContain("the code is too long")
  })

  test("32. deep recursion overflows the sandbox stack, not the host's", async () => {
    expect(await fails("function f(n) { return f(n + 1) + 1 } f(0)")).toContain("stack overflow")
  })

  test("33. deeply nested JSON is refused and the next eval still works", async () => {
    expect(await fails("JSON.parse('['.repeat(200000) + ']'.repeat(200000))")).toMatch(/stack overflow|nested too deeply/)
    expect(await output("[1, [2, [3]]]")).toBe("=> [1, [2, [3]]]")
  })

  test("34. huge console output is capped and marked truncated", async () => {
    const result = await succeeds("for (let i = 0; i < 5000; i++) console.log('line ' + i)")
    expect(result.truncated).toBe(true)
    expect(result.output.length).toBeLessThanOrEqual(roomy.outputLimitChars)
    expect(result.output.startsWith("line 0\nline 1\n")).toBe(true)
  })

  test("35. a huge return value is capped and marked truncated", async () => {
    const result = await succeeds("'x'.repeat(10_000_000)")
    expect(result.truncated).toBe(true)
    expect(result.output.length).toBeLessThanOrEqual(roomy.outputLimitChars)
  })

  test("36. big and deep structures render in bounded form", async () => {
    expect(await output("Array.from({ length: 1000 }, (_, i) => i)")).toEndWith("49, … 950 more]")
    expect(await output("let a = []; for (let i = 0; i < 100000; i++) a = [a]; a")).toBe("=> [[[[[[Array]]]]]]")
  })
})

describe("eval: promises and errors", () => {
  test("37. a promise that never settles fails clearly", async () => {
    expect(await fails("new Promise(() => {})")).toContain("the promise never settled")
  })

  test("38. top-level await returns the last expression", async () => {
    expect(await output("const x = await Promise.resolve(20); x + 1")).toBe("=> 21")
    expect(await output("const y = await Promise.resolve(2)\ny * 3")).toBe("=> 6")
    expect(await output("await 5")).toBe("=> 5")
  })

  test("39. async function results are awaited; rejections become errors", async () => {
    expect(await output("(async () => { await null; console.log('inside'); return 'v' })()")).toBe('inside\n=> "v"')
    expect(await fails("(async () => { throw new TypeError('nope') })()")).toContain("Uncaught TypeError: nope")
  })

  test("40. thrown non-Error values are reported", async () => {
    expect(await fails("throw 42")).toBe("Uncaught 42")
    expect(await fails("throw { code: 7 }")).toBe("Uncaught { code: 7 }")
    expect(await fails("throw null")).toBe("Uncaught null")
    expect(await fails("Promise.reject('str')")).toBe('Uncaught "str"')
  })

  test("41. an error whose name getter throws is still reported", async () => {
    expect(await fails("const e = new Error('x'); Object.defineProperty(e, 'name', { get() { throw e } }); throw e")).toStartWith(
      "Uncaught "
    )
  })

  test("42. syntax errors say where", async () => {
    expect(await fails("let = = 1")).toBe("Uncaught SyntaxError: unexpected token in expression: '='\n    at sandbox.js:1:7")
  })

  test("43. JSON.stringify of a cyclic value is a TypeError; returning one renders [Circular]", async () => {
    expect(await fails("const a = {}; a.self = a; JSON.stringify(a)")).toContain("TypeError: circular reference")
    expect(await output("const a = {}; a.self = a; a")).toBe("=> { self: [Circular] }")
  })

  test("44. console output before an error is kept in the error", async () => {
    expect(await fails("console.log('step 1'); null.x")).toContain("--- console output before the error ---\nstep 1")
  })
})

describe("eval: lifecycle", () => {
  test("45. interrupting the fiber stops the run and disposes the sandbox", async () => {
    const program = Effect.gen(function* () {
      const fiber = yield* Effect.fork(runSandboxed("(async () => { for (;;) await null })()", { ...roomy, timeLimitMs: 20_000 }))
      while (sandboxStats().live === 0) yield* Effect.yieldNow()
      const exit = yield* Fiber.interrupt(fiber)
      return { exit, live: sandboxStats().live }
    })
    const started = performance.now()
    const { exit, live } = await Effect.runPromise(program)
    expect(Exit.isInterrupted(exit)).toBe(true)
    expect(live).toBe(0)
    expect(performance.now() - started).toBeLessThan(5_000)
  })

  test("46. 100 calls in a row leave no sandbox and no growing heap behind", async () => {
    for (let i = 0; i < 100; i++) {
      expect(await output(`const a = new Array(200000).fill(${i}); a.length + a[0]`)).toBe(`=> ${200000 + i}`)
    }
    // Each call holds 1.6 MB: leaked runtimes would fill the capped heap and the later calls would fail above.
    expect(100 * 1.6 * 1024 * 1024).toBeGreaterThan(sandboxHeapMaxBytes)
    expect(sandboxStats().live).toBe(0)
  })

  test("47. afterwards the host is unaffected and a normal eval works", async () => {
    expect(await output("[1, 2, 3].map((x) => x * 2)")).toBe("=> [2, 4, 6]")
    expect(({} as Record<string, unknown>).polluted).toBeUndefined()
    expect(typeof process.exit).toBe("function")
    expect(sandboxStats().live).toBe(0)
  })
})

describe("eval: worker threads", () => {
  const spin: EvalLimits = { ...defaultEvalLimits, timeLimitMs: 2_000 }

  test("48. while(true){} in eval does not block the main thread: a 50 ms timer fires on time", async () => {
    let evalDone = false
    const running = attempt("while (true) {}", spin).then((result) => {
      evalDone = true
      return result
    })
    const started = performance.now()
    await new Promise<void>((resolve) => setTimeout(resolve, 50))
    const waited = performance.now() - started
    expect(waited).toBeLessThan(500)
    expect(evalDone).toBe(false)
    expect(sandboxStats().live).toBe(1)
    const result = await running
    expect(Either.isLeft(result) && result.left).toBe("eval stopped: the time limit of 2000 ms was exceeded")
  })

  test("49. interrupting while(true){} after 100 ms ends it at once; the next eval works", async () => {
    const program = Effect.gen(function* () {
      const fiber = yield* Effect.fork(runSandboxed("while (true) {}", { ...roomy, timeLimitMs: 20_000 }))
      yield* Effect.sleep("100 millis")
      const workersWhileRunning = sandboxStats().workers
      const started = performance.now()
      const exit = yield* Fiber.interrupt(fiber)
      return { exit, took: performance.now() - started, workersWhileRunning, after: sandboxStats() }
    })
    const started = performance.now()
    const { exit, took, workersWhileRunning, after } = await Effect.runPromise(program)
    expect(Exit.isInterrupted(exit)).toBe(true)
    expect(took).toBeLessThan(100)
    expect(performance.now() - started).toBeLessThan(1_000)
    expect(after.live).toBe(0)
    // the spinning worker was terminated (its heap goes with it), not returned to the pool
    expect(after.workers).toBe(workersWhileRunning - 1)
    expect(await output("1 + 1")).toBe("=> 2")
  })

  test("50. 20 concurrent evals all return correct results", async () => {
    const codes = Array.from({ length: 20 }, (_, i) =>
      i % 2 === 0 ? `console.log('n', ${i}); ${i} * 3` : `const x = await Promise.resolve(${i}); ({ i: x, sq: x * x })`
    )
    const results = await Promise.all(codes.map((code) => output(code)))
    results.forEach((result, i) => {
      expect(result).toBe(i % 2 === 0 ? `n ${i}\n=> ${i * 3}` : `=> { i: ${i}, sq: ${i * i} }`)
    })
    expect(sandboxStats().live).toBe(0)
  })

  test("51. a runaway eval does not delay another eval running beside it", async () => {
    const runaway = attempt("for (;;) {}", spin)
    const started = performance.now()
    expect(await output("[1, 2, 3].length")).toBe("=> 3")
    expect(performance.now() - started).toBeLessThan(1_000)
    expect(Either.isLeft(await runaway)).toBe(true)
  })

  test("52. interrupting evals that wait for a busy pool withdraws them; the pool still serves", async () => {
    const program = Effect.gen(function* () {
      const fibers = yield* Effect.forEach(Array.from({ length: 12 }), () =>
        Effect.fork(runSandboxed("while (true) {}", { ...roomy, timeLimitMs: 20_000 }))
      )
      yield* Effect.sleep("100 millis")
      const started = performance.now()
      yield* Fiber.interruptAll(fibers)
      return performance.now() - started
    })
    expect(await Effect.runPromise(program)).toBeLessThan(500)
    expect(sandboxStats().live).toBe(0)
    const results = await Promise.all(Array.from({ length: 4 }, (_, i) => output(`${i} + 1`)))
    expect(results).toEqual(["=> 1", "=> 2", "=> 3", "=> 4"])
  })
})

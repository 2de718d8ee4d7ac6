/**
 * Test support: starts a project process (server or worker) and resolves once its output matches `ready`, waiting on
 * the output itself rather than polling; the one way tests launch `src/main.ts` and `src/worker.ts`.
 */
import { resolve } from "node:path"

export const ROOT = resolve(import.meta.dir, "../..")

export interface Spawned {
  readonly proc: ReturnType<typeof Bun.spawn>
  /** The match of `ready` in the output. */
  readonly match: RegExpExecArray
  /** Everything it printed so far (stdout and stderr). */
  readonly output: () => string
  /** Sends `signal` (SIGTERM: graceful; SIGKILL: as if it crashed), SIGKILL after 5 s, and answers the exit code. */
  readonly stop: (signal?: "SIGTERM" | "SIGKILL") => Promise<number>
}

export const spawnUntil = async (
  argv: ReadonlyArray<string>,
  env: Readonly<Record<string, string | undefined>>,
  ready: RegExp,
  ms = 30_000
): Promise<Spawned> => {
  const proc = Bun.spawn([...argv], { cwd: ROOT, env, stdin: "ignore", stdout: "pipe", stderr: "pipe" })
  let text = ""
  const drain = async (stream: ReadableStream<Uint8Array>, onText: () => void) => {
    const decoder = new TextDecoder()
    const reader = stream.getReader()
    for (;;) {
      const { done, value } = await reader.read()
      if (done) return
      text += decoder.decode(value, { stream: true })
      onText()
    }
  }
  const match = await new Promise<RegExpExecArray>((found, fail) => {
    const timer = setTimeout(() => fail(new Error(`${argv.join(" ")} did not get ready within ${ms} ms:\n${text}`)), ms)
    const check = () => {
      const m = ready.exec(text)
      if (m) {
        clearTimeout(timer)
        found(m)
      }
    }
    void drain(proc.stdout, check)
    void drain(proc.stderr, check)
    void proc.exited.then((code) => {
      clearTimeout(timer)
      fail(new Error(`${argv.join(" ")} exited (${code}) before it was ready:\n${text}`))
    })
  })
  return {
    proc,
    match,
    output: () => text,
    stop: async (signal = "SIGTERM") => {
      if (proc.exitCode === null && proc.signalCode === null) {
        proc.kill(signal)
        const timer = setTimeout(() => proc.kill("SIGKILL"), 5_000)
        await proc.exited
        clearTimeout(timer)
      }
      return proc.exitCode ?? -1
    }
  }
}

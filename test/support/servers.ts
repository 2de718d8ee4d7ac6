/**
 * Test support: the server processes of one test file, started on demand and killed after its last test; and one raw
 * HTTP exchange over a socket, for requests `fetch` cannot make (no Host, a raw path, a lying content-length).
 */
import { afterAll } from "bun:test"
import { connect } from "node:net"
import { type ServerProcess, startServer } from "./server.ts"

/** `start(env)` for this file's tests; every server it started is killed after the file's last test. */
export const useServers = () => {
  const running: Array<ServerProcess> = []
  afterAll(async () => {
    for (const s of running) if (s.proc.exitCode === null) await s.stop("SIGKILL")
  })
  return async (env: Record<string, string> = {}): Promise<ServerProcess> => {
    const s = await startServer(env)
    running.push(s)
    return s
  }
}

/** Writes `request` on a new socket and answers everything read until the server closes it (or `done` holds). */
export const rawHttp = (port: number, request: string, done: (text: string) => boolean = () => false): Promise<string> =>
  new Promise((resolve, reject) => {
    const socket = connect(port, "127.0.0.1", () => socket.write(request))
    let text = ""
    socket.on("data", (d) => {
      text += String(d)
      if (done(text)) socket.destroy()
    })
    socket.on("close", () => resolve(text))
    socket.on("error", reject)
  })

/** The `error` of an `/api` problem response. */
export const errorOf = async (res: Response) => ((await res.json()) as { error: { code: string; message: string } }).error

/**
 * A loopback TCP proxy that counts the bytes the server sends to the client: what the websocket costs on the wire
 * (frame headers included), independent of how the client library reports messages.
 */
import { createServer, connect, type Server } from "node:net"

export interface CountingProxy {
  readonly port: number
  /** Bytes server → client since start (or the last `reset`). */
  readonly downBytes: () => number
  readonly reset: () => void
  readonly stop: () => Promise<void>
}

export const startProxy = async (targetPort: number): Promise<CountingProxy> => {
  let down = 0
  const server: Server = createServer((client) => {
    const upstream = connect(targetPort, "127.0.0.1")
    upstream.on("data", (d: Buffer) => {
      down += d.length
    })
    client.pipe(upstream)
    upstream.pipe(client)
    const end = () => {
      client.destroy()
      upstream.destroy()
    }
    client.on("error", end)
    upstream.on("error", end)
    client.on("close", end)
    upstream.on("close", end)
  })
  await new Promise<void>((res) => server.listen(0, "127.0.0.1", () => res()))
  const address = server.address()
  const port = typeof address === "object" && address !== null ? address.port : 0
  return {
    port,
    downBytes: () => down,
    reset: () => {
      down = 0
    },
    stop: () => new Promise<void>((res) => server.close(() => res()))
  }
}

/**
 * Test support: a loopback TCP proxy in front of a service (PostgreSQL), which a test can cut: every open connection
 * is reset and new ones are refused until the outage ends. What a store that fails for a while looks like to a process.
 */
import { connect, createServer, type Server, type Socket } from "node:net"

export interface TcpProxy {
  readonly port: number
  /** Whether an outage is on now. */
  readonly down: () => boolean
  /** Resets every open connection and refuses new ones for `ms`; resolves when connections are accepted again. */
  readonly cut: (ms: number) => Promise<void>
  /** Resolves when no outage is on (at once if none is). */
  readonly whenUp: () => Promise<void>
  /** Connections reset or refused by outages so far. */
  readonly refused: () => number
  readonly stop: () => Promise<void>
}

export const startTcpProxy = async (targetPort: number, targetHost = "127.0.0.1"): Promise<TcpProxy> => {
  /** Each open connection: the client's socket and its upstream. */
  const open = new Map<Socket, Socket>()
  let downUntil = 0
  let refused = 0
  const isDown = () => Date.now() < downUntil

  const server: Server = createServer((client) => {
    if (isDown()) {
      refused++
      client.destroy()
      return
    }
    const upstream = connect(targetPort, targetHost)
    open.set(client, upstream)
    client.pipe(upstream)
    upstream.pipe(client)
    const end = () => {
      open.delete(client)
      client.destroy()
      upstream.destroy()
    }
    for (const s of [client, upstream]) {
      s.on("error", end)
      s.on("close", end)
    }
  })
  await new Promise<void>((res) => server.listen(0, "127.0.0.1", () => res()))
  const address = server.address()
  const port = typeof address === "object" && address !== null ? address.port : 0

  const whenUp = () =>
    new Promise<void>((res) => {
      const check = () => (isDown() ? setTimeout(check, Math.max(1, downUntil - Date.now())) : res())
      check()
    })

  const cut = (ms: number) => {
    downUntil = Math.max(downUntil, Date.now() + ms)
    for (const [client, upstream] of [...open]) {
      refused++
      // An RST, not a clean end: the process sees its connection fail mid-query.
      client.resetAndDestroy()
      upstream.destroy()
    }
    open.clear()
    return whenUp()
  }

  return {
    port,
    down: isDown,
    cut,
    whenUp,
    refused: () => refused,
    stop: () =>
      new Promise<void>((res) => {
        for (const [client, upstream] of open) {
          client.destroy()
          upstream.destroy()
        }
        open.clear()
        server.close(() => res())
      })
  }
}

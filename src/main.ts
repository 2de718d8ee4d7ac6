/**
 * The server process: configuration, store, bus, writer, model, tools, runners, server (src/runtime.ts). Alone (SQLite,
 * memory) it closes what a previous run left open before accepting connections (DESIGN.md rule 6); on PostgreSQL,
 * leases and the reaper do that across processes. SIGINT/SIGTERM shut down gracefully.
 */
import { runServer } from "./runtime.ts"

runServer()

// Loaded once before every test file: the BAML client must be imported here, not at the top of a test.
import { setDefaultTimeout } from "bun:test"

process.env.BAML_LOG ??= "warn"
// End-to-end tests start real processes; plain `bun test` gets the same allowance as `npm test`.
setDefaultTimeout(120_000)
await import("../../baml_client/index.ts")

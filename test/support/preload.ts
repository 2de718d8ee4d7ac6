// Loaded once before every test file: the BAML client must be imported here, not at the top of a test.
import { setDefaultTimeout } from "bun:test"

process.env.BAML_LOG ??= "warn"
// End-to-end tests start real processes: a long default timeout. Bun applies it to the first test file only, so
// `npm test` passes `--timeout 120000` as well (the README says to run that with Bun alone).
setDefaultTimeout(120_000)
await import("../../baml_client/index.ts")

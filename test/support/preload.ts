// Loaded once before every test file: the BAML client must be imported here, not at the top of a test.
process.env.BAML_LOG ??= "warn"
await import("../../baml_client/index.ts")
export {}

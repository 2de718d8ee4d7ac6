/**
 * Test support: runs `http_get` once in a process of its own (so the test can give it extra trusted CAs through
 * NODE_EXTRA_CA_CERTS) and prints `{"ok":true,"output":…}` or `{"ok":false,"error":…}` as one JSON line.
 * argv: <url> <allow, comma-separated>; env TAPE_TEST_RESOLVE: `{"name":["address",…]}`, the only names it resolves.
 */
import { Effect } from "effect"
import { makeHttpGetTool } from "../../src/tools/httpGet.ts"

const [url = "", allow = ""] = process.argv.slice(2)
const names: Record<string, ReadonlyArray<string>> = JSON.parse(process.env["TAPE_TEST_RESOLVE"] ?? "{}")
const resolve = async (name: string) => {
  const found = names[name]
  if (found === undefined) throw Object.assign(new Error(`${name} is not in TAPE_TEST_RESOLVE`), { code: "ENOTFOUND" })
  return found
}
const result = await Effect.runPromise(
  makeHttpGetTool(allow.split(","), {}, resolve)
    .run({ url })
    .pipe(
      Effect.match({ onFailure: (error) => ({ ok: false, error: error.message }), onSuccess: (out) => ({ ok: true, output: out.output }) })
    )
)
console.log(JSON.stringify(result))

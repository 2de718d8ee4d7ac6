/**
 * The JSON Schemas of the four built-in tools' args (their Effect Schemas through `JSONSchema.make`), for the model's
 * tool offer. Interim: once the catalogue gives every tool's `parameters`, the runner passes those and this goes.
 */
import { JSONSchema } from "effect"
import { EvalArgs } from "../tools/eval.ts"
import { ListFilesArgs, ReadFileArgs } from "../tools/files.ts"
import { HttpGetArgs } from "../tools/httpGet.ts"
import type { JsonSchema } from "./toolTypes.ts"

const schemas: Readonly<Record<string, JsonSchema>> = {
  eval: { ...JSONSchema.make(EvalArgs) },
  read_file: { ...JSONSchema.make(ReadFileArgs) },
  list_files: { ...JSONSchema.make(ListFilesArgs) },
  http_get: { ...JSONSchema.make(HttpGetArgs) }
}

/** The args schema of a built-in tool; any object for another name (its own check still judges the args). */
export const builtinParameters = (tool: string): JsonSchema => schemas[tool] ?? { type: "object" }

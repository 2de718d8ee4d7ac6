// Test support: the args schema the catalogue offers the model for a built-in tool (any object for another name).
import { makeCatalogue } from "../../src/tools/catalogue.ts"

const specs = new Map(makeCatalogue({ workspace: ".", httpAllow: [] }).specs().map((s) => [s.name, s.parameters]))

export const builtinParameters = (tool: string): { readonly [key: string]: unknown } => specs.get(tool) ?? { type: "object" }

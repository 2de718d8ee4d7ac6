/**
 * The built-in tools' names and the TAPE_TOOL_POLICY format. Pure and apart from the catalogue, so the configuration and the
 * catalogue can both use it.
 */
import { Either } from "effect"
import type { ApprovalPolicy } from "./Tool.ts"

/** The names of the tools, in prompt order. */
export const toolNames = ["eval", "read_file", "list_files", "http_get"] as const
/** One of `toolNames`. */
export type ToolName = (typeof toolNames)[number]

export const isToolName = (name: string): name is ToolName => (toolNames as ReadonlyArray<string>).includes(name)

/** Parses `eval=auto,http_get=ask` (the TAPE_TOOL_POLICY format). */
export const parsePolicies = (text: string): Either.Either<Partial<Record<ToolName, ApprovalPolicy>>, string> => {
  const policies: Partial<Record<ToolName, ApprovalPolicy>> = {}
  for (const item of text.split(",").map((part) => part.trim()).filter((part) => part.length > 0)) {
    const [name = "", policy = "", ...rest] = item.split("=").map((part) => part.trim())
    if (rest.length > 0 || !isToolName(name) || (policy !== "ask" && policy !== "auto"))
      return Either.left(`bad entry ${JSON.stringify(item)}: expected <tool>=ask|auto with tool one of ${toolNames.join(", ")}`)
    policies[name] = policy
  }
  return Either.right(policies)
}


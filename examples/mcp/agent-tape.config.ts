/**
 * An example agent: one tool of your own and one MCP server. Run it with
 *   TAPE_CONFIG=examples/mcp/agent-tape.config.ts npm start
 * then ask "remember that the door code is 4921" (a write: you approve it) and "what do you remember?" (a read:
 * it runs by itself), or ask for the MCP server's echo. With a real model configured (ANTHROPIC_API_KEY, …) the
 * model decides when to call them; the built-in offline model only does arithmetic and eval.
 */
import { resolve } from "node:path"
import { defineConfig, Schema, tool } from "agent-tape"

const memory = new Map<string, string>()

export default defineConfig({
  instructions: "You are a helpful assistant with a small memory. Use the memory tool to remember and recall facts.",
  tools: {
    memory: tool({
      description: "Remember a fact under a key, or recall one (or all, with no key)",
      args: Schema.Struct({
        action: Schema.Literal("remember", "recall").annotations({ description: "remember stores, recall reads" }),
        key: Schema.optional(Schema.String.annotations({ description: "what the fact is about" })),
        fact: Schema.optional(Schema.String.annotations({ description: "the fact, for remember" }))
      }),
      // Reading runs by itself; writing waits for your approval.
      policy: (args) => (args.action === "recall" ? "auto" : "ask"),
      run: ({ action, key, fact }) => {
        if (action === "remember") {
          if (key === undefined || fact === undefined) throw new Error("remember needs a key and a fact")
          memory.set(key, fact)
          return `remembered ${key}`
        }
        return key === undefined ? Object.fromEntries(memory) : (memory.get(key) ?? `nothing remembered about ${key}`)
      }
    })
  },
  mcpServers: {
    // The reference MCP server (a devDependency of this repository); in your project, e.g.
    // { "command": "npx", "args": ["-y", "@modelcontextprotocol/server-everything"] }
    everything: {
      command: process.execPath,
      args: [resolve(import.meta.dir, "../../node_modules/@modelcontextprotocol/server-everything/dist/index.js"), "stdio"],
      tools: ["echo", "get-sum"]
    }
  }
})

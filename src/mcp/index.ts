/** The MCP client module's public surface: config, the McpClients service, its errors, limits and catalogue types. */
export {
  decodeMcpServers,
  loadMcpConfigFile,
  McpConfigError,
  mcpServersFromEnv,
  type McpHttpServer,
  type McpPolicy,
  type McpServerConfig,
  type McpStdioServer
} from "./config.ts"
export { McpCallError, type McpCallFailure, McpStartupError } from "./errors.ts"
export { defaultMcpLimits, type McpLimits, mcpLimits } from "./limits.ts"
export {
  make,
  type McpCatalogue,
  McpClients,
  type McpClientsShape,
  type McpServerState,
  type McpServerStatus
} from "./McpClients.ts"
export { type McpCallResult, type McpTool, mcpToolName, type SkippedTool } from "./tools.ts"

/**
 * The layers a process of Agent Tape is made of (server and worker alike), chosen from the environment.
 * Only main.ts and worker.ts launch them.
 */
import { Effect, Layer } from "effect"
import { layerClient } from "./cluster/Cluster.ts"
import * as Leases from "./cluster/Leases.ts"
import { LlmClient } from "./llm/LlmClient.ts"
import { ModelInfoTag } from "./server/Config.ts"
import * as Bus from "./session/Bus.ts"
import * as SessionWriter from "./session/SessionWriter.ts"
import { layerFromConfig } from "./store/layer.ts"
import { ToolCatalogue } from "./tools/catalogue.ts"

export type Env = Readonly<Record<string, string | undefined>>

/** The PostgreSQL URL when several processes share the store (`TAPE_STORE=postgres`), else null. */
export const clusterUrl = (env: Env): string | null =>
  env.TAPE_STORE?.trim().toLowerCase().startsWith("postgres") && env.DATABASE_URL?.trim() ? env.DATABASE_URL.trim() : null

/** Whether approved tool calls go to worker processes (`TAPE_TOOL_WORKERS=external`) instead of running in-process. */
export const externalWorkers = (env: Env): boolean => env.TAPE_TOOL_WORKERS?.trim() === "external"

/** Store, bus, model, tools, writer and model info. */
export const core = () => {
  const Store = layerFromConfig
  const BusLive = Bus.layer.pipe(Layer.provide(Store))
  const WriterCtx = Layer.effect(
    SessionWriter.WriterContext,
    Effect.map(Effect.all([LlmClient, ToolCatalogue]), ([llm, tools]) => ({ model: llm.model, checkTool: tools.check }))
  )
  const Info = Layer.effect(
    ModelInfoTag,
    Effect.map(LlmClient, (llm) => ({ model: llm.model, provider: llm.kind, offline: llm.kind === "offline" }))
  )
  const Writer = SessionWriter.layer.pipe(Layer.provide(WriterCtx))
  return Layer.provideMerge(Writer, Layer.mergeAll(Store, BusLive, LlmClient.layer, ToolCatalogue.layer)).pipe((l) =>
    Layer.provideMerge(Info, l)
  )
}

/** Leases (and the cluster's own PostgreSQL pool) on PostgreSQL; nothing to coordinate alone. */
export const coordination = (url: string) => {
  const client = layerClient(url)
  return Layer.provideMerge(Leases.layerPg(Leases.newOwner()), client)
}

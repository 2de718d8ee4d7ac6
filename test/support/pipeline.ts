/** The real pipeline in-process for a scripted model: the package's own `agent-tape/testing` helpers. Tests only. */
export { makePipeline, type Pipeline, type PipelineModel, TEST_CLIENT, withPipeline } from "../../src/testing.ts"

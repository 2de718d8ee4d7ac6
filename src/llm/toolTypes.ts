/**
 * The offered tools as BAML dynamic types: each tool's JSON Schema becomes a call class `{ tool: "<name>", args,
 * description? }` in `Reply.toolCalls` (BAML's TypeBuilder), so schema-aligned parsing knows every tool's args, and
 * the prompt's output format shows them. OtherToolCall stays last in the union: a call of another tool, or with args
 * that fit no class, still arrives with its args as given. Names and descriptions are data: they go through the
 * builder's API, never into BAML source text. Pure apart from building the TypeBuilder.
 */
import type { FieldType } from "@boundaryml/baml/native"
import TypeBuilder from "../../baml_client/type_builder.ts"

/** A JSON Schema (an object schema for a tool's args), as the tool's owner gave it: unchecked. */
export type JsonSchema = { readonly [key: string]: unknown }

/** A tool as the model is offered it. */
export interface ToolOffer {
  readonly name: string
  /** One line: what the tool does. */
  readonly description: string
  /** Its args: a JSON Schema of an object (properties, required, types, enums, nested objects and arrays, descriptions). */
  readonly parameters: JsonSchema
}

/** How far a schema is followed; past this, a value is any JSON (the tool's own check still judges it). */
const MAX_DEPTH = 8
/** Classes and properties built for one tool at most; a tool past them is offered through OtherToolCall only. */
const MAX_CLASSES = 64
const MAX_PROPERTIES = 512
/** Enum values turned into literals at most; a longer enum is a plain string (or number). */
const MAX_ENUM = 64

/** Tool names that get a class (MCP's charset plus `:`); any other name is still callable through OtherToolCall. */
const TOOL_NAME = /^[A-Za-z0-9_.:-]{1,128}$/
/** Property names rendered into the output format as they are; a schema with any other name falls back whole. */
const PROPERTY_NAME = /^[A-Za-z_$][A-Za-z0-9_$.-]{0,63}$/

const isRecord = (v: unknown): v is { readonly [key: string]: unknown } => typeof v === "object" && v !== null && !Array.isArray(v)

/** The schema a local `$ref` (`#/$defs/X`, `#/definitions/X`) of `root` points to, or undefined. */
const refTarget = (root: JsonSchema, ref: string): unknown => {
  const m = /^#\/(\$defs|definitions)\/([^/]+)$/.exec(ref)
  if (m === null) return undefined
  const defs = root[m[1] ?? ""]
  return isRecord(defs) ? defs[decodeURIComponent(m[2] ?? "").replace(/~1/g, "/").replace(/~0/g, "~")] : undefined
}

/** The schema does not fit what this module builds; the tool falls back to OtherToolCall. */
class Unsupported extends Error {}

/** Builds the field types of one TypeBuilder, counting what it adds. */
const makeBuilder = (tb: TypeBuilder) => {
  // Any JSON value: the JsonValue alias of chat.baml, reached through a holder class (constant source text).
  tb.addBaml("class ToolArgAnyHolder {\n  value JsonValue\n}")
  const any: FieldType = tb.__tb().getClass("ToolArgAnyHolder").property("value").getType()
  /** Names every class apart (across tools). */
  let names = 0
  /** What the tool being built has used. */
  let classes = 0
  let properties = 0

  const literal = (value: unknown): FieldType | undefined => {
    if (typeof value === "string") return tb.literalString(value)
    if (typeof value === "boolean") return tb.literalBool(value)
    if (typeof value === "number" && Number.isInteger(value)) return tb.literalInt(value)
    if (value === null) return tb.null()
    return undefined
  }

  const union = (types: ReadonlyArray<FieldType>): FieldType => (types.length === 1 && types[0] !== undefined ? types[0] : tb.union([...types]))

  const objectClass = (schema: JsonSchema, props: { readonly [key: string]: unknown }, ctx: Context): FieldType => {
    if (++classes > MAX_CLASSES) throw new Unsupported("too many classes")
    const cls = tb.addClass(`${ctx.prefix}${++names}`)
    const required = new Set(Array.isArray(schema["required"]) ? schema["required"].filter((r): r is string => typeof r === "string") : [])
    for (const [name, sub] of Object.entries(props)) {
      if (!PROPERTY_NAME.test(name)) throw new Unsupported(`property name ${JSON.stringify(name)}`)
      if (++properties > MAX_PROPERTIES) throw new Unsupported("too many properties")
      const type = field(sub, { ...ctx, depth: ctx.depth + 1 })
      const property = cls.addProperty(name, required.has(name) ? type : type.optional())
      const description = isRecord(sub) ? sub["description"] : undefined
      if (typeof description === "string" && description !== "") property.description(description)
    }
    return cls.type()
  }

  const typed = (type: string, schema: JsonSchema, ctx: Context): FieldType => {
    switch (type) {
      case "string":
        return tb.string()
      case "integer":
        return tb.int()
      case "number":
        return tb.float()
      case "boolean":
        return tb.bool()
      case "null":
        return tb.null()
      case "array": {
        const items = schema["items"]
        return tb.list(isRecord(items) ? field(items, { ...ctx, depth: ctx.depth + 1 }) : any)
      }
      case "object": {
        const props = schema["properties"]
        if (isRecord(props) && Object.keys(props).length > 0) return objectClass(schema, props, ctx)
        const extra = schema["additionalProperties"]
        return tb.map(tb.string(), isRecord(extra) ? field(extra, { ...ctx, depth: ctx.depth + 1 }) : any)
      }
      default:
        return any
    }
  }

  interface Context {
    readonly root: JsonSchema
    readonly prefix: string
    readonly depth: number
    /** `$ref`s being expanded (a recursive schema stops at any JSON). */
    readonly refs: ReadonlySet<string>
  }

  /** The BAML type of a JSON Schema; whatever it cannot express becomes any JSON. */
  const field = (schema: unknown, ctx: Context): FieldType => {
    if (!isRecord(schema) || ctx.depth > MAX_DEPTH) return any
    const ref = schema["$ref"]
    if (typeof ref === "string") {
      const target = ctx.refs.has(ref) ? undefined : refTarget(ctx.root, ref)
      return target === undefined ? any : field(target, { ...ctx, refs: new Set([...ctx.refs, ref]) })
    }
    const nullable = schema["nullable"] === true
    const withNull = (t: FieldType) => (nullable ? t.optional() : t)
    if ("const" in schema) return withNull(literal(schema["const"]) ?? any)
    const values = schema["enum"]
    if (Array.isArray(values) && values.length > 0 && values.length <= MAX_ENUM) {
      const literals = values.map(literal)
      if (literals.every((l): l is FieldType => l !== undefined)) return withNull(union(literals))
    }
    const alternatives = Array.isArray(schema["anyOf"]) ? schema["anyOf"] : Array.isArray(schema["oneOf"]) ? schema["oneOf"] : undefined
    if (alternatives !== undefined && alternatives.length > 0) {
      return withNull(union(alternatives.map((a) => field(a, { ...ctx, depth: ctx.depth + 1 }))))
    }
    const allOf = schema["allOf"]
    if (Array.isArray(allOf) && allOf.length === 1) return withNull(field(allOf[0], { ...ctx, depth: ctx.depth + 1 }))
    const type = schema["type"]
    if (Array.isArray(type)) {
      const types = type.filter((t): t is string => typeof t === "string")
      const nonNull = types.filter((t) => t !== "null")
      if (nonNull.length === 0) return any
      const t = union(nonNull.map((t) => typed(t, schema, ctx)))
      return withNull(types.includes("null") ? t.optional() : t)
    }
    if (typeof type === "string") return withNull(typed(type, schema, ctx))
    if (isRecord(schema["properties"])) return withNull(typed("object", schema, ctx))
    return any
  }

  /** The call class of one tool, or undefined when the tool is offered through OtherToolCall only. */
  const callClass = (tool: ToolOffer, index: number): FieldType | undefined => {
    if (!TOOL_NAME.test(tool.name)) return undefined
    classes = 0
    properties = 0
    try {
      const ctx: Context = { root: tool.parameters, prefix: `Tool${index}Args`, depth: 0, refs: new Set() }
      const args = field(tool.parameters, ctx)
      const required = Array.isArray(tool.parameters["required"]) && tool.parameters["required"].length > 0
      if (++classes > MAX_CLASSES) throw new Unsupported("too many classes")
      const call = tb.addClass(`Tool${index}Call`)
      call.addProperty("tool", tb.literalString(tool.name))
      call.addProperty("args", required ? args : args.optional())
      call.addProperty("description", tb.string().optional()).description("why you are calling the tool, one short sentence")
      return call.type()
    } catch (error) {
      if (!(error instanceof Unsupported)) throw error
      // Classes already added for this tool stay, unused: at most the per-tool limits, so the work stays bounded.
      return undefined
    }
  }

  return { callClass }
}

/**
 * A TypeBuilder whose `Reply.toolCalls` is a list of one call class per offered tool, then OtherToolCall.
 * Pass it to every BAML call of the reply (request, partial and final parses), or the tool calls are not read.
 */
export const toolTypes = (tools: ReadonlyArray<ToolOffer>): TypeBuilder => {
  const tb = new TypeBuilder()
  const { callClass } = makeBuilder(tb)
  const calls = tools.flatMap((tool, i) => callClass(tool, i) ?? [])
  tb.Reply.addProperty("toolCalls", tb.list(tb.union([...calls, tb.OtherToolCall.type()]))).description(
    "tool calls to make now; empty when you are done"
  )
  return tb
}

/** Whether `schema` (followed through local `$ref`s) admits `null`. */
const admitsNull = (root: JsonSchema, schema: unknown, seen: ReadonlySet<string> = new Set()): boolean => {
  if (!isRecord(schema)) return true
  const ref = schema["$ref"]
  if (typeof ref === "string") {
    const target = seen.has(ref) ? undefined : refTarget(root, ref)
    return target === undefined ? true : admitsNull(root, target, new Set([...seen, ref]))
  }
  if (schema["nullable"] === true) return true
  const type = schema["type"]
  if (typeof type === "string") return type === "null"
  if (Array.isArray(type)) return type.includes("null")
  if (Array.isArray(schema["enum"])) return schema["enum"].includes(null)
  if ("const" in schema) return schema["const"] === null
  const alternatives = Array.isArray(schema["anyOf"]) ? schema["anyOf"] : Array.isArray(schema["oneOf"]) ? schema["oneOf"] : undefined
  if (alternatives !== undefined) return alternatives.some((a) => admitsNull(root, a, seen))
  return true
}

/**
 * The args of a parsed call without the `null`s BAML writes for optional properties the model left out (a class
 * has every property): a null stays only where the tool's schema admits null, so the tool's own check sees what
 * the model meant. Follows `properties`, `items` and local `$ref`s, `depth` levels at most; anything else as is.
 */
export const alignArgs = (args: { readonly [key: string]: unknown }, parameters: JsonSchema): { [key: string]: unknown } => {
  const walk = (value: unknown, schema: unknown, depth: number, seen: ReadonlySet<string>): unknown => {
    if (!isRecord(schema) || depth > MAX_DEPTH) return value
    const ref = schema["$ref"]
    if (typeof ref === "string") {
      const target = seen.has(ref) ? undefined : refTarget(parameters, ref)
      return target === undefined ? value : walk(value, target, depth, new Set([...seen, ref]))
    }
    if (Array.isArray(value)) return isRecord(schema["items"]) ? value.map((v) => walk(v, schema["items"], depth + 1, seen)) : value
    const props = schema["properties"]
    if (!isRecord(value) || !isRecord(props)) return value
    const required = new Set(Array.isArray(schema["required"]) ? schema["required"] : [])
    const out: { [key: string]: unknown } = {}
    for (const [key, v] of Object.entries(value)) {
      const sub = props[key]
      if (v === null && sub !== undefined && !required.has(key) && !admitsNull(parameters, sub)) continue
      out[key] = sub === undefined ? v : walk(v, sub, depth + 1, seen)
    }
    return out
  }
  const aligned = walk(args, parameters, 0, new Set())
  return isRecord(aligned) ? { ...aligned } : { ...args }
}

/** Tool sets whose TypeBuilder `toolTypesFor` keeps (a server offers one or a few: its catalogue, per model). */
const CACHED_TOOL_SETS = 8
const builders = new Map<string, TypeBuilder>()

/**
 * `toolTypes(tools)` built once per tool set (names, descriptions and parameters; the least recently used set is
 * dropped past eight): BAML reads a TypeBuilder and never changes it, and building one costs ~0.5 ms of every turn's
 * start (issue 15).
 */
export const toolTypesFor = (tools: ReadonlyArray<ToolOffer>): TypeBuilder => {
  const key = JSON.stringify(tools.map((t) => [t.name, t.description, t.parameters]))
  const hit = builders.get(key)
  if (hit !== undefined) {
    builders.delete(key)
    builders.set(key, hit)
    return hit
  }
  const tb = toolTypes(tools)
  builders.set(key, tb)
  if (builders.size > CACHED_TOOL_SETS) {
    const oldest = builders.keys().next()
    if (!oldest.done) builders.delete(oldest.value)
  }
  return tb
}

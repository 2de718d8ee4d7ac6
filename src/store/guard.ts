/**
 * A fast acceptance test compiled from a Schema's AST, for the store's read path (10,000 rows per read).
 * It only says "this input decodes to itself"; anything it does not accept goes through the real Schema decoder.
 */
import { Option, SchemaAST } from "effect"

/** True when decoding `input` with the schema would succeed and return a value equal to `input` (no excess keys). */
export type Guard = (input: unknown) => boolean

const noOptions: SchemaAST.ParseOptions = {}

const isPlainObject = (u: unknown): u is Record<string, unknown> =>
  typeof u === "object" && u !== null && !Array.isArray(u)

/**
 * Compiles `ast` into a Guard, or returns undefined when the AST uses a node it does not handle (transformations,
 * suspensions, symbols, templates…): callers then use the Schema decoder alone.
 */
export const compileGuard = (ast: SchemaAST.AST): Guard | undefined => {
  switch (ast._tag) {
    case "StringKeyword":
      return (u) => typeof u === "string"
    case "NumberKeyword":
      return (u) => typeof u === "number"
    case "BooleanKeyword":
      return (u) => typeof u === "boolean"
    case "UnknownKeyword":
    case "AnyKeyword":
      return () => true
    case "UndefinedKeyword":
      return (u) => u === undefined
    case "Literal": {
      const literal = ast.literal
      return (u) => u === literal
    }
    case "Union": {
      const members = ast.types.map(compileGuard)
      if (members.some((m) => m === undefined)) return undefined
      const guards = members as ReadonlyArray<Guard>
      return (u) => guards.some((g) => g(u))
    }
    case "Refinement": {
      const from = compileGuard(ast.from)
      if (from === undefined) return undefined
      const refinement = ast
      return (u) => from(u) && Option.isNone(refinement.filter(u, noOptions, refinement))
    }
    case "TupleType": {
      // Only plain arrays (`Schema.Array(x)`): no fixed elements, one rest type.
      const rest = ast.rest[0]
      if (ast.elements.length > 0 || ast.rest.length !== 1 || rest === undefined) return undefined
      const item = compileGuard(rest.type)
      if (item === undefined) return undefined
      return (u) => Array.isArray(u) && u.every((x) => item(x))
    }
    case "TypeLiteral": {
      const props: Array<readonly [string, Guard, boolean]> = []
      for (const ps of ast.propertySignatures) {
        const guard = compileGuard(ps.type)
        if (typeof ps.name !== "string" || guard === undefined) return undefined
        props.push([ps.name, guard, ps.isOptional])
      }
      if (ast.indexSignatures.length > 1) return undefined
      const index = ast.indexSignatures[0]
      if (index !== undefined) {
        // Records (`Schema.Record({ key: Schema.String, value })`) only, without named properties.
        if (props.length > 0 || index.parameter._tag !== "StringKeyword") return undefined
        const value = compileGuard(index.type)
        if (value === undefined) return undefined
        return (u) => {
          if (!isPlainObject(u)) return false
          for (const key in u) if (!value(u[key])) return false
          return true
        }
      }
      const declared = new Set(props.map(([name]) => name))
      return (u) => {
        if (!isPlainObject(u)) return false
        for (const [name, guard, optional] of props) {
          if (Object.hasOwn(u, name)) {
            if (!guard(u[name])) return false
          } else if (!optional) {
            return false
          }
        }
        // Excess keys would be dropped by the decoder, so the input would not decode to itself.
        for (const key in u) if (!declared.has(key)) return false
        return true
      }
    }
    default:
      return undefined
  }
}

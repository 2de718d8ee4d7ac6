/**
 * The `read_file` and `list_files` tools: read-only access to one workspace folder.
 * Paths are relative; `..`, absolute paths and symlinks resolving outside the folder are refused.
 */
import { open, readdir, realpath, stat } from "node:fs/promises"
import { isAbsolute, relative, resolve, sep } from "node:path"
import { Effect, Schema } from "effect"
import { type Tool, ToolError } from "./Tool.ts"

/** Limits of the file tools. */
export interface FileLimits {
  /** Bytes of a file returned; a longer file is cut and marked `truncated`. */
  readonly maxReadBytes: number
  /** Entries of a folder listed; more are cut and marked `truncated`. */
  readonly maxEntries: number
}

/** 64 KiB per read, 1000 entries per listing. */
export const defaultFileLimits: FileLimits = { maxReadBytes: 64 * 1024, maxEntries: 1_000 }

/** Args of `read_file`. */
export const ReadFileArgs = Schema.Struct({
  path: Schema.String.annotations({ description: "file path relative to the workspace folder" })
})
export type ReadFileArgs = typeof ReadFileArgs.Type

/** Args of `list_files`. */
export const ListFilesArgs = Schema.Struct({
  path: Schema.optional(Schema.String.annotations({ description: "folder relative to the workspace (default: its root)" }))
})
export type ListFilesArgs = typeof ListFilesArgs.Type

/** `read_file` over the workspace folder `workspace` (resolved against the current directory). */
export const makeReadFileTool = (
  workspace: string,
  limits: Partial<FileLimits> = {}
): Tool<ReadFileArgs, typeof ReadFileArgs.Encoded> => {
  const { maxReadBytes } = { ...defaultFileLimits, ...limits }
  return {
    name: "read_file",
    description: `Read a text file from the workspace folder (first ${maxReadBytes / 1024} KiB).`,
    args: ReadFileArgs,
    policy: "auto",
    run: Effect.fn("Tool.read_file")(function* ({ path }) {
      const target = yield* resolveInside(workspace, path)
      const info = yield* attempt(`cannot read ${path}`, () => stat(target))
      if (info.isDirectory()) return yield* new ToolError({ message: `${path} is a folder; use list_files to see inside it` })
      if (!info.isFile()) return yield* new ToolError({ message: `${path} is not a regular file` })
      const bytes = yield* attempt(`cannot read ${path}`, () => readHead(target, maxReadBytes + 1))
      if (bytes.includes(0)) return { output: `(binary file, ${info.size} bytes, not shown)`, truncated: false }
      const truncated = bytes.length > maxReadBytes
      const output = new TextDecoder().decode(truncated ? bytes.subarray(0, maxReadBytes) : bytes)
      return { output, truncated }
    })
  }
}

/** `list_files` over the workspace folder `workspace`: one entry a line, folders end with `/`. */
export const makeListFilesTool = (
  workspace: string,
  limits: Partial<FileLimits> = {}
): Tool<ListFilesArgs, typeof ListFilesArgs.Encoded> => {
  const { maxEntries } = { ...defaultFileLimits, ...limits }
  return {
    name: "list_files",
    description: "List the files and folders in a folder of the workspace (folders end with /).",
    args: ListFilesArgs,
    policy: "auto",
    run: Effect.fn("Tool.list_files")(function* ({ path = "." }) {
      const target = yield* resolveInside(workspace, path)
      const entries = yield* attempt(`cannot list ${path}`, () => readdir(target, { withFileTypes: true }))
      const names = entries
        .map((entry) => (entry.isDirectory() ? `${entry.name}/` : entry.isSymbolicLink() ? `${entry.name}@` : entry.name))
        .sort()
      if (names.length === 0) return { output: "(empty folder)", truncated: false }
      return { output: names.slice(0, maxEntries).join("\n"), truncated: names.length > maxEntries }
    })
  }
}

/**
 * The real path of `path` inside `workspace`, or a ToolError naming the rule broken.
 * A check on the real path is what defeats symlinks; checking the string alone would not.
 */
export const resolveInside = (workspace: string, path: string): Effect.Effect<string, ToolError> =>
  Effect.gen(function* () {
    if (path.includes("\0")) return yield* new ToolError({ message: "refused: the path contains a NUL character" })
    if (isAbsolute(path) || /^[A-Za-z]:[\\/]/.test(path))
      return yield* new ToolError({ message: `refused: ${path} is absolute; give a path relative to the workspace folder` })
    if (path.split(/[\\/]/).includes(".."))
      return yield* new ToolError({ message: `refused: ${path} contains "..", which may leave the workspace folder` })
    const root = yield* attempt("the workspace folder does not exist (see TAPE_WORKSPACE)", () => realpath(resolve(workspace)))
    const real = yield* attempt(`no such file or folder: ${path}`, () => realpath(resolve(root, path)))
    const inside = relative(root, real)
    if (inside !== "" && (inside === ".." || inside.startsWith(`..${sep}`) || isAbsolute(inside)))
      return yield* new ToolError({ message: `refused: ${path} resolves (through a symlink) outside the workspace folder` })
    return real
  })

const attempt = <A>(message: string, f: () => Promise<A>): Effect.Effect<A, ToolError> =>
  Effect.tryPromise({
    try: f,
    catch: (cause) => {
      const reason = cause instanceof Error && "code" in cause ? String(cause.code) : String(cause)
      return new ToolError({ message: `${message} (${reason})`, cause })
    }
  })

const readHead = async (path: string, bytes: number): Promise<Uint8Array> => {
  const handle = await open(path, "r")
  try {
    const buffer = new Uint8Array(bytes)
    let filled = 0
    while (filled < bytes) {
      const { bytesRead } = await handle.read(buffer, filled, bytes - filled, null)
      if (bytesRead === 0) break
      filled += bytesRead
    }
    return buffer.subarray(0, filled)
  } finally {
    await handle.close()
  }
}

/**
 * The `read_file` and `list_files` tools: read-only access to one workspace folder.
 * Paths are relative; `..`, absolute paths and symlinks resolving outside the folder are refused. A path is checked,
 * opened, and then what was opened is checked again, so a symlink swapped in between cannot lead the read outside.
 */
import type { Stats } from "node:fs"
import { constants } from "node:fs"
import { type FileHandle, open, readdir, readlink, realpath, stat } from "node:fs/promises"
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
      return yield* withOpened(workspace, path, "file", ({ handle, info }) =>
        Effect.gen(function* () {
          if (info.isDirectory()) return yield* new ToolError({ message: `${path} is a folder; use list_files to see inside it` })
          if (!info.isFile()) return yield* new ToolError({ message: `${path} is not a regular file` })
          const bytes = yield* attempt(`cannot read ${path}`, () => readHead(handle, maxReadBytes + 1))
          if (bytes.includes(0)) return { output: `(binary file, ${info.size} bytes, not shown)`, truncated: false }
          const truncated = bytes.length > maxReadBytes
          const output = new TextDecoder().decode(truncated ? bytes.subarray(0, maxReadBytes) : bytes)
          return { output, truncated }
        })
      )
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
      const entries = yield* withOpened(workspace, path, "folder", ({ at }) =>
        attempt(`cannot list ${path}`, () => readdir(at, { withFileTypes: true }))
      )
      const names = entries
        .map((entry) => (entry.isDirectory() ? `${entry.name}/` : entry.isSymbolicLink() ? `${entry.name}@` : entry.name))
        .sort()
      if (names.length === 0) return { output: "(empty folder)", truncated: false }
      return { output: names.slice(0, maxEntries).join("\n"), truncated: names.length > maxEntries }
    })
  }
}

/**
 * The real paths of the workspace folder and of `path` inside it, or a ToolError naming the rule broken.
 * A check on the real path is what defeats symlinks; checking the string alone would not. It says what the path
 * named when it was checked: open it, then check the descriptor (`withOpened`).
 */
export const resolveInside = (workspace: string, path: string): Effect.Effect<{ readonly root: string; readonly real: string }, ToolError> =>
  Effect.gen(function* () {
    if (path.includes("\0")) return yield* new ToolError({ message: "refused: the path contains a NUL character" })
    if (isAbsolute(path) || /^[A-Za-z]:[\\/]/.test(path))
      return yield* new ToolError({ message: `refused: ${path} is absolute; give a path relative to the workspace folder` })
    if (path.split(/[\\/]/).includes(".."))
      return yield* new ToolError({ message: `refused: ${path} contains "..", which may leave the workspace folder` })
    const root = yield* attempt("the workspace folder does not exist (see TAPE_WORKSPACE)", () => realpath(resolve(workspace)))
    const real = yield* attempt(`no such file or folder: ${path}`, () => realpath(resolve(root, path)))
    if (!isInside(root, real))
      return yield* new ToolError({ message: `refused: ${path} resolves (through a symlink) outside the workspace folder` })
    return { root, real }
  })

const isInside = (root: string, real: string): boolean => {
  const inside = relative(root, real)
  return inside === "" || !(inside === ".." || inside.startsWith(`..${sep}`) || isAbsolute(inside))
}

/** A file or folder opened for a tool, after the check of what was opened. */
interface Opened {
  readonly handle: FileHandle
  /** fstat of the descriptor: what was opened, not what the path names now. */
  readonly info: Stats
  /** A path to the opened object itself (`/proc/self/fd/N` on Linux, which no rename or symlink can redirect). */
  readonly at: string
}

// Non-blocking, so a FIFO cannot hang the open; no controlling terminal; no symlink as the last component.
const OPEN_FLAGS = {
  file: constants.O_RDONLY | constants.O_NONBLOCK | constants.O_NOCTTY | constants.O_NOFOLLOW,
  folder: constants.O_RDONLY | constants.O_DIRECTORY | constants.O_NOFOLLOW
} as const

/**
 * Checks `path`, opens its real path, then checks what the descriptor is: on Linux its own path
 * (`/proc/self/fd/N`) must be inside the workspace, and the read goes through the descriptor, so a component swapped
 * for a symlink between the check and the open is caught. Without /proc (macOS, BSD) its device and inode must be
 * those of the checked real path: that narrows the window (a second swap can still pass it) but does not close it.
 */
const withOpened = <A>(
  workspace: string,
  path: string,
  kind: keyof typeof OPEN_FLAGS,
  use: (opened: Opened) => Effect.Effect<A, ToolError>
): Effect.Effect<A, ToolError> =>
  Effect.flatMap(resolveInside(workspace, path), ({ root, real }) =>
    Effect.acquireUseRelease(
      attempt(kind === "file" ? `cannot read ${path}` : `cannot list ${path}`, () => open(real, OPEN_FLAGS[kind])),
      (handle) =>
        Effect.gen(function* () {
          const info = yield* attempt(`cannot read ${path}`, () => handle.stat())
          const self = `/proc/self/fd/${handle.fd}`
          const opened = yield* Effect.promise(() => readlink(self).catch(() => undefined))
          const moved = new ToolError({ message: `refused: ${path} changed while it was opened and now leads outside the workspace folder` })
          if (opened !== undefined) {
            if (!isInside(root, opened)) return yield* moved
            return yield* use({ handle, info, at: self })
          }
          const expected = yield* attempt(`cannot read ${path}`, () => stat(real))
          if (expected.dev !== info.dev || expected.ino !== info.ino) return yield* moved
          return yield* use({ handle, info, at: real })
        }),
      (handle) => Effect.promise(() => handle.close().catch(() => undefined))
    )
  )

const attempt = <A>(message: string, f: () => Promise<A>): Effect.Effect<A, ToolError> =>
  Effect.tryPromise({
    try: f,
    catch: (cause) => {
      const reason = cause instanceof Error && "code" in cause ? String(cause.code) : String(cause)
      return new ToolError({ message: `${message} (${reason})`, cause })
    }
  })

const readHead = async (handle: FileHandle, bytes: number): Promise<Uint8Array> => {
  const buffer = new Uint8Array(bytes)
  let filled = 0
  while (filled < bytes) {
    const { bytesRead } = await handle.read(buffer, filled, bytes - filled, null)
    if (bytesRead === 0) break
    filled += bytesRead
  }
  return buffer.subarray(0, filled)
}

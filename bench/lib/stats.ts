/**
 * Bench helpers: summary statistics over runs, process CPU / RSS from /proc, the machine's description, formatting.
 * Pure measurement utilities; no benchmark lives here.
 */
import { readdirSync, readFileSync } from "node:fs"
import { cpus, totalmem } from "node:os"

/** Median, min and max of several runs of one figure. */
export interface Spread {
  readonly median: number
  readonly min: number
  readonly max: number
  readonly runs: number
}

export const percentile = (sorted: ArrayLike<number>, p: number): number => {
  if (sorted.length === 0) return Number.NaN
  const i = Math.min(sorted.length - 1, Math.max(0, Math.ceil((p / 100) * sorted.length) - 1))
  return sorted[i]!
}

export const sortNumbers = (xs: ReadonlyArray<number>): Float64Array => Float64Array.from(xs).sort()

export const spread = (xs: ReadonlyArray<number>): Spread => {
  const s = sortNumbers(xs)
  const n = s.length
  const median = n === 0 ? Number.NaN : n % 2 === 1 ? s[(n - 1) / 2]! : (s[n / 2 - 1]! + s[n / 2]!) / 2
  return { median, min: s[0] ?? Number.NaN, max: s[n - 1] ?? Number.NaN, runs: n }
}

/** `1.23 M (1.1–1.3 M)` style: median then min–max, with `fmt` for each number. */
export const showSpread = (s: Spread, fmt: (x: number) => string, unit = ""): string =>
  s.runs <= 1 ? `${fmt(s.median)}${unit}` : `${fmt(s.median)}${unit} (${fmt(s.min)}–${fmt(s.max)})`

export const fixed = (d: number) => (x: number): string => (Number.isFinite(x) ? x.toFixed(d) : "n/a")
export const si = (x: number): string => {
  if (!Number.isFinite(x)) return "n/a"
  const a = Math.abs(x)
  if (a >= 1e6) return `${(x / 1e6).toFixed(2)} M`
  if (a >= 1e3) return `${(x / 1e3).toFixed(1)} k`
  return x.toFixed(x < 10 ? 2 : 0)
}

/** Wall-clock now in ms with sub-ms precision (monotonic). */
export const now = (): number => performance.now()

/** CPU time (user + system) of a process in ms, from /proc/<pid>/stat. */
export const cpuMs = (pid: number = process.pid): number => {
  const stat = readFileSync(`/proc/${pid}/stat`, "utf8")
  // Fields after the command name (which may contain spaces) start after the last ')'.
  const fields = stat.slice(stat.lastIndexOf(")") + 2).split(" ")
  const ticks = Number(fields[11]) + Number(fields[12])
  return (ticks * 1000) / 100
}

/** Resident set size now and its peak (VmHWM), in MB (10^6 bytes), from /proc/<pid>/status. */
export const rssMB = (pid: number = process.pid): { readonly rss: number; readonly peak: number } => {
  const status = readFileSync(`/proc/${pid}/status`, "utf8")
  const kb = (key: string) => Number(new RegExp(`^${key}:\\s+(\\d+) kB`, "m").exec(status)?.[1] ?? Number.NaN)
  return { rss: (kb("VmRSS") * 1024) / 1e6, peak: (kb("VmHWM") * 1024) / 1e6 }
}

/** `pid` and every live descendant, from /proc/<pid>/task/<tid>/children (Linux); a process gone mid-walk is skipped. */
export const processTree = (pid: number): Array<number> => {
  const out: Array<number> = []
  const walk = (p: number) => {
    out.push(p)
    let tasks: Array<string> = []
    try {
      tasks = readdirSync(`/proc/${p}/task`)
    } catch {
      return
    }
    for (const t of tasks) {
      let kids = ""
      try {
        kids = readFileSync(`/proc/${p}/task/${t}/children`, "utf8")
      } catch {
        continue
      }
      for (const k of kids.split(" ")) if (k.trim() !== "") walk(Number(k))
    }
  }
  walk(pid)
  return out
}

/**
 * CPU time (user + system, all threads) of a process and its descendants in ms: utime+stime of each live process in
 * the tree, plus cutime+cstime of the root (children that have exited and been waited for).
 */
export const treeCpuMs = (pid: number): number => {
  let ticks = 0
  for (const p of processTree(pid)) {
    try {
      const stat = readFileSync(`/proc/${p}/stat`, "utf8")
      const f = stat.slice(stat.lastIndexOf(")") + 2).split(" ")
      ticks += Number(f[11]) + Number(f[12]) + (p === pid ? Number(f[13]) + Number(f[14]) : 0)
    } catch {
      // Exited between the walk and the read.
    }
  }
  return (ticks * 1000) / 100
}

/** Sum over the process tree of VmRSS and of VmHWM (each process's own peak), MB. */
export const treeRssMB = (pid: number): { readonly rss: number; readonly peak: number } => {
  let rss = 0
  let peak = 0
  for (const p of processTree(pid)) {
    try {
      const m = rssMB(p)
      if (Number.isFinite(m.rss)) rss += m.rss
      if (Number.isFinite(m.peak)) peak += m.peak
    } catch {
      // Exited.
    }
  }
  return { rss, peak }
}

/** The machine, as the README shows it. */
export const machine = (): { readonly cores: number; readonly memGiB: number; readonly cpu: string; readonly bun: string; readonly os: string } => {
  let cpu = cpus()[0]?.model ?? "unknown"
  try {
    const info = readFileSync("/proc/cpuinfo", "utf8")
    const name = /^model name\s*:\s*(.+)$/m.exec(info)?.[1]?.trim()
    const mhz = /^cpu MHz\s*:\s*(.+)$/m.exec(info)?.[1]?.trim()
    if (name) cpu = mhz ? `${name} @ ${Math.round(Number(mhz))} MHz` : name
  } catch {
    // Not Linux: the os module's name is enough.
  }
  return {
    cores: cpus().length,
    memGiB: Math.round((totalmem() / 2 ** 30) * 10) / 10,
    cpu,
    bun: Bun.version,
    os: `${process.platform} ${process.arch}`
  }
}

/** Waits `ms` (bench pacing only; benchmarks wait on events, not sleeps, where they can). */
export const sleep = (ms: number): Promise<void> => new Promise((r) => setTimeout(r, ms))

/** Logs progress to stderr so the table on stdout stays clean. */
export const progress = (msg: string): void => {
  process.stderr.write(`[bench] ${msg}\n`)
}

/** Test support: a small seeded generator (mulberry32), so a randomised test can print its seed and replay a run. */

/** Numbers in [0, 1) from `seed`, the same sequence for the same seed. */
export const seededRandom = (seed: number): (() => number) => {
  let state = seed >>> 0
  return () => {
    state = (state + 0x6d2b79f5) >>> 0
    let t = state
    t = Math.imul(t ^ (t >>> 15), t | 1)
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61)
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296
  }
}

/** Helpers over one generator. */
export const picker = (random: () => number) => ({
  /** A whole number in [0, n). */
  int: (n: number): number => Math.floor(random() * n),
  /** One element of a non-empty list. */
  one: <A>(xs: ReadonlyArray<A>): A => xs[Math.floor(random() * xs.length)]!,
  /** One key, chosen with the given weights (at least one positive). */
  weighted: <K extends string>(weights: Readonly<Record<K, number>>): K => {
    const entries = Object.entries(weights) as Array<[K, number]>
    const total = entries.reduce((n, [, w]) => n + Math.max(0, w), 0)
    let r = random() * total
    for (const [k, w] of entries) {
      r -= Math.max(0, w)
      if (r < 0) return k
    }
    return entries.find(([, w]) => w > 0)![0]
  },
  chance: (p: number): boolean => random() < p
})

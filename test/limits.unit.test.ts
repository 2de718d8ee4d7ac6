// The rate limits' buckets: refill by elapsed time, never above the burst; keyed buckets bounded in memory, so a
// flood of new addresses shares one bucket instead of growing the map.
import { describe, expect, test } from "bun:test"
import { KeyedBuckets, TokenBucket } from "../src/server/limits.ts"

describe("TokenBucket", () => {
  test("starts full, spends one per take, refills at the rate up to the burst", () => {
    const b = new TokenBucket(2, 3)
    expect([b.take(0), b.take(0), b.take(0), b.take(0)]).toEqual([true, true, true, false])
    expect(b.take(499)).toBe(false)
    expect(b.take(1000)).toBe(true)
    // A long pause refills to the burst, not beyond.
    expect([b.take(60_000), b.take(60_000), b.take(60_000), b.take(60_000)]).toEqual([true, true, true, false])
    // A clock that goes back refills nothing.
    expect(b.take(10)).toBe(false)
  })
})

describe("KeyedBuckets", () => {
  test("one bucket per key; past maxKeys, refilled buckets are dropped and new keys share one overflow bucket", () => {
    const k = new KeyedBuckets(1, 1, 2)
    expect([k.take("a", 0), k.take("a", 0), k.take("b", 0)]).toEqual([true, false, true])
    // Full map of empty buckets: "c" and "d" share the overflow bucket.
    expect([k.take("c", 0), k.take("d", 0)]).toEqual([true, false])
    // Once a and b refilled they are swept, and new keys get their own buckets again.
    expect([k.take("e", 5_000), k.take("f", 5_000)]).toEqual([true, true])
    expect(k.take("e", 5_000)).toBe(false)
  })
})

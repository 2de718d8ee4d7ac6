/**
 * Rate limits of the server's edges: a token bucket, token buckets keyed by client address (bounded in memory), and
 * the session-creation limit shared by the websocket `hello{session:null}` and `POST /api/sessions`. Pure but the clock.
 */
import { Clock, Effect } from "effect"

/** `burst` tokens, refilled at `ratePerSecond`; `take(now)` spends one if there is one. Starts full. */
export class TokenBucket {
  private tokens: number
  private at: number | null = null

  constructor(
    readonly ratePerSecond: number,
    readonly burst: number
  ) {
    this.tokens = burst
  }

  /** Spends a token at time `now` (ms); false when the bucket is empty (nothing is spent then). */
  take(now: number): boolean {
    if (this.at !== null) this.tokens = Math.min(this.burst, this.tokens + (Math.max(0, now - this.at) / 1000) * this.ratePerSecond)
    this.at = now
    if (this.tokens < 1) return false
    this.tokens -= 1
    return true
  }

  /** Whether the bucket would be full at `now` (it then holds nothing worth remembering). */
  fullAt(now: number): boolean {
    return this.at === null || this.tokens + (Math.max(0, now - this.at) / 1000) * this.ratePerSecond >= this.burst
  }
}

/** Token buckets per key (a remote address). At most `maxKeys` are kept: when full, buckets that refilled are dropped. */
export class KeyedBuckets {
  private readonly buckets = new Map<string, TokenBucket>()

  constructor(
    readonly ratePerSecond: number,
    readonly burst: number,
    readonly maxKeys = 10_000
  ) {}

  take(key: string, now: number): boolean {
    let bucket = this.buckets.get(key)
    if (bucket === undefined) {
      if (this.buckets.size >= this.maxKeys) this.sweep(now)
      // Still full of active clients: the newest key shares one bucket rather than growing the map without bound.
      const shared = this.buckets.size >= this.maxKeys ? "(overflow)" : key
      bucket = this.buckets.get(shared) ?? new TokenBucket(this.ratePerSecond, this.burst)
      this.buckets.set(shared, bucket)
    }
    return bucket.take(now)
  }

  private sweep(now: number): void {
    for (const [key, bucket] of this.buckets) if (bucket.fullAt(now)) this.buckets.delete(key)
  }
}

/** Sessions one connection may create per minute (its burst is the same number). */
export const SESSIONS_PER_CONNECTION_PER_MINUTE = 30

/** The session-creation limit: per remote address (`perMinute`, burst one minute's worth) and per connection. */
export interface CreationLimit {
  /** Spends one creation for `address` (and `connection`'s own bucket, for a websocket); false when over a limit. */
  readonly allow: (address: string, connection?: TokenBucket) => Effect.Effect<boolean>
  /** A fresh per-connection bucket. */
  readonly connectionBucket: () => TokenBucket
  /** The per-address rate, for messages. */
  readonly perMinute: number
}

export const makeCreationLimit = (perMinute: number): CreationLimit => {
  const byAddress = new KeyedBuckets(perMinute / 60, perMinute)
  return {
    perMinute,
    connectionBucket: () => new TokenBucket(SESSIONS_PER_CONNECTION_PER_MINUTE / 60, SESSIONS_PER_CONNECTION_PER_MINUTE),
    allow: (address, connection) =>
      Effect.map(Clock.currentTimeMillis, (now) => (connection === undefined || connection.take(now)) && byAddress.take(address, now))
  }
}

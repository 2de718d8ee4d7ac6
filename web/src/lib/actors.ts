/**
 * Who did what, in words people use: "you", "another tab/client", "the model", "policy: auto"… instead of the
 * tape's opaque `user:<clientId>` (a client id changes on every connection). Pure: the caller says which ids are its own.
 */

/** The actor families the timeline filters on; `you` and `other` split the tape's `user:` actors. */
export const ACTOR_CLASSES = ["you", "other", "model", "tool", "system", "policy"] as const
export type ActorClass = (typeof ACTOR_CLASSES)[number]

/** The `user:` actors this page (this tab, across its reloads) has been; everything else `user:` is someone else. */
export type Me = ReadonlySet<string>

export const actorClass = (by: string, me: Me): ActorClass => {
  if (by.startsWith("user:")) return me.has(by) ? "you" : "other"
  if (by.startsWith("policy:")) return "policy"
  if (by === "model" || by === "tool") return by
  return "system"
}

/** The label of an actor family, for filters. */
export const classLabel: Record<ActorClass, string> = {
  you: "you",
  other: "another tab/client",
  model: "the model",
  tool: "a tool",
  system: "system",
  policy: "a policy"
}

/** One actor in words: the policy keeps its name (`policy: auto`). */
export const actorLabel = (by: string, me: Me): string => {
  const c = actorClass(by, me)
  return c === "policy" ? `policy: ${by.slice("policy:".length)}` : classLabel[c]
}

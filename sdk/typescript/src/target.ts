/**
 * Targets: shared pieces of a pipeline (a base image, a toolchain) made
 * once however many pipelines use them.
 */

/** The values targets made, until `clearTargetCache()`. */
const made = new Map<symbol, unknown>();
/** Targets being made right now, to name a target that needs itself. */
const making = new Set<symbol>();

/** A function returning what `fn` returns, calling `fn` only the first time. */
export function target<T>(name: string, fn: () => T): () => T {
  if (typeof fn !== "function") {
    throw new TypeError(`target: the second argument must be a function making the target, not ${typeof fn}`);
  }
  const id = Symbol(name);
  return () => {
    if (made.has(id)) return made.get(id) as T;
    if (making.has(id)) throw new Error(`target "${String(name)}" needs itself to be made`);
    making.add(id);
    try {
      const value = fn();
      made.set(id, value);
      return value;
    } finally {
      making.delete(id);
    }
  };
}

/** Forgets every value targets made: each target makes its value again when next called. */
export function clearTargetCache(): void {
  made.clear();
}

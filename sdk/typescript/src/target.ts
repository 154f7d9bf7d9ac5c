/**
 * Targets: values computed once per evaluation and shared by every pipeline
 * that asks for them.
 */

import { HarmontError, show } from "./errors.ts";

/** A target as `target` returns it: call it for the value. */
export type Target<T> = () => T;

/** Names of the targets defined so far, in definition order. */
const defined: string[] = [];
/** Values computed so far, by target name. */
const values = new Map<string, unknown>();
/** Targets being computed, outermost first: a name met twice is a cycle. */
const resolving: string[] = [];

/**
 * A target named `name`: the returned function calls `fn` the first time it
 * is called and hands back that value from then on. A target that needs
 * itself, directly or through others, is an error naming the cycle.
 */
export function target<T>(name: string, fn: () => T): Target<T> {
  if (typeof fn !== "function") throw new HarmontError(`target takes a function, not ${show(fn)}`);
  if (typeof name !== "string") throw new HarmontError(`a target's name must be a string, not ${show(name)}`);
  if (name === "") throw new HarmontError("a target's name must not be empty");
  if (defined.includes(name)) throw new HarmontError(`duplicate target \`${name}\``);
  defined.push(name);
  return () => {
    if (values.has(name)) return values.get(name) as T;
    const at = resolving.indexOf(name);
    if (at >= 0) throw new HarmontError(`target cycle: ${[...resolving.slice(at), name].join(" -> ")}`);
    resolving.push(name);
    let value: T;
    try {
      value = fn();
    } finally {
      resolving.pop();
    }
    values.set(name, value);
    return value;
  };
}

/** Forgets every target and computed value. */
export function resetTargets(): void {
  defined.length = 0;
  values.clear();
  resolving.length = 0;
}

/**
 * Options objects: the TypeScript form of Python's keyword arguments. An
 * unknown option is an error, as an unknown keyword is in Python.
 */

import { HarmontError, show } from "./errors.ts";

/**
 * The options `value` holds, checked against `known`; `undefined` and `null`
 * mean none. `what` names the function in messages.
 */
export function options(value: unknown, known: readonly string[], what: string): Record<string, unknown> {
  if (value === undefined || value === null) return {};
  if (typeof value !== "object" || Array.isArray(value)) {
    throw new HarmontError(`${what} takes an options object, not ${show(value)}`);
  }
  const given = value as Record<string, unknown>;
  for (const name of Object.keys(given)) {
    if (!known.includes(name)) {
      throw new HarmontError(`${what} has no option \`${name}\` (options: ${known.join(", ")})`);
    }
  }
  return given;
}

/** Whether an option was left out (Python's `None`). */
export function absent(value: unknown): value is undefined | null {
  return value === undefined || value === null;
}

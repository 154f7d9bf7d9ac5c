/** Assertions for the SDK's tests, which run in hm's embedded engine (no Node.js). */

/** `value` as JSON with every object's keys sorted: two values are equal when these are. */
export function canonical(value: unknown): string {
  return JSON.stringify(value, (_key, v: unknown) => {
    if (v === null || typeof v !== "object" || Array.isArray(v)) return v;
    const sorted: Record<string, unknown> = {};
    for (const k of Object.keys(v as object).sort()) sorted[k] = (v as Record<string, unknown>)[k];
    return sorted;
  });
}

export function assert(cond: unknown, message = "assertion failed"): asserts cond {
  if (!cond) throw new Error(message);
}

/** Deep equality of JSON values, key order aside. */
export function assertEquals(actual: unknown, expected: unknown, message?: string): void {
  const a = canonical(actual);
  const e = canonical(expected);
  if (a !== e) throw new Error(`${message ? `${message}: ` : ""}expected ${e}\n  but got  ${a}`);
}

/** The very same object. */
export function assertSame(actual: unknown, expected: unknown, message?: string): void {
  if (actual !== expected) throw new Error(`${message ? `${message}: ` : ""}expected the same value, got ${String(actual)}`);
}

/** `fn` throws an error of `kind` (any `Error` unless told) whose message contains `substring`. */
export function assertThrows(fn: () => unknown, substring: string, kind: new (...args: never[]) => Error = Error): Error {
  let caught: unknown;
  try {
    fn();
  } catch (err) {
    caught = err;
  }
  if (caught === undefined) throw new Error(`expected a ${kind.name} containing ${JSON.stringify(substring)}, nothing was thrown`);
  if (!(caught instanceof kind)) throw new Error(`expected a ${kind.name}, got ${String(caught)}`);
  if (!caught.message.includes(substring)) {
    throw new Error(`expected a message containing ${JSON.stringify(substring)}, got ${JSON.stringify(caught.message)}`);
  }
  return caught;
}

/**
 * The one error a pipeline definition throws for its own mistakes, and how
 * messages show the values they complain about.
 */

/** A mistake in a pipeline definition: a bad slug, a cycle, a zero timeout... */
export class HarmontError extends Error {
  constructor(message: string) {
    super(message);
    this.name = "HarmontError";
  }
}

/** A value as an error message shows it: strings quoted, objects by their kind. */
export function show(value: unknown): string {
  if (typeof value === "string") return JSON.stringify(value);
  if (value === null || value === undefined) return String(value);
  if (typeof value === "function") return `function ${value.name || "(anonymous)"}`;
  if (typeof value !== "object") return String(value);
  const described = (value as { describe?: unknown }).describe;
  if (typeof described === "function") return String(described.call(value));
  if (Array.isArray(value)) return `[${value.map(show).join(", ")}]`;
  const proto = Object.getPrototypeOf(value);
  if (proto !== null && proto !== Object.prototype) {
    const name = (proto as { constructor?: { name?: string } }).constructor?.name;
    return name ? `a ${name}` : "an object";
  }
  try {
    return JSON.stringify(value) ?? "an object";
  } catch {
    return "an object";
  }
}

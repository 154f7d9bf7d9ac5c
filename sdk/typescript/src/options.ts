/**
 * Checks of what pipeline files pass in. Harmont's SDK takes anything and
 * fails later (or renders IR that no runner reads); this SDK says at the
 * call what is wrong: an unknown option, or a value of the wrong type.
 * Everything Harmont's SDK renders is accepted as it is.
 */

/** A short description of `value` for messages. */
export function show(value: unknown): string {
  if (value === undefined) return "undefined";
  if (value === null) return "null";
  switch (typeof value) {
    case "string":
      return JSON.stringify(value.length > 60 ? `${value.slice(0, 57)}...` : value);
    case "number":
    case "boolean":
    case "bigint":
      return String(value);
    case "function":
      return `a function${value.name ? ` (${value.name})` : ""}`;
    case "symbol":
      return "a symbol";
  }
  if (Array.isArray(value)) return "an array";
  const proto: unknown = Object.getPrototypeOf(value);
  if (proto === Object.prototype || proto === null) return "an object";
  const name = (proto as { constructor?: { name?: string } }).constructor?.name;
  return name ? `a ${name}` : "an object";
}

/** The allowed names of an options object, as a lookup. */
export type Allowed = Readonly<Record<string, true>>;

/** A lookup of `names`. */
export function allowed(...names: string[]): Allowed {
  const out: Record<string, true> = Object.create(null) as Record<string, true>;
  for (const name of names) out[name] = true;
  return out;
}

const NONE: Readonly<Record<string, unknown>> = Object.freeze({});

/**
 * `value` checked as the options object of `what`: `undefined` and `null`
 * are no options; anything but a plain object, or a name not in `names`,
 * is a `TypeError`.
 */
export function options(value: unknown, names: Allowed, what: string): Readonly<Record<string, unknown>> {
  if (value === undefined || value === null) return NONE;
  if (typeof value !== "object" || Array.isArray(value)) {
    throw new TypeError(`${what}: options must be an object, not ${show(value)}`);
  }
  for (const name in value) {
    if (names[name] !== true && Object.prototype.hasOwnProperty.call(value, name)) {
      throw new TypeError(`${what}: unknown option \`${name}\` (options: ${Object.keys(names).join(", ")})`);
    }
  }
  return value as Record<string, unknown>;
}

/** `value`, when given (not `undefined` or `null`), is a string. */
export function optionalString(value: unknown, what: string): void {
  if (value !== undefined && value !== null && typeof value !== "string") {
    throw new TypeError(`${what} must be a string, not ${show(value)}`);
  }
}

/** `value`, when given, is a boolean. */
export function optionalBoolean(value: unknown, what: string): void {
  if (value !== undefined && value !== null && typeof value !== "boolean") {
    throw new TypeError(`${what} must be true or false, not ${show(value)}`);
  }
}

/** `value`, when given, is an array of strings. */
export function optionalStrings(value: unknown, what: string): void {
  if (value === undefined || value === null) return;
  if (!Array.isArray(value)) throw new TypeError(`${what} must be an array of strings, not ${show(value)}`);
  for (const item of value) {
    if (typeof item !== "string") throw new TypeError(`${what} must be an array of strings, not one holding ${show(item)}`);
  }
}

function named(what: string, field: string | undefined): string {
  return field === undefined ? what : `${what}: ${field}`;
}

/** `value`, when given, is an object mapping names to strings (an environment); `field` names it in `what`. */
export function optionalEnv(value: unknown, what: string, field?: string): void {
  if (value === undefined || value === null) return;
  if (typeof value !== "object" || Array.isArray(value)) {
    throw new TypeError(`${named(what, field)} must be an object of names to strings, not ${show(value)}`);
  }
  const env = value as Record<string, unknown>;
  for (const name in env) {
    const item = env[name];
    if (typeof item !== "string" && Object.prototype.hasOwnProperty.call(env, name)) {
      throw new TypeError(`${named(what, field)}: the value of ${name} must be a string, not ${show(item)}`);
    }
  }
}

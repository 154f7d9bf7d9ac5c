/**
 * Durations of timeouts: `"30s"`, `"5m"`, `"1h30m"` (hours, minutes and
 * seconds, in any order and repeated) or a whole number of seconds.
 */

const SECONDS_PER_UNIT: Readonly<Record<string, number>> = { h: 3600, m: 60, s: 1 };
const WHOLE = /^(?:\d+[hms])+$/;
const PART = /(\d+)([hms])/g;

/** `value` in seconds, a whole number greater than 0; anything else throws. */
export function parseDuration(value: string | number): number {
  let seconds: number;
  if (typeof value === "number") {
    if (!Number.isInteger(value)) {
      throw new Error(`hm: timeout duration must be a whole number of seconds — got ${value}`);
    }
    seconds = value;
  } else if (typeof value === "string") {
    seconds = fromText(value);
  } else {
    throw new Error(`hm: timeout duration must be a string or number — got ${typeof value}`);
  }
  if (seconds <= 0) {
    throw new Error(
      `hm: timeout duration must be positive — got ${JSON.stringify(value)}\n  → use a value like "30s" or "5m"`,
    );
  }
  return seconds;
}

function fromText(text: string): number {
  const trimmed = text.trim();
  if (!WHOLE.test(trimmed)) {
    throw new Error(
      `hm: invalid timeout duration ${JSON.stringify(text)}\n` +
        `  → use a Go-style duration like "30s", "5m", or "1h30m" (units: h, m, s)`,
    );
  }
  let total = 0;
  for (const [, count, unit] of trimmed.matchAll(PART)) {
    total += Number(count) * (SECONDS_PER_UNIT[unit as string] as number);
  }
  return total;
}

/** Durations as pipelines write them: `"30s"`, `"5m"`, `"1h30m"`, `"2d"`, or seconds. */

import { HarmontError, show } from "./errors.ts";

/** A duration: a string with `d`, `h`, `m`, `s` parts (digits alone are seconds), or seconds. */
export type Duration = string | number;

const UNITS: Record<string, number> = { d: 86400, h: 3600, m: 60, s: 1 };
const PART = /(\d+)\s*([dhms])/g;

/** The whole number of seconds in `duration`; it must be greater than zero. */
export function seconds(duration: unknown, what = "duration"): number {
  let value: number;
  if (typeof duration === "number") {
    value = duration;
  } else if (typeof duration === "string") {
    const text = duration.trim().toLowerCase();
    if (/^\d+$/.test(text)) {
      value = Number(text);
    } else {
      const parts = [...text.matchAll(PART)];
      if (parts.length === 0 || text.replace(PART, "").trim() !== "") {
        throw new HarmontError(`${what} ${show(duration)} is not a duration such as '30s', '5m' or '1h30m'`);
      }
      value = parts.reduce((sum, [, n, unit]) => sum + Number(n) * (UNITS[unit as string] as number), 0);
    }
  } else {
    throw new HarmontError(`${what} must be a duration, not ${show(duration)}`);
  }
  if (!(value > 0)) {
    throw new HarmontError(`${what} must be greater than 0, not ${show(duration)}`);
  }
  if (!Number.isFinite(value)) {
    throw new HarmontError(`${what} must be a finite duration, not ${show(duration)}`);
  }
  return Math.max(1, roundHalfEven(value));
}

/** Python's `round`: halves go to the even neighbour (`round(2.5) == 2`). */
function roundHalfEven(value: number): number {
  const floor = Math.floor(value);
  const rest = value - floor;
  if (rest > 0.5) return floor + 1;
  if (rest < 0.5) return floor;
  return floor % 2 === 0 ? floor : floor + 1;
}

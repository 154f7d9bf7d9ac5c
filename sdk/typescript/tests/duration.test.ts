/** Durations: `"30s"`, `"5m"`, `"1h30m"` or whole seconds, greater than 0. */

import { parseDuration } from "@harmont/hm/src/duration.ts";
import { assertEquals, assertThrows } from "./assert.ts";

export const tests: Record<string, () => void> = {
  "text and numbers"() {
    const cases: Array<[string | number, number]> = [
      ["30s", 30],
      ["5m", 300],
      ["1h", 3600],
      ["1h30m", 5400],
      ["2h15m30s", 8130],
      ["30s1m", 90],
      [" 10s ", 10],
      [45, 45],
    ];
    assertEquals(
      cases.map(([value]) => parseDuration(value)),
      cases.map(([, seconds]) => seconds),
    );
  },

  "anything else is refused"() {
    for (const bad of ["", "30", "30 s", "1d", "m", "-5s", "1.5h"]) {
      assertThrows(() => parseDuration(bad), "hm: invalid timeout duration");
    }
    assertThrows(() => parseDuration("0s"), "hm: timeout duration must be positive — got \"0s\"");
    assertThrows(() => parseDuration(0), "must be positive — got 0");
    assertThrows(() => parseDuration(-3), "must be positive");
    assertThrows(() => parseDuration(NaN), "must be a whole number of seconds — got NaN");
    assertThrows(() => parseDuration(1.5), "whole number of seconds");
    assertThrows(() => parseDuration(null as never), "must be a string or number — got object");
  },
};

/**
 * Step keys: a step's own `key`, else its label's slug when no other step
 * shares that slug, else a hash of where the step is.
 */

import { sha256Hex } from "./host.ts";
import type { Step } from "./step.ts";

const SHORTCODE = /:[a-z0-9_+-]+:/g;
const SEPARATORS = /[^a-z0-9]+/g;
const EDGE_DASHES = /^-+|-+$/g;

/** A label as a key: lowercase ASCII letters and digits, `:shortcodes:` dropped, other runs turned into `-`. */
export function slugifyLabel(label: string): string {
  return label.toLowerCase().replace(SHORTCODE, " ").replace(SEPARATORS, "-").replace(EDGE_DASHES, "");
}

/** 12 hex digits of the SHA-256 of the parent's key, the command and the step's position, NUL-separated. */
export function hashKey(parentKey: string, cmd: string, position: number): string {
  return sha256Hex(parentKey, "\0", cmd, "\0", String(position)).slice(0, 12);
}

/**
 * The key of each of `steps` (command steps in the order they are
 * emitted), by step id. An explicit key always wins and reserves itself;
 * a label's slug is taken when no other step's label gives the same slug
 * and no explicit key took it; the rest are hashed.
 */
export function resolveKeys(steps: readonly Step[]): Map<number, string> {
  const taken = new Set<string>();
  const slugs = new Map<number, string>();
  const slugUses = new Map<string, number>();
  for (const step of steps) {
    if (step._keyOverride != null) taken.add(step._keyOverride);
    if (step._label != null) {
      const slug = slugifyLabel(step._label);
      if (slug !== "") {
        slugs.set(step._id, slug);
        slugUses.set(slug, (slugUses.get(slug) ?? 0) + 1);
      }
    }
  }
  const keys = new Map<number, string>();
  steps.forEach((step, position) => {
    if (step._keyOverride != null) {
      keys.set(step._id, step._keyOverride);
      return;
    }
    const slug = slugs.get(step._id);
    if (slug !== undefined && !taken.has(slug) && slugUses.get(slug) === 1) {
      keys.set(step._id, slug);
      taken.add(slug);
      return;
    }
    const parent = step._parent;
    const parentKey = parent !== null ? (keys.get(parent._id) ?? "") : "";
    keys.set(step._id, hashKey(parentKey, step._cmd ?? "", position));
  });
  return keys;
}

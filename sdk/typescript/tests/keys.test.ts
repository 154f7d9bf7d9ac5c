/** Step keys: an own key, a unique label's slug, or a hash of the step's place. */

import { scratch, sh } from "@harmont/hm";
import { sha256Hex } from "@harmont/hm/src/host.ts";
import { hashKey, resolveKeys, slugifyLabel } from "@harmont/hm/src/keys.ts";
import { assertEquals } from "./assert.ts";
import { graphOf, keys } from "./helpers.ts";

const HEX12 = /^[0-9a-f]{12}$/;

export const tests: Record<string, () => void> = {
  "SHA-256 itself"() {
    assertEquals(sha256Hex(""), "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855");
    assertEquals(sha256Hex("abc"), "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad");
    assertEquals(sha256Hex("a", "bc"), sha256Hex("abc"));
    assertEquals(sha256Hex(new Uint8Array([97, 98, 99])), sha256Hex("abc"));
    assertEquals(sha256Hex("é"), sha256Hex(new Uint8Array([0xc3, 0xa9])));
  },

  "slugs: lowercase, shortcodes and other runs become one dash, none at the ends"() {
    const cases: Array<[string, string]> = [
      ["Hello World", "hello-world"],
      [":rust: build", "build"],
      ["--hello--", "hello"],
      ["构建", ""],
      [":node: deps install", "deps-install"],
      ["a:b:c", "a-c"],
      [":a:b:", "b"],
      ["Café Build", "caf-build"],
      ["v1.2_rc", "v1-2-rc"],
      ["::", ""],
    ];
    assertEquals(
      cases.map(([label]) => slugifyLabel(label)),
      cases.map(([, slug]) => slug),
    );
  },

  "hashed keys: 12 hex digits of parent key, command and position, NUL-separated"() {
    assertEquals(hashKey("install", "build", 1), sha256Hex("install\0build\u00001").slice(0, 12));
    assertEquals(hashKey("", "echo", 0), sha256Hex("\0echo\u00000").slice(0, 12));
    assertEquals(HEX12.test(hashKey("p", "c", 3)), true);
  },

  "a unique label's slug is the key"() {
    const a = scratch().sh("install", { label: "Install" });
    const b = a.sh("build", { label: ":hammer: build" });
    const found = resolveKeys([a, b]);
    assertEquals([found.get(a._id), found.get(b._id)], ["install", "build"]);
  },

  "labels sharing a slug are all hashed"() {
    const a = sh("cmd a", { label: "test" });
    const b = sh("cmd b", { label: "Test!" });
    const found = resolveKeys([a, b]);
    assertEquals([found.get(a._id), found.get(b._id)], [hashKey("", "cmd a", 0), hashKey("", "cmd b", 1)]);
  },

  "an own key wins and reserves itself"() {
    const a = sh("cmd a", { label: "build", key: "build" });
    const b = sh("cmd b", { label: "build" });
    const c = sh("cmd c", { label: "other", key: "mine" });
    const d = sh("cmd d", { label: "mine" });
    const found = resolveKeys([a, b, c, d]);
    assertEquals(
      [a, b, c, d].map((s) => found.get(s._id)),
      ["build", hashKey("", "cmd b", 1), "mine", hashKey("", "cmd d", 3)],
    );
  },

  "an own key's label still counts against other steps' slugs"() {
    const a = sh("cmd a", { label: "lint", key: "custom" });
    const b = sh("cmd b", { label: "lint" });
    assertEquals(resolveKeys([a, b]).get(b._id), hashKey("", "cmd b", 1));
  },

  "an unlabelled step hashes its parent's key and its position"() {
    const parent = sh("install", { label: "install" });
    const child = parent.sh("build");
    const graph = graphOf([child]);
    assertEquals(keys(graph), ["install", hashKey("install", "build", 1)]);
  },

  "a step under a fork hashes an empty parent key"() {
    const fork = sh("install", { label: "install" }).fork();
    const graph = graphOf([fork.sh("a"), fork.sh("a")]);
    assertEquals(keys(graph), ["install", hashKey("", "a", 1), hashKey("", "a", 2)]);
  },

  "positions count command steps in emission order across the pipeline"() {
    const graph = graphOf([sh("x"), sh("x"), sh("y", { label: "y" }), sh("x")]);
    assertEquals(keys(graph), [hashKey("", "x", 0), hashKey("", "x", 1), "y", hashKey("", "x", 3)]);
  },

  "a label with no slug is hashed"() {
    assertEquals(keys(graphOf([sh("echo", { label: "构建" })])), [hashKey("", "echo", 0)]);
    assertEquals(keys(graphOf([sh("echo", { label: "" })])), [hashKey("", "echo", 0)]);
  },
};

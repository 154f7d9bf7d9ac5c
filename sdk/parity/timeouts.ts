import { pipeline, sh, timeout } from "@harmont/hm";

export default [
  {
    slug: "timeouts",
    pipeline: pipeline(
      [
        timeout("30s", sh("a", { label: "a" })),
        timeout("5m", sh("b", { label: "b" })),
        timeout("1h2m3s", sh("c", { label: "c" })),
        timeout(45, sh("d", { label: "d" })),
        timeout(120, sh("e", { label: "e" })),
        timeout("10s", timeout("1h", sh("f", { label: "f" }))),
      ],
      { timeout: "1h30m" },
    ),
  },
  { slug: "timeout-seconds", pipeline: pipeline([sh("make")], { timeout: 600 }) },
];

import { pipeline, sh, timeout } from "@harmont/hm";

function steps() {
  const root = sh("setup", { label: "setup" });
  return [
    timeout("30s", root.sh("quick")),
    timeout("5m", root.sh("medium")),
    timeout("2d", root.sh("long")),
    timeout(90, root.sh("ninety")),
    timeout("120", root.sh("digits")),
    timeout(" 1H 5M ", root.fork().sh("spaced")),
    timeout(2.5, root.sh("half-even")),
    timeout(0.4, root.sh("tiny")),
    timeout("10m", root.fork()),
  ];
}

export const pipelines = [
  { slug: "timeouts", pipeline: () => pipeline(steps(), { timeout: "1h30m" }) },
  { slug: "timeout-seconds", pipeline: pipeline(timeout("1m", sh("make", { key: "make" })), { timeout: 600 }) },
];

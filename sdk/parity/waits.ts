import { sh, wait } from "@harmont/hm";

function waits() {
  const base = sh("make base", { label: "base" });
  const a = base.sh("make a");
  const b = sh("make b");
  const c = a.sh("make c");
  const d = sh("make d0").sh("make d");
  return [wait(), a, b, wait(), c, d, wait(), wait(), sh("make e"), wait()];
}

function lenient() {
  const notify = sh("notify-setup").sh("notify", { label: ":bell: notify" });
  return [
    [sh("test", { label: "test" }), [sh("lint", { label: "lint" })]],
    wait({ continueOnFailure: true }),
    [notify, sh("collect logs")],
    wait(),
    sh("cleanup", { label: "cleanup" }),
    wait({ continueOnFailure: true }),
    wait(),
    sh("report"),
  ];
}

export const pipelines = [
  { slug: "waits", pipeline: waits },
  { slug: "waits-lenient", pipeline: lenient },
];

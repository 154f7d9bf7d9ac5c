import { scratch, sh } from "@harmont/hm";

function runners() {
  const vm = sh("uname -a", { label: "vm root", runner: "vm", runnerArgs: { cpus: 2, memory: "4G" } });
  const root = sh("make deps", { cwd: "app", image: "debian:12", key: "deps" });
  return [
    vm,
    vm.sh("make", { cwd: "src", runner: "vm", runnerArgs: ["--fast", 3, true, null] }),
    root.sh("make test", { cwd: "app/tests", label: "tests", image: "debian:12-slim" }),
    root.sh("make docs", { runner: "vm", runnerArgs: {} }),
    scratch({ image: "alpine:3" }).sh("echo hi", { cwd: "/tmp" }),
  ];
}

export default { slug: "runners", pipeline: runners };

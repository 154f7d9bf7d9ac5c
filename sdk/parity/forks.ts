import { onChange, sh } from "@harmont/hm";

function forks() {
  const deps = sh("npm ci", { label: "deps", cache: onChange("package-lock.json") });
  const checks = deps.fork("checks");
  const lint = checks.sh("npm run lint", { label: "lint" });
  const unit = checks.fork().sh("npm test", { label: "unit" });
  const e2e = deps.sh("npm run e2e").sh("npm run report");
  return [lint, unit, e2e, deps.fork(), checks.sh("npm run typecheck")];
}

export const pipelines = [
  { slug: "forks", pipeline: forks },
  { slug: "fork-only", pipeline: sh("make deps", { key: "deps" }).fork() },
];

import { go, pipeline, sh } from "@harmont/hm";

function layered() {
  const root = sh("a", { key: "a", env: { B: "step", C: "step" } });
  return [
    root,
    root.sh("child", { key: "child", env: { TERM: "xterm", Z: "last", A: "child" } }),
    sh("b", { key: "b", env: { TERM: "xterm" } }),
    sh("c", { key: "c" }),
    sh("numbers", { key: "numbers", env: { N: 4, F: 1.5, EMPTY: "" } }),
    sh("empty env", { key: "empty", env: {} }),
  ];
}

function presets() {
  const project = go.project();
  return [project.action("go run ./cmd/gen", { env: { GOFLAGS: "-tags=gen", PATH: "/gen/bin" } }), project.test()];
}

export const pipelines = [
  {
    slug: "env-layering",
    pipeline: () => pipeline(layered(), { env: { A: "pipe", B: "pipe", DEBIAN_FRONTEND: "readline", JOBS: 8 } }),
  },
  { slug: "env-presets", pipeline: () => pipeline(presets(), { env: { CI: "true", PATH: "/custom/bin" } }) },
];

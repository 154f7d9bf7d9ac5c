import { scratch, sh } from "@harmont/hm";

function keysLabels() {
  const root = sh("make", { key: "root", label: "Root Step" });
  return [
    sh("a", { key: "given", label: "Some Label" }),
    sh("b", { label: "Build :rocket: App!!" }),
    sh("c", { label: ":package: cargo   test --all" }),
    sh("d", { label: "  Unit/Integration Tests  " }),
    sh("e", { label: "v1.2 :white_check_mark:" }),
    sh("f", { label: ":rocket:" }),
    sh("g", { label: "Déploiement 🚀 prod" }),
    sh("h", { label: "Same" }),
    sh("i", { label: "same!" }),
    sh("j", { key: "taken" }),
    sh("k", { label: "Taken" }),
    sh("l", { label: "" }),
    root.sh("make"),
    root.sh("make"),
    sh("make"),
    sh("make"),
    sh("child", { label: "Labelled Parent" }).sh("grandchild"),
  ];
}

function keysScratch() {
  const base = scratch({ image: "debian:12" });
  return [base.sh("make"), base.sh("make"), base.sh("make", { image: "alpine:3", label: "Alpine :mountain:" })];
}

export const pipelines = [
  { slug: "keys-labels", pipeline: keysLabels },
  { slug: "keys-scratch", pipeline: keysScratch },
];

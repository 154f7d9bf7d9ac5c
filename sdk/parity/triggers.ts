import { pr, pullRequest, push, sh } from "@harmont/hm";

export const pipelines = [
  {
    slug: "triggers-main",
    name: "On main",
    triggers: [push({ branch: "main" }), push({ branch: ["release/*", "hotfix/**"] }), pr()],
    allowManual: false,
    pipeline: sh("make", { key: "make" }),
  },
  {
    slug: "triggers-tags",
    triggers: [push({ tag: "v*" }), push({ tag: ["nightly-*", "rc-*"] })],
    pipeline: sh("make release", { key: "release" }),
  },
  {
    slug: "triggers-pr",
    triggers: [
      pullRequest({ branches: "main" }),
      pullRequest({ branches: ["main", "dev"], types: ["opened", "labeled"] }),
      pr({ types: "closed" }),
    ],
    pipeline: sh("make check", { key: "check" }),
  },
];

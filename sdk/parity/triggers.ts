import { pipeline, pullRequest, push, sh } from "@harmont/hm";

export default [
  {
    slug: "on-push",
    triggers: [push({ branch: "main" }), push({ tag: ["v*", "release-*"] })],
    pipeline: pipeline([sh("make")]),
  },
  {
    slug: "on-pr",
    name: "Pull requests",
    allowManual: false,
    triggers: [pullRequest(), pullRequest({ branches: "main", types: ["opened", "closed", "ready_for_review"] })],
    pipeline: pipeline([sh("make")]),
  },
  {
    slug: "on-branches",
    triggers: [push({ branch: ["main", "release/*"] }), pullRequest({ branches: ["a", "b"] })],
    pipeline: pipeline([sh("make")]),
  },
];

import { forever, pipeline, sh, target } from "@harmont/hm";
import { go } from "@harmont/hm/toolchains";

const shared = target("shared", () => sh("make shared", { label: "shared", cache: forever() }));

export const pipelines = [
  { slug: "multi-build", pipeline: pipeline([shared().sh("make build", { label: "build" })]) },
  {
    slug: "multi-test",
    name: "Tests",
    pipeline: pipeline([shared().sh("make test", { label: "test" }), go({ path: "svc" }).test()]),
  },
  { slug: "multi", pipeline: pipeline([sh("true")]) },
];

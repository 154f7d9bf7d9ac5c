import { forever, pipeline, sh } from "@harmont/hm";
import { go } from "@harmont/hm/toolchains";

const api = go({ path: "services/api" });
const pinned = go({ path: ".", version: "1.22", image: "golang:1.22-bookworm" });
const generated = api.setup("go generate ./...", { label: "generate", cache: forever() });

const base = sh("apt-get update && apt-get install -y git make", { label: "base", image: "debian:12", cache: forever() });
const one = go({ path: "one", base });
const two = go({ path: "two", base, version: "1.21.13" });

export default [
  {
    slug: "go-preset",
    pipeline: pipeline(
      [
        api.build(),
        api.test({ env: { GOFLAGS: "-race" } }),
        api.vet(),
        api.fmt({ label: "gofmt" }),
        pinned.build({ key: "pinned-build" }),
        generated.test(),
      ],
      { env: { CGO_ENABLED: "0" } },
    ),
  },
  { slug: "go-shared-base", pipeline: pipeline([one.test(), two.test()]) },
];

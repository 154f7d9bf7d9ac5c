import { go } from "@harmont/hm";

export default [
  { slug: "go-default", pipeline: go.project() },
  {
    slug: "go-service",
    pipeline: () => {
      const toolchain = go.toolchain("1.22.10", { packages: ["protobuf-compiler"] });
      const svc = toolchain
        .project("svc")
        .setup("go generate ./...", { label: "generate", env: { GOFLAGS: "-mod=mod" } });
      const lib = toolchain.project("lib");
      return [svc.fmt(), svc.vet(), svc.build(), svc.test(), lib];
    },
  },
];

import { zig } from "@harmont/hm";

export const pipelines = [
  { slug: "zig-default", pipeline: zig.project() },
  {
    slug: "zig-old",
    pipeline: () => {
      const project = zig.toolchain("0.13.0").project("lib");
      return [project.build(), project.test(), project.fmt(), zig.project(".", { version: "0.15.1" })];
    },
  },
];

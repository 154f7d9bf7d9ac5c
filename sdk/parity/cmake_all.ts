import { cmake } from "@harmont/hm";

function cmakeAll() {
  const project = cmake.project();
  return [project.build(), project.test(), project.fmt(), project.lint(), project.package()];
}

export const pipelines = [
  { slug: "cmake-all", pipeline: cmakeAll },
  {
    slug: "cmake-debug",
    pipeline: () => {
      const toolchain = cmake.toolchain({ buildType: "Debug", packages: ["libboost-dev"] });
      return [toolchain.project("engine"), cmake.project("tools", { buildType: "RelWithDebInfo" }).package()];
    },
  },
];

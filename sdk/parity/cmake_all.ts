import { forever, onChange, pipeline } from "@harmont/hm";
import { cmake } from "@harmont/hm/toolchains";

const project = cmake({ path: ".", defines: { CMAKE_BUILD_TYPE: "Release" } });

const gcc = cmake({ path: "gcc", compiler: "gcc-14", generator: "make", ccache: false, target: "app" });
const preset = cmake({ path: "preset", compiler: "clang", preset: "ci" });
const vcpkg = cmake({ path: "vcpkg", deps: "vcpkg" });
const toolchain = cmake({ compiler: "clang-18", image: "debian:12" }).setup("conan install .", { label: "conan", cache: forever() });
const lib = toolchain.project({ path: "lib", cache: onChange("lib/CMakeLists.txt", "conanfile.txt") });

export default [
  {
    slug: "cmake-all",
    pipeline: pipeline([
      project.build(),
      project.test(),
      project.test({ parallel: false, label: "serial tests" }),
      project.install({ prefix: "/opt/app" }),
      project.fmt(),
      project.fmt({ fix: true, key: "fmt-fix" }),
      project.lint(),
      project.package({ generator: "DEB" }),
    ]),
  },
  { slug: "cmake-variants", pipeline: pipeline([gcc.build(), gcc.lint(), preset.build(), vcpkg.test(), lib.test(), lib.package()]) },
];

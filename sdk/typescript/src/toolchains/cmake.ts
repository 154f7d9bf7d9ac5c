/**
 * C and C++ with CMake and Ninja from the image's packages: configure on the
 * CMake files, then build, test, format, lint and package actions.
 */

import type { Step } from "../step.ts";
import {
  Project,
  SYSTEM_PATH,
  Toolchain,
  baseStep,
  checkVersion,
  dependencyStep,
  installStep,
  joined,
  presetOptions,
  projectPath,
} from "./base.ts";
import type { PresetOptions } from "./base.ts";

const PACKAGES = ["build-essential", "ca-certificates", "clang-format", "clang-tidy", "cmake", "git", "ninja-build"];
const ENV = { PATH: SYSTEM_PATH, CMAKE_GENERATOR: "Ninja" };
const BUILD_DIR = "build";
const SOURCES = "-name '*.c' -o -name '*.cc' -o -name '*.cpp' -o -name '*.h' -o -name '*.hpp'";

export class CmakeProject extends Project {
  build(): Step {
    return this.action(`cmake --build ${BUILD_DIR}`, { label: "cmake build" });
  }

  test(): Step {
    return this.action(`cmake --build ${BUILD_DIR} && ctest --test-dir ${BUILD_DIR} --output-on-failure`, {
      label: "ctest",
    });
  }

  fmt(): Step {
    const cmd = `find . -path ./${BUILD_DIR} -prune -o \\( ${SOURCES} \\) -print | xargs -r clang-format --dry-run --Werror`;
    return this.action(cmd, { label: "clang-format" });
  }

  lint(): Step {
    const cmd =
      `find . -path ./${BUILD_DIR} -prune -o \\( -name '*.c' -o -name '*.cc' -o -name '*.cpp' \\) -print ` +
      `| xargs -r clang-tidy -p ${BUILD_DIR}`;
    return this.action(cmd, { label: "clang-tidy" });
  }

  package(): Step {
    return this.action(`cmake --build ${BUILD_DIR} && cd ${BUILD_DIR} && cpack`, { label: "cpack" });
  }

  override defaults(): Step[] {
    return [this.fmt(), this.build(), this.test()];
  }
}

export class CmakeToolchain extends Toolchain {
  declare readonly buildType: string;

  constructor(install: Step, env: Readonly<Record<string, string>>, buildType: string) {
    super(install, env);
    this.buildType = buildType;
  }

  project(path: string = "."): CmakeProject {
    path = projectPath(path);
    const cmd = `cmake -S . -B ${BUILD_DIR} -G Ninja -DCMAKE_BUILD_TYPE=${this.buildType} -DCMAKE_EXPORT_COMPILE_COMMANDS=ON`;
    const inputs = [joined(path, "CMakeLists.txt"), joined(path, "**/CMakeLists.txt"), joined(path, "**/*.cmake")];
    const deps = dependencyStep(this.install, cmd, inputs, path, "cmake configure", this.env);
    return new CmakeProject(deps, path, this.env);
  }
}

/** Options of `cmake.toolchain` and `cmake.project`. */
export interface CmakeOptions extends PresetOptions {
  /** `CMAKE_BUILD_TYPE`: `"Release"` (the default), `"Debug"`... */
  buildType?: string;
}

/** `cmake`: `cmake.project(".", {buildType: "Debug"})`. */
export class Cmake {
  toolchain(opts?: CmakeOptions): CmakeToolchain {
    const o = presetOptions(opts, ["buildType"], "cmake.toolchain");
    const buildType = checkVersion(o.buildType === undefined ? "Release" : o.buildType, "CMake build type");
    const start = baseStep(o.base, [...PACKAGES, ...o.packages], o.image);
    const install = installStep(start, "cmake --version && ninja --version", "cmake", ENV);
    return new CmakeToolchain(install, ENV, buildType);
  }

  project(path: string = ".", opts?: CmakeOptions): CmakeProject {
    const o = presetOptions(opts, ["buildType"], "cmake.project");
    const buildType = o.buildType === undefined ? "Release" : (o.buildType as string);
    return this.toolchain({ buildType, image: o.image, base: o.base, packages: o.packages }).project(path);
  }
}

export const cmake = new Cmake();

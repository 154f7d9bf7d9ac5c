/** Go: the official release for the image's architecture, `go mod download` on `go.sum`. */

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

const PACKAGES = ["build-essential", "ca-certificates", "curl", "git"];
const ENV = { GOPATH: "/root/go", PATH: `/usr/local/go/bin:/root/go/bin:${SYSTEM_PATH}` };

export class GoProject extends Project {
  build(): Step {
    return this.action("go build ./...", { label: "go build" });
  }

  test(): Step {
    return this.action("go test ./...", { label: "go test" });
  }

  vet(): Step {
    return this.action("go vet ./...", { label: "go vet" });
  }

  fmt(): Step {
    return this.action('test -z "$(gofmt -l .)" || { gofmt -l .; exit 1; }', { label: "gofmt" });
  }

  override defaults(): Step[] {
    return [this.fmt(), this.vet(), this.build(), this.test()];
  }
}

export class GoToolchain extends Toolchain {
  project(path: string = "."): GoProject {
    path = projectPath(path);
    const deps = dependencyStep(this.install, "go mod download", [joined(path, "go.sum")], path, "go mod download", this.env);
    return new GoProject(deps, path, this.env);
  }
}

/** Options of `go.project`. */
export interface GoProjectOptions extends PresetOptions {
  /** A Go release: `"1.23.4"` (the default)... */
  version?: string;
}

/** `go`: `go.toolchain("1.23.4").project()` or `go.project()`. */
export class Go {
  readonly DEFAULT_VERSION = "1.23.4";

  toolchain(version: string = this.DEFAULT_VERSION, opts?: PresetOptions): GoToolchain {
    const o = presetOptions(opts, [], "go.toolchain");
    version = checkVersion(version, "Go");
    const start = baseStep(o.base, [...PACKAGES, ...o.packages], o.image);
    // dpkg names the architecture as Go's downloads do (amd64, arm64).
    const cmd =
      `curl -fsSL "https://go.dev/dl/go${version}.linux-$(dpkg --print-architecture).tar.gz" ` +
      "| tar -C /usr/local -xz";
    return new GoToolchain(installStep(start, cmd, `go ${version}`, ENV), ENV);
  }

  project(path: string = ".", opts?: GoProjectOptions): GoProject {
    const o = presetOptions(opts, ["version"], "go.project");
    const version = o.version === undefined ? this.DEFAULT_VERSION : (o.version as string);
    return this.toolchain(version, { image: o.image, base: o.base, packages: o.packages }).project(path);
  }
}

export const go = new Go();

/** Go: `go({ path, version })`, an install chain and the actions build, test, vet and fmt. */

import { forever } from "../cache.ts";
import { allowed, options, optionalString } from "../options.ts";
import type { Step, StepOptions } from "../step.ts";
import { actionOptions, checkPresetBase, makeInstallChain } from "./shared.ts";

const APT_PACKAGES = ["curl", "ca-certificates", "git"];
const VERSION = /^[0-9]+\.[0-9]+(\.[0-9]+)?$/;
const GO_OPTIONS = allowed("path", "version", "image", "base");
const ACTION = actionOptions();

export interface GoOptions {
  readonly path?: string;
  readonly version?: string;
  readonly image?: string;
  readonly base?: Step;
}

type ActionOptions = Omit<StepOptions, "cwd">;

export class GoToolchain {
  readonly path: string;
  private readonly _installed: Step;

  constructor(path: string, installed: Step) {
    this.path = path;
    this._installed = installed;
  }

  /** The step that installed Go; actions build on it. */
  install(): Step {
    return this._installed;
  }

  /** A toolchain whose actions build on `cmd`, run after the install (code generation, extra tools). */
  setup(cmd: string, opts?: StepOptions): GoToolchain {
    return new GoToolchain(this.path, this._installed.sh(cmd, opts));
  }

  private _action(command: string, label: string, opts: ActionOptions | undefined, what: string): Step {
    return this._installed.sh(`cd ${this.path} && ${command}`, { label, ...ACTION(opts, what) });
  }

  build(opts?: ActionOptions): Step {
    return this._action("go build ./...", ":go: build", opts, "go.build");
  }

  test(opts?: ActionOptions): Step {
    return this._action("go test ./...", ":go: test", opts, "go.test");
  }

  vet(opts?: ActionOptions): Step {
    return this._action("go vet ./...", ":go: vet", opts, "go.vet");
  }

  fmt(opts?: ActionOptions): Step {
    return this._action('test -z "$(gofmt -l .)"', ":go: fmt", opts, "go.fmt");
  }
}

/** Go `version` (default 1.23.2) on an apt base, for the module at `path` (default `.`). */
export function go(opts?: GoOptions): GoToolchain {
  const o = options(opts, GO_OPTIONS, "go");
  optionalString(o.path, "go: path");
  checkPresetBase(o, "go");
  const path = (o.path as string | undefined) ?? ".";
  const version = (o.version as string | undefined) ?? "1.23.2";
  if (!VERSION.test(version)) {
    throw new Error(`hm.go: invalid version "${version}"\n  → use a semver like "1.23" or "1.23.2"`);
  }
  const installCmd = [
    `curl -fsSL https://go.dev/dl/go${version}.linux-amd64.tar.gz -o /tmp/go.tgz`,
    "rm -rf /usr/local/go && tar -C /usr/local -xzf /tmp/go.tgz",
    "ln -sf /usr/local/go/bin/go /usr/local/bin/go",
    "ln -sf /usr/local/go/bin/gofmt /usr/local/bin/gofmt",
    "go version",
  ].join(" && ");
  const installed = makeInstallChain({
    aptPackages: APT_PACKAGES,
    installCmd,
    installCache: forever(),
    langTag: "go",
    installTag: "install",
    image: o.image as string | undefined,
    base: o.base as Step | undefined,
  });
  return new GoToolchain(path, installed);
}

/**
 * Elixir: Erlang/OTP from the image's packages, the Elixir release built for
 * that OTP (BEAM files run on every architecture), Hex and rebar,
 * `mix deps.get` on `mix.lock`.
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

const PACKAGES = ["ca-certificates", "curl", "erlang-dev", "erlang-nox", "erlang-xmerl", "git", "unzip"];
const ENV = {
  MIX_HOME: "/root/.mix",
  HEX_HOME: "/root/.hex",
  MIX_ENV: "test",
  LANG: "C.UTF-8",
  PATH: `/usr/local/elixir/bin:${SYSTEM_PATH}`,
};

export class ElixirProject extends Project {
  compile(): Step {
    return this.action("mix compile --warnings-as-errors", { label: "mix compile" });
  }

  test(): Step {
    return this.action("mix test", { label: "mix test" });
  }

  format(): Step {
    return this.action("mix format --check-formatted", { label: "mix format" });
  }

  credo(): Step {
    return this.action("mix credo --strict", { label: "mix credo" });
  }

  dialyzer(): Step {
    return this.action("mix dialyzer", { label: "mix dialyzer" });
  }

  override defaults(): Step[] {
    return [this.format(), this.compile(), this.test()];
  }
}

export class ElixirToolchain extends Toolchain {
  project(path: string = "."): ElixirProject {
    path = projectPath(path);
    const cmd = "mix deps.get && mix deps.compile";
    const deps = dependencyStep(this.install, cmd, [joined(path, "mix.lock")], path, "mix deps.get", this.env);
    return new ElixirProject(deps, path, this.env);
  }
}

/** Options of `elixir.project`. */
export interface ElixirProjectOptions extends PresetOptions {
  /** An Elixir release: `"1.17.3"` (the default)... */
  version?: string;
}

/** `elixir`: `elixir.toolchain("1.17.3").project()` or `elixir.project()`. */
export class Elixir {
  readonly DEFAULT_VERSION = "1.17.3";

  toolchain(version: string = this.DEFAULT_VERSION, opts?: PresetOptions): ElixirToolchain {
    const o = presetOptions(opts, [], "elixir.toolchain");
    version = checkVersion(version, "Elixir");
    const start = baseStep(o.base, [...PACKAGES, ...o.packages], o.image);
    const cmd =
      "OTP=$(erl -noshell -eval 'io:put_chars(erlang:system_info(otp_release)), halt().')" +
      ` && curl -fsSL -o /tmp/elixir.zip "https://github.com/elixir-lang/elixir/releases/download/v${version}/` +
      'elixir-otp-$OTP.zip"' +
      " && unzip -q /tmp/elixir.zip -d /usr/local/elixir && rm /tmp/elixir.zip" +
      " && mix local.hex --force && mix local.rebar --force";
    return new ElixirToolchain(installStep(start, cmd, `elixir ${version}`, ENV), ENV);
  }

  project(path: string = ".", opts?: ElixirProjectOptions): ElixirProject {
    const o = presetOptions(opts, ["version"], "elixir.project");
    const version = o.version === undefined ? this.DEFAULT_VERSION : (o.version as string);
    return this.toolchain(version, { image: o.image, base: o.base, packages: o.packages }).project(path);
  }
}

export const elixir = new Elixir();

/**
 * Elixir: `elixir({ path, elixirVersion, otpVersion })` installs Erlang/OTP
 * and Elixir on an apt base and fetches the project's dependencies; its
 * actions (compile, test, format, credo, dialyzer, ...) fork from that.
 * Every Elixir step runs with `ELIXIR_ERL_OPTIONS=+fnu` (UTF-8 file names).
 */

import { forever, onChange } from "../cache.ts";
import { allowed, options, optionalBoolean, optionalString } from "../options.ts";
import type { Step, StepOptions } from "../step.ts";
import { actionOptions, checkPresetBase, makeInstallChain } from "./shared.ts";

const APT_PACKAGES = [
  "curl",
  "ca-certificates",
  "git",
  "unzip",
  "build-essential",
  "autoconf",
  "libncurses-dev",
  "libssl-dev",
];
const ELIXIR_ENV: Readonly<Record<string, string>> = { ELIXIR_ERL_OPTIONS: "+fnu" };
const ELIXIR_VERSION = /^[0-9]+\.[0-9]+\.[0-9]+$/;
const OTP_VERSION = /^[0-9]+(\.[0-9]+(\.[0-9]+)?)?$/;
const ELIXIR_OPTIONS = allowed("path", "elixirVersion", "otpVersion", "image", "base");
const ACTION = actionOptions();
const TEST = actionOptions("cover", "partitions");
const CREDO = actionOptions("strict");
const RELEASE = actionOptions("mixEnv");

export interface ElixirOptions {
  readonly path?: string;
  readonly elixirVersion?: string;
  readonly otpVersion?: string;
  readonly image?: string;
  readonly base?: Step;
}

type ActionOptions = Omit<StepOptions, "cwd">;
type Options = Readonly<Record<string, unknown>>;

export class ElixirProject {
  readonly path: string;
  private readonly _installed: Step;
  private _plt: Step | null;

  constructor(path: string, installed: Step) {
    this.path = path;
    this._installed = installed;
    this._plt = null;
  }

  /** The step that fetched and compiled the dependencies; actions build on it. */
  install(): Step {
    return this._installed;
  }

  /** A project whose actions build on `cmd`, run after the dependencies. */
  setup(cmd: string, opts?: StepOptions): ElixirProject {
    return new ElixirProject(this.path, this._installed.sh(cmd, opts));
  }

  /** `mix <command>` in the project, on `parent`, with Elixir's env under the step's own. */
  private _mix(parent: Step, command: string, label: string, opts: Options): Step {
    const { env, ...rest } = opts;
    return parent.sh(`cd ${this.path} && ${command}`, {
      env: { ...ELIXIR_ENV, ...(env as Record<string, string> | undefined) },
      label,
      ...rest,
    });
  }

  compile(opts?: ActionOptions): Step {
    return this._mix(this._installed, "mix compile --warnings-as-errors", ":ex: compile", ACTION(opts, "elixir.compile"));
  }

  test(opts?: ActionOptions & { cover?: boolean; partitions?: number }): Step {
    const { cover, partitions, ...rest } = TEST(opts, "elixir.test");
    const flags: string[] = [];
    if (cover) flags.push("--cover");
    if (partitions != null) flags.push(`--partitions ${String(partitions)}`);
    return this._mix(this._installed, `mix test${flags.map((f) => ` ${f}`).join("")}`, ":ex: test", rest);
  }

  format(opts?: ActionOptions): Step {
    return this._mix(this._installed, "mix format --check-formatted", ":ex: format", ACTION(opts, "elixir.format"));
  }

  /** `mix credo`, strict unless `strict: false`. */
  credo(opts?: ActionOptions & { strict?: boolean }): Step {
    const { strict, ...rest } = CREDO(opts, "elixir.credo");
    optionalBoolean(strict, "elixir.credo: strict");
    return this._mix(this._installed, `mix credo${strict !== false ? " --strict" : ""}`, ":ex: credo", rest);
  }

  /** The PLT dialyzer needs, built once per project and cached on mix.lock. */
  plt(): Step {
    if (this._plt === null) {
      this._plt = this._mix(this._installed, "mix dialyzer --plt", ":ex: plt", {
        cache: onChange(`${this.path}/mix.lock`),
      });
    }
    return this._plt;
  }

  dialyzer(opts?: ActionOptions): Step {
    return this._mix(this.plt(), "mix dialyzer", ":ex: dialyzer", ACTION(opts, "elixir.dialyzer"));
  }

  sobelow(opts?: ActionOptions): Step {
    return this._mix(this._installed, "mix sobelow --exit", ":ex: sobelow", ACTION(opts, "elixir.sobelow"));
  }

  depsAudit(opts?: ActionOptions): Step {
    return this._mix(this._installed, "mix deps.audit", ":ex: deps-audit", ACTION(opts, "elixir.depsAudit"));
  }

  hexAudit(opts?: ActionOptions): Step {
    return this._mix(this._installed, "mix hex.audit", ":ex: hex-audit", ACTION(opts, "elixir.hexAudit"));
  }

  /** Any mix task, labelled with its name. */
  mix(task: string, opts?: ActionOptions): Step {
    optionalString(task, "elixir.mix: task");
    return this._mix(this._installed, `mix ${task}`, `:ex: ${task}`, ACTION(opts, "elixir.mix"));
  }

  /** `mix release` with `MIX_ENV` (default prod). */
  release(opts?: ActionOptions & { mixEnv?: string }): Step {
    const { mixEnv, ...rest } = RELEASE(opts, "elixir.release");
    optionalString(mixEnv, "elixir.release: mixEnv");
    return this._mix(this._installed, `MIX_ENV=${(mixEnv as string | undefined) ?? "prod"} mix release`, ":ex: release", rest);
  }
}

/** Erlang/OTP `otpVersion` (default 27.3.3) and Elixir `elixirVersion` (default 1.18.3), and the project at `path`'s dependencies. */
export function elixir(opts?: ElixirOptions): ElixirProject {
  const o = options(opts, ELIXIR_OPTIONS, "elixir");
  optionalString(o.path, "elixir: path");
  checkPresetBase(o, "elixir");
  const path = (o.path as string | undefined) ?? ".";
  const elixirVersion = (o.elixirVersion as string | undefined) ?? "1.18.3";
  const otpVersion = (o.otpVersion as string | undefined) ?? "27.3.3";
  if (!ELIXIR_VERSION.test(elixirVersion)) {
    throw new Error(`hm.elixir: invalid elixir version "${elixirVersion}"\n  → use a semver like "1.18.3"`);
  }
  if (!OTP_VERSION.test(otpVersion)) {
    throw new Error(`hm.elixir: invalid otp version "${otpVersion}"\n  → use a semver like "27" or "27.3.3"`);
  }
  const otpMajor = String(otpVersion).split(".")[0] as string;
  const erlang = makeInstallChain({
    aptPackages: APT_PACKAGES,
    installCmd: [
      `curl -fsSL https://binaries2.erlang-solutions.com/debian/pool/contrib/e/esl-erlang/esl-erlang_${otpVersion}-1~debian~bookworm_amd64.deb -o /tmp/erlang.deb`,
      "(dpkg -i /tmp/erlang.deb || apt-get install -fy)",
      "erl -eval 'erlang:display(erlang:system_info(otp_release)), halt().' -noshell",
    ].join(" && "),
    installCache: forever(),
    langTag: "ex",
    installTag: "erlang-install",
    image: o.image as string | undefined,
    base: o.base as Step | undefined,
  });
  const elixirInstalled = erlang.sh(
    [
      `curl -fsSL https://github.com/elixir-lang/elixir/releases/download/v${elixirVersion}/elixir-otp-${otpMajor}.zip -o /tmp/elixir.zip`,
      "unzip -q /tmp/elixir.zip -d /usr/local/elixir",
      "ln -sf /usr/local/elixir/bin/elixir /usr/local/bin/elixir",
      "ln -sf /usr/local/elixir/bin/mix /usr/local/bin/mix",
      "ln -sf /usr/local/elixir/bin/iex /usr/local/bin/iex",
      "mix local.hex --force",
      "mix local.rebar --force",
      "elixir --version",
    ].join(" && "),
    { label: ":ex: elixir-install", cache: forever(), env: ELIXIR_ENV },
  );
  const deps = elixirInstalled.sh(`cd ${path} && mix deps.get && mix deps.compile`, {
    label: ":ex: mix-deps",
    cache: onChange(`${path}/mix.lock`),
    env: ELIXIR_ENV,
  });
  return new ElixirProject(path, deps);
}

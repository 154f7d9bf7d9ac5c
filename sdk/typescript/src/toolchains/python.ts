/** Python: a virtual environment with pip (`python`), or uv (`py.uv`). */

import { HarmontError, show } from "../errors.ts";
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

export class PythonProject extends Project {
  /** Prefix that runs a tool in the project's environment. */
  protected runner(): string {
    return "";
  }

  protected tool(cmd: string, label: string): Step {
    return this.action(`${this.runner()}${cmd}`, { label });
  }

  test(): Step {
    return this.tool("python -m pytest", "pytest");
  }

  lint(): Step {
    return this.tool("ruff check .", "ruff check");
  }

  fmt(): Step {
    return this.tool("ruff format --check .", "ruff format");
  }

  typecheck(): Step {
    return this.tool("mypy .", "mypy");
  }

  override defaults(): Step[] {
    return [this.lint(), this.fmt(), this.typecheck(), this.test()];
  }
}

export class UvProject extends PythonProject {
  protected override runner(): string {
    return "uv run ";
  }
}

const PIP_PACKAGES = ["ca-certificates", "git", "python3", "python3-venv"];
const PIP_ENV = {
  VIRTUAL_ENV: "/opt/venv",
  PATH: `/opt/venv/bin:${SYSTEM_PATH}`,
  PIP_DISABLE_PIP_VERSION_CHECK: "1",
  PYTHONDONTWRITEBYTECODE: "1",
};
const PIP_DEPS =
  "if [ -f requirements.txt ]; then pip install -r requirements.txt; fi" +
  " && if [ -f pyproject.toml ]; then pip install -e .; fi";

export class PipToolchain extends Toolchain {
  project(path: string = "."): PythonProject {
    path = projectPath(path);
    const locks = [joined(path, "requirements.txt"), joined(path, "pyproject.toml")];
    const deps = dependencyStep(this.install, PIP_DEPS, locks, path, "pip install", this.env);
    return new PythonProject(deps, path, this.env);
  }
}

const UV_PACKAGES = ["ca-certificates", "curl", "git"];

function uvEnv(python: string): Record<string, string> {
  return {
    UV_PYTHON: python,
    UV_PYTHON_INSTALL_DIR: "/opt/uv/python",
    UV_PROJECT_ENVIRONMENT: "/opt/venv",
    UV_LINK_MODE: "copy",
    PATH: `/opt/venv/bin:${SYSTEM_PATH}`,
  };
}

export class UvToolchain extends Toolchain {
  project(path: string = "."): UvProject {
    path = projectPath(path);
    const deps = dependencyStep(
      this.install,
      "uv sync --frozen --all-extras",
      [joined(path, "uv.lock")],
      path,
      "uv sync",
      this.env,
    );
    return new UvProject(deps, path, this.env);
  }
}

/** Options of `py.uv.project`. */
export interface UvProjectOptions extends PresetOptions {
  /** The Python uv installs: `"3.12"` (the default)... */
  python?: string;
}

/** `py.uv`: Python managed by uv; `py.uv.project(".", {python: "3.12"})`. */
export class Uv {
  readonly DEFAULT_PYTHON = "3.12";

  toolchain(python: string = this.DEFAULT_PYTHON, opts?: PresetOptions): UvToolchain {
    const o = presetOptions(opts, [], "py.uv.toolchain");
    python = checkVersion(python, "Python");
    const env = uvEnv(python);
    const start = baseStep(o.base, [...UV_PACKAGES, ...o.packages], o.image);
    // uv's installer picks the build for the machine's architecture.
    const cmd =
      "curl -LsSf https://astral.sh/uv/install.sh | env UV_INSTALL_DIR=/usr/local/bin UV_NO_MODIFY_PATH=1 sh" +
      ` && uv python install ${python}`;
    return new UvToolchain(installStep(start, cmd, `uv python ${python}`, env), env);
  }

  project(path: string = ".", opts?: UvProjectOptions): UvProject {
    const o = presetOptions(opts, ["python"], "py.uv.project");
    const python = o.python === undefined ? this.DEFAULT_PYTHON : (o.python as string);
    return this.toolchain(python, { image: o.image, base: o.base, packages: o.packages }).project(path);
  }
}

/** Options of `python.toolchain`. */
export interface PipToolchainOptions extends PresetOptions {
  /** Tools pip installs into the environment: `["pytest", "ruff", "mypy"]` by default. */
  tools?: readonly string[];
}

/**
 * `python` (also `py`): the image's `python3` in a virtual environment with
 * pip and the test, lint and type tools; `py.uv` for uv.
 */
export class Python {
  readonly uv = new Uv();

  toolchain(opts?: PipToolchainOptions): PipToolchain {
    const o = presetOptions(opts, ["tools"], "python.toolchain");
    const start = baseStep(o.base, [...PIP_PACKAGES, ...o.packages], o.image);
    const tools = o.tools === undefined ? ["pytest", "ruff", "mypy"] : o.tools;
    if (!Array.isArray(tools) || !tools.every((t) => typeof t === "string")) {
      throw new HarmontError(`tools must be a list of package names, not ${show(tools)}`);
    }
    const toolList = [...new Set(tools as string[])].sort().join(" ");
    const cmd = `python3 -m venv /opt/venv && /opt/venv/bin/pip install --upgrade pip ${toolList}`;
    return new PipToolchain(installStep(start, cmd, "python venv", PIP_ENV), PIP_ENV);
  }

  project(path: string = ".", opts?: PresetOptions): PythonProject {
    const o = presetOptions(opts, [], "python.project");
    return this.toolchain({ image: o.image, base: o.base, packages: o.packages }).project(path);
  }
}

export const python = new Python();

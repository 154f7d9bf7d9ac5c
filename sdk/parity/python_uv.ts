import { pipeline } from "@harmont/hm";
import { py, python } from "@harmont/hm/toolchains";

const app = python({ path: "app", uvVersion: "0.4.18" });
const prepared = app.setup("uv run python gen.py", { label: "codegen" });
const lib = py.uv({ path: "lib", image: "python:3.12-slim" });
const latest = py.uv();

export default [
  {
    slug: "python-uv",
    pipeline: pipeline([
      app.test(),
      app.lint(),
      app.fmt(),
      app.typecheck({ paths: ["src", "tests"] }),
      prepared.typecheck({ paths: "src", label: "types" }),
    ]),
  },
  {
    slug: "py-uv",
    pipeline: pipeline([
      lib.test({ env: { PYTHONHASHSEED: "0" } }),
      lib.lint(),
      lib.fmt(),
      lib.typecheck(),
      lib.run("flask db upgrade"),
      lib.build(),
      lib.lockCheck(),
      lib.publish({ key: "publish-lib" }),
      latest.test({ label: "latest" }),
    ]),
  },
];

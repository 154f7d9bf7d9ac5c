import { py, python } from "@harmont/hm";

export default { slug: "python-pip", pipeline: python.project() };

export const pipelines = {
  slug: "python-tools",
  pipeline: () => {
    const toolchain = python.toolchain({ image: "python:3.12-slim", tools: ["ruff", "pytest", "ruff", "hypothesis"] });
    const api = toolchain.project("services/api");
    return [api.test(), api.lint(), api.fmt(), api.typecheck(), py.project("cli", { packages: ["libpq-dev"] })];
  },
};

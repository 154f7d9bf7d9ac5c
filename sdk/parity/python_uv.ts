import { pipeline, py } from "@harmont/hm";

export const pipelines = [
  { slug: "python-uv", pipeline: pipeline(py.uv.project()) },
  {
    slug: "python-uv-custom",
    pipeline: () => {
      const tool = py.uv.toolchain("3.13", { packages: ["build-essential"] });
      const project = tool.project("backend").setup("uv run python manage.py collectstatic --noinput", { label: "static" });
      return [project.test(), project.typecheck(), py.uv.project("docs", { python: "3.11" }).lint()];
    },
  },
];

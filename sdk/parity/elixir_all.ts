import { elixir } from "@harmont/hm";

export const pipelines = [
  {
    slug: "elixir-all",
    pipeline: () => {
      const project = elixir.project();
      return [project.compile(), project.test(), project.format(), project.credo(), project.dialyzer()];
    },
  },
  {
    slug: "elixir-umbrella",
    pipeline: () => {
      const toolchain = elixir.toolchain("1.18.1", { image: "debian:12" });
      return [toolchain.project("apps/web"), toolchain.project("apps/core").credo()];
    },
  },
];

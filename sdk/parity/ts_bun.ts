import { ts } from "@harmont/hm";

export const pipelines = [
  { slug: "ts-bun", pipeline: ts.project(".", { runtime: "bun" }) },
  {
    slug: "ts-bun-pinned",
    pipeline: () => {
      const toolchain = ts.toolchain("bun", "1.1.38");
      const app = toolchain.project("apps/site");
      return [app.run("typecheck"), app.run("test"), toolchain.project("packages/ui")];
    },
  },
];

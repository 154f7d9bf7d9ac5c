import { aptBase, elixir, go, rust, scratch } from "@harmont/hm";

export const pipelines = [
  {
    slug: "apt-base-shared",
    pipeline: () => {
      const base = aptBase(["build-essential", "ca-certificates", "curl", "git"]);
      return [
        go.project(".", { base }),
        rust.project("tools", { base }),
        base.sh("make", { key: "make" }),
        aptBase("git curl git build-essential ca-certificates").sh("make again"),
      ];
    },
  },
  {
    slug: "apt-base-preset-sharing",
    pipeline: () => [
      rust.project("a"),
      rust.project("b"),
      go.project(".", { packages: ["protobuf-compiler"] }),
      aptBase([], { image: "alpine:3" }).sh("true"),
      aptBase(["curl"], { image: "debian:12" }),
      elixir.project(".", { base: scratch({ image: "elixir:1.17" }) }),
    ],
  },
];

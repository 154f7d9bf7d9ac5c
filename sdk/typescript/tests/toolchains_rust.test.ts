/** Rust: rust.toolchain(), rust.project() and cargo's flags. */

import { onChange, pipeline, sh } from "@harmont/hm";
import { rust, RustProject, RustToolchain } from "@harmont/hm/toolchains";
import { cargoFlags, shQuote } from "@harmont/hm/src/toolchains/cargo.ts";
import { assert, assertEquals, assertSame, assertThrows } from "./assert.ts";
import { cmds, keys, parents } from "./helpers.ts";

const ENV = ". $HOME/.cargo/env && cd . && ";
/** A command without the cargo env and directory prefix. */
const tail = (cmd: string | null): string => (cmd ?? "").split(" && cd . && ").slice(1).join(" && cd . && ");

export const tests: Record<string, () => void> = {
  "shQuote quotes as Python's shlex.quote"() {
    assertEquals(
      ["harmont-core", "a; rm -rf /", "a'b", "", "x=1,y:2/3"].map(shQuote),
      ["harmont-core", "'a; rm -rf /'", "'a'\"'\"'b'", "''", "x=1,y:2/3"],
    );
  },

  "cargo flags in their order"() {
    assertEquals(cargoFlags({}), " --locked");
    assertEquals(cargoFlags({ locked: false }), "");
    assertEquals(cargoFlags({ workspace: true, exclude: ["b"] }), " --workspace --exclude b --locked");
    assertEquals(cargoFlags({ workspace: true, packages: ["a", "b c"] }), " -p a -p 'b c' --locked");
    assertEquals(cargoFlags({ noDefaultFeatures: true, features: ["x", "y"] }), " --no-default-features --features x,y --locked");
    assertEquals(
      cargoFlags({
        packages: ["core"],
        allTargets: true,
        noDefaultFeatures: true,
        features: ["a", "b"],
        target: "x86_64-unknown-linux-gnu",
        profile: "ci",
        flags: ["--keep-going"],
      }),
      " -p core --all-targets --no-default-features --features a,b --target x86_64-unknown-linux-gnu --profile ci --locked --keep-going",
    );
    assertEquals(cargoFlags({ release: true, allFeatures: true }), " --all-features --release --locked");
    assertEquals(cargoFlags({ locked: false, flags: ["--features=a b"] }), " --features=a b");
  },

  "cargo flags that conflict"() {
    assertThrows(() => cargoFlags({ allFeatures: true, features: ["x"] }), "rust: --all-features conflicts with features/noDefaultFeatures");
    assertThrows(() => cargoFlags({ release: true, profile: "ci" }), "rust: release conflicts with profile");
    assertThrows(() => cargoFlags({ packages: ["a"], exclude: ["b"] }), "rust: exclude cannot combine with packages");
    assertThrows(() => cargoFlags({ exclude: ["b"] }), "rust: exclude requires workspace");
  },

  "toolchain: rustup on an apt base, cargo actions on it"() {
    const toolchain = rust.toolchain();
    assert(toolchain instanceof RustToolchain);
    const install = toolchain.install();
    assertEquals([install._label, install._parent?._label, install._parent?._parent?._cmd], [":rust: rustup", ":rust: apt-base", null]);
    assertEquals(
      install._cmd,
      "curl --proto '=https' --tlsv1.2 -sSf https://sh.rustup.rs | sh -s -- -y --default-toolchain stable --profile minimal " +
        "--component clippy,rustfmt && . $HOME/.cargo/env && rustc --version && cargo --version",
    );
    const actions = [toolchain.build(), toolchain.test(), toolchain.doctest(), toolchain.clippy(), toolchain.fmt(), toolchain.doc(), toolchain.warmup()];
    assertEquals(
      actions.map((s) => [s._label, s._cmd]),
      [
        [":rust: build", `${ENV}cargo build --locked`],
        [":rust: test", `${ENV}cargo test --locked`],
        [":rust: doctest", `${ENV}cargo test --locked --doc`],
        [":rust: clippy", `${ENV}cargo clippy --all-targets --locked -- -D warnings`],
        [":rust: fmt", `${ENV}cargo fmt --all --check`],
        [":rust: doc", `${ENV}cargo doc --no-deps --locked`],
        [":rust: warmup", `${ENV}cargo build --workspace --tests --locked`],
      ],
    );
    assert(actions.every((s) => s._parent === install));
    assertEquals(toolchain.doc()._env, { RUSTDOCFLAGS: "-D warnings" });
  },

  "toolchain: version, components, path, image, base"() {
    const toolchain = rust.toolchain({ path: "crates/core", version: "nightly", components: ["miri"] });
    assert(toolchain.install()._cmd?.includes("--default-toolchain nightly --profile minimal --component miri") === true);
    assertEquals(toolchain.build()._cmd, ". $HOME/.cargo/env && cd crates/core && cargo build --locked");
    assert(rust.toolchain({ components: [] }).install()._cmd?.includes("--profile minimal && ") === true);
    assertEquals(rust.toolchain({ image: "debian:12" }).install()._parent?._parent?._image, "debian:12");
    const base = sh("custom base");
    assertSame(rust.toolchain({ base }).install()._parent, base);
    assertThrows(() => rust.toolchain({ version: "not valid!" }), 'rust.toolchain: invalid version "not valid!"');
  },

  "action options: cargo's, the action's own, and a step's"() {
    const toolchain = rust.toolchain();
    assertEquals(tail(toolchain.build({ release: true })._cmd), "cargo build --release --locked");
    assertEquals(tail(toolchain.test({ nextest: true, workspace: true })._cmd), "cargo nextest run --workspace --locked");
    assertEquals(tail(toolchain.clippy({ denyWarnings: false, extraLints: ["-W clippy::pedantic"] })._cmd), "cargo clippy --all-targets --locked -- -W clippy::pedantic");
    assertEquals(tail(toolchain.clippy({ allTargets: false, denyWarnings: false })._cmd), "cargo clippy --locked");
    assertEquals(tail(toolchain.fmt({ all: false, check: false, flags: ["--", "--emit=files"] })._cmd), "cargo fmt -- --emit=files");
    assertEquals(tail(toolchain.doc({ noDeps: false, documentPrivateItems: true })._cmd), "cargo doc --document-private-items --locked");
    const doc = toolchain.doc({ denyWarnings: false, env: { A: "1" } });
    assertEquals(doc._env, { A: "1" });
    assertEquals(toolchain.doc({ env: { RUSTDOCFLAGS: "mine" } })._env, { RUSTDOCFLAGS: "mine" });
    const step = toolchain.test({ label: "unit", packages: ["core"], env: { RUST_LOG: "debug" } });
    assertEquals([step._label, tail(step._cmd), step._env], ["unit", "cargo test -p core --locked", { RUST_LOG: "debug" }]);
    assertEquals(toolchain.warmup({ label: ":rust: pre-build" })._label, ":rust: pre-build");
  },

  "a target is added with rustup unless told not to"() {
    const toolchain = rust.toolchain();
    assertEquals(
      tail(toolchain.build({ target: "wasm32-unknown-unknown" })._cmd),
      "rustup target add wasm32-unknown-unknown && cargo build --target wasm32-unknown-unknown --locked",
    );
    assertEquals(tail(toolchain.build({ target: "wasm32-unknown-unknown", addTarget: false })._cmd), "cargo build --target wasm32-unknown-unknown --locked");
    assert(toolchain.test({ target: "t", nextest: true })._cmd?.includes("rustup target add t && cargo nextest run") === true);
    assert(toolchain.clippy({ target: "t" })._cmd?.includes("rustup target add t && cargo clippy") === true);
  },

  "feature powerset: cargo-hack installed on its own step"() {
    const step = rust.toolchain().featurePowerset();
    assertEquals(tail(step._cmd), "cargo hack check --feature-powerset --depth 2 --no-dev-deps");
    assertEquals([step._label, step._parent?._label, step._parent?._cmd], [
      ":rust: feature-powerset",
      ":rust: install cargo-hack",
      ". $HOME/.cargo/env && cargo install cargo-hack --locked",
    ]);
    const custom = rust.toolchain().featurePowerset({
      subcommand: "test",
      eachFeature: true,
      noDevDeps: false,
      skip: ["a b", "c"],
      includeFeatures: ["d"],
      keepGoing: true,
      flags: ["--workspace"],
      label: "hack",
    });
    assertEquals(tail(custom._cmd), "cargo hack test --each-feature --skip 'a b',c --include-features d --keep-going --workspace");
    assertEquals(custom._label, "hack");
  },

  "project: a cached warm-up the checks fork from; fmt needs none"() {
    const project = rust.project({ path: "cli" });
    assert(project instanceof RustProject);
    assertEquals(project.warmup._cmd, ". $HOME/.cargo/env && cd cli && cargo build --workspace --tests --locked");
    assertEquals(project.warmup._cache, { kind: "on_change", paths: ["cli/Cargo.lock", "cli/**/Cargo.toml", "cli/**/*.rs"] });
    assertEquals(rust.project().warmup._cache, { kind: "on_change", paths: ["Cargo.lock", "**/Cargo.toml", "**/*.rs"] });
    const tests = project.test();
    assertEquals(tests._cmd, ". $HOME/.cargo/env && cd cli && cargo test --workspace --locked");
    assertSame(tests._parent, project.warmup);
    assertSame(project.clippy()._parent, project.warmup);
    assertSame(project.fmt()._parent, project.toolchain.install());
    assertEquals(
      [project.build(), project.doctest(), project.clippy(), project.doc()].map((s) => s._cmd?.split("cd cli && ")[1]),
      [
        "cargo build --workspace --locked",
        "cargo test --workspace --locked --doc",
        "cargo clippy --workspace --all-targets --locked -- -D warnings",
        "cargo doc --no-deps --workspace --locked",
      ],
    );
    assertEquals(rust.project({ cache: onChange("Cargo.toml") }).warmup._cache, { kind: "on_change", paths: ["Cargo.toml"] });
  },

  "project: options reach the commands"() {
    const project = rust.project();
    assertEquals(tail(project.test({ features: ["a", "b"], nextest: true })._cmd), "cargo nextest run --workspace --features a,b --locked");
    assertEquals(tail(project.clippy({ allFeatures: true })._cmd), "cargo clippy --workspace --all-targets --all-features --locked -- -D warnings");
    assertEquals(tail(project.clippy({ flags: ["--fix"] })._cmd), "cargo clippy --workspace --all-targets --locked --fix -- -D warnings");
    assertEquals(tail(project.clippy({ packages: ["core"] })._cmd), "cargo clippy -p core --all-targets --locked -- -D warnings");
    assertEquals(tail(project.test({ workspace: undefined })._cmd), "cargo test --locked");
    assertEquals(tail(project.fmt({ flags: ["--config-path", "x"] })._cmd), "cargo fmt --all --check --config-path x");
    assertEquals(
      tail(project.build({ packages: ["core"], target: "wasm32-unknown-unknown" })._cmd),
      "rustup target add wasm32-unknown-unknown && cargo build -p core --target wasm32-unknown-unknown --locked",
    );
    assertEquals(tail(project.doc({ documentPrivateItems: true })._cmd), "cargo doc --no-deps --document-private-items --workspace --locked");
    assert(rust.toolchain().build({ packages: ["a; touch /tmp/x"] })._cmd?.endsWith("-p 'a; touch /tmp/x' --locked") === true);
  },

  "project: ci()"() {
    const project = rust.project();
    assertEquals(project.ci().map((s) => s._label), [":rust: test", ":rust: clippy", ":rust: fmt"]);
    assertEquals(project.ci({ nextest: true, doc: true }).map((s) => s._label), [
      ":rust: test",
      ":rust: doctest",
      ":rust: clippy",
      ":rust: fmt",
      ":rust: doc",
    ]);
    const graph = pipeline(project.ci()).graph;
    assertEquals(keys(graph), ["apt-base", "rustup", "warmup", "test", "clippy", "fmt"]);
    assertEquals(parents(graph), { rustup: "apt-base", warmup: "rustup", test: "warmup", clippy: "warmup", fmt: "rustup" });
  },

  "project: with a base, no apt step; version forwarded"() {
    const project = rust.project({ path: "cli", base: sh("custom base"), version: "1.81.0" });
    const all = cmds(pipeline([project.test(), project.fmt()]).graph);
    assertEquals(all.filter((c) => c.includes("apt-get")).length, 0);
    assert(all[1]?.includes("--default-toolchain 1.81.0") === true);
  },

  "rust checks"() {
    assertThrows(() => rust.toolchain({ cache: onChange("x") } as never), "rust.toolchain: unknown option `cache`");
    assertThrows(() => rust.project().test({ nexttest: true } as never), "rust.test: unknown option `nexttest`");
    assertThrows(() => rust.project().fmt({ workspace: true } as never), "rust.fmt: unknown option `workspace`");
    assertThrows(() => rust.project().build({ packages: "core" } as never), "rust.build: packages must be an array of strings");
    assertThrows(() => rust.project().ci({ fast: true } as never), "rust.ci: unknown option `fast`");
    assertThrows(() => rust.project().test({ nextest: "yes" } as never), "rust.test: nextest must be true or false");
  },
};

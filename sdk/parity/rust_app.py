import harmont as hm


@hm.pipeline("rust-app", name="Rust app")
def rust_app():
    project = hm.rust.project(path="crates/app", version="1.83.0", components=("clippy", "rustfmt", "miri"))
    return [
        project.build(release=True),
        project.test(nextest=True, features=("a", "b")),
        project.doctest(),
        project.clippy(all_features=True, extra_lints=("-W clippy::pedantic",)),
        project.fmt(flags=("--config-path", "rustfmt.toml")),
        project.doc(document_private_items=True),
        project.feature_powerset(skip=("a b", "c"), depth=3),
        project.ci(nextest=True, doc=True),
    ]


@hm.pipeline("rust-tools")
def rust_tools():
    toolchain = hm.rust.toolchain(path="tools/", version="nightly", image="debian:12")
    prepared = toolchain.setup("cargo generate-lockfile", env={"CARGO_NET_OFFLINE": "false"}, cache=hm.forever())
    return [
        toolchain.build(packages=("core", "cli x"), target="wasm32-unknown-unknown"),
        toolchain.build(target="aarch64-unknown-linux-gnu", add_target=False, label="cross"),
        toolchain.test(workspace=True, exclude=("slow",), locked=False),
        toolchain.clippy(all_targets=False, deny_warnings=False),
        toolchain.doc(no_deps=False, deny_warnings=False, env={"RUSTDOCFLAGS": "--cfg docsrs"}),
        toolchain.warmup(label=":rust: pre-build"),
        prepared.build(profile="ci", flags=("--timings",)),
        prepared.feature_powerset(each_feature=True, no_dev_deps=False, include_features=("x",), keep_going=True),
    ]

import harmont as hm


@hm.pipeline("rust-app", name="Rust app")
def rust_app():
    project = hm.rust.toolchain("1.83.0").project("crates/app")
    project = project.setup("cargo install cargo-nextest --locked", label="nextest", cache=hm.forever())
    return [project, project.doc()]


@hm.pipeline("rust-actions")
def rust_actions():
    project = hm.rust.project(
        "tools/",
        version="nightly",
        image="debian:12",
        packages=["protobuf-compiler", "curl"],
    )
    prepared = project.setup("cargo generate-lockfile", env={"CARGO_NET_OFFLINE": "false"})
    return [
        project.build(),
        project.test(),
        project.doctest(),
        project.clippy(),
        project.fmt(),
        project.doc(),
        hm.wait(),
        prepared.ci(),
        prepared.action("cargo run --bin xtask", env={"RUST_LOG": "debug"}),
        prepared.action("cargo bench", label=":zap: bench"),
    ]

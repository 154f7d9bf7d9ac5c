"""CI for this Rust project: `hm run` runs it on your machine."""

import harmont as hm


@hm.pipeline("ci", triggers=[hm.push(branch="main"), hm.pull_request()])
def ci() -> tuple[hm.Step, ...]:
    # rustup's stable toolchain on ubuntu:24.04; the warm-up build is cached on Cargo.lock, Cargo.toml and the sources.
    project = hm.rust.project(path=".")
    return project.ci()

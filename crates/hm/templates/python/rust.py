"""CI for this Rust project: `hm run` runs it on your machine."""

import harmont as hm


@hm.pipeline("ci", triggers=[hm.push(branch="main"), hm.pull_request()])
def ci():
    # rustup's stable toolchain on ubuntu:24.04; `cargo fetch` is cached on Cargo.lock.
    project = hm.rust.project()
    return [project.fmt(), project.clippy(), project.build(), project.test()]

from typing import Annotated

import harmont as hm


@hm.target
def system() -> hm.Step:
    return hm.sh("apt-get update && apt-get install -y make", label="system", cache=hm.ttl("1d"))


@hm.target(name="tools")
def make_tools(system: hm.Target[hm.Step]) -> hm.Step:
    return system.sh("make tools", label="tools", cache=hm.forever())


@hm.target
def release_version() -> str:
    return "1.2.3"


@hm.target
def rust_base(root: Annotated[hm.Step, hm.BaseImage("rust:1.83")]) -> hm.Step:
    return root.sh("rustup component add clippy", cache=hm.forever())


@hm.pipeline("targets-build")
def targets_build(tools: hm.Target[hm.Step], system: hm.Target[hm.Step], release_version: hm.Target[str]):
    return [tools.sh(f"make release VERSION={release_version}"), system.sh("make lint")]


@hm.pipeline("targets-test")
def targets_test(
    node: Annotated[hm.Step, hm.BaseImage("node:22")],
    tools: hm.Target[hm.Step],
    rust_base: hm.Target[hm.Step],
):
    return [tools.sh("make test"), node.sh("npm ci"), rust_base.sh("cargo clippy"), rust_base.sh("cargo clippy")]

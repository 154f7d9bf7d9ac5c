"""CI for this project: `hm run` runs it on your machine."""

import harmont as hm


@hm.pipeline("ci")
def ci() -> hm.Step:
    # "host" runs the steps on this machine's own root filesystem (read-only,
    # under a writable layer). For a clean system, import an image with
    # `hm image import ubuntu:24.04 ROOTFS` and write image="ubuntu:24.04".
    build = hm.sh("echo build && ls", label="build", image="host")
    return build.sh("echo test", label="test")

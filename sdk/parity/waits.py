import harmont as hm


@hm.pipeline("waits")
def waits():
    build = hm.sh("make", label="build")
    return [
        hm.wait(),
        build,
        hm.sh("make lint", label="lint"),
        hm.wait(),
        [build.sh("make test", label="test"), [build.sh("make bench", label="bench")]],
        hm.wait(continue_on_failure=True),
        hm.sh("make report", label="report"),
        hm.wait(),
        hm.wait(),
        hm.sh("make notify", label="notify"),
        hm.wait(),
    ]

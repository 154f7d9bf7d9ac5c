import harmont as hm


@hm.pipeline("timeouts", timeout="1h30m")
def timeouts():
    root = hm.sh("setup", label="setup")
    return [
        hm.timeout("30s", root.sh("quick")),
        hm.timeout("5m", root.sh("medium")),
        hm.timeout("2d", root.sh("long")),
        hm.timeout(90, root.sh("ninety")),
        hm.timeout("120", root.sh("digits")),
        hm.timeout(" 1H 5M ", root.fork().sh("spaced")),
        hm.timeout(2.5, root.sh("half-even")),
        hm.timeout(0.4, root.sh("tiny")),
        hm.timeout("10m", root.fork()),
    ]


@hm.pipeline("timeout-seconds", timeout=600)
def timeout_seconds():
    return hm.timeout("1m", hm.sh("make", key="make"))

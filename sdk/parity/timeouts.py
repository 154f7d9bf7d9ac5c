from datetime import timedelta

import harmont as hm


@hm.pipeline("timeouts", timeout="1h30m")
def timeouts():
    return [
        hm.timeout("30s", hm.sh("a", label="a")),
        hm.timeout("5m", hm.sh("b", label="b")),
        hm.timeout("1h2m3s", hm.sh("c", label="c")),
        hm.timeout(45, hm.sh("d", label="d")),
        hm.timeout(timedelta(minutes=2), hm.sh("e", label="e")),
        hm.timeout("10s", hm.timeout("1h", hm.sh("f", label="f"))),
    ]


@hm.pipeline("timeout-seconds", timeout=600)
def timeout_seconds():
    return [hm.sh("make")]

import harmont as hm


@hm.pipeline("waits")
def waits():
    base = hm.sh("make base", label="base")
    a = base.sh("make a")
    b = hm.sh("make b")
    c = a.sh("make c")
    d = hm.sh("make d0").sh("make d")
    return [hm.wait(), a, b, hm.wait(), c, d, hm.wait(), hm.wait(), hm.sh("make e"), hm.wait()]


@hm.pipeline("waits-lenient")
def waits_lenient():
    notify = hm.sh("notify-setup").sh("notify", label=":bell: notify")
    return [
        [hm.sh("test", label="test"), [hm.sh("lint", label="lint")]],
        hm.wait(continue_on_failure=True),
        (notify, hm.sh("collect logs")),
        hm.wait(),
        hm.sh("cleanup", label="cleanup"),
        hm.wait(continue_on_failure=True),
        hm.wait(),
        hm.sh("report"),
    ]

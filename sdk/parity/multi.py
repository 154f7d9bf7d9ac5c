import harmont as hm


@hm.target
def multi_toolchain() -> hm.Step:
    return hm.apt_base(["make", "gcc"]).sh("make bootstrap", label="bootstrap", cache=hm.forever())


@hm.pipeline("multi-ci", triggers=[hm.push(branch="main")], env={"CI": "1"}, timeout="45m")
def multi_ci(multi_toolchain: hm.Target[hm.Step]):
    checks = multi_toolchain.fork()
    return [
        checks.sh("make lint", label=":mag: Lint"),
        hm.timeout("10m", checks.sh("make test", label="Test")),
        hm.wait(continue_on_failure=True),
        hm.sh("notify", label="Test"),
    ]


@hm.pipeline("multi-presets")
def multi_presets():
    return [hm.go.project(), hm.python.project("py"), hm.wait(), hm.sh("echo done")]


@hm.pipeline("multi-nightly", name="Nightly", triggers=[hm.push(tag="v*")], allow_manual=False)
def multi_nightly(multi_toolchain: hm.Target[hm.Step]):
    return [multi_toolchain.sh("make all"), multi_toolchain.sh("make all"), hm.wait(), hm.wait(), multi_toolchain]


@hm.pipeline("multi-empty")
def multi_empty():
    return None

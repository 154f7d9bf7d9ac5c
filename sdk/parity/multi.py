import harmont as hm


@hm.target()
def shared():
    return hm.sh("make shared", label="shared", cache=hm.forever())


@hm.pipeline("multi-build")
def multi_build():
    return [shared().sh("make build", label="build")]


@hm.pipeline("multi-test", name="Tests")
def multi_test():
    return [shared().sh("make test", label="test"), hm.go(path="svc").test()]


@hm.pipeline()
def multi():
    return hm.sh("true")

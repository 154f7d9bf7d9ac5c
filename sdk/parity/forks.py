import harmont as hm


@hm.pipeline("forks")
def forks():
    base = hm.sh("make deps", label="deps")
    branch = base.fork("checks")
    inner = branch.fork()
    return [
        branch.sh("make lint", label="lint"),
        branch.sh("make test"),
        inner.sh("make test"),
        inner,
        base.fork(label="unused"),
        hm.scratch(),
    ]

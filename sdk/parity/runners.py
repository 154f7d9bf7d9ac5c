import harmont as hm


@hm.pipeline("runners")
def runners():
    vm = hm.scratch().sh("uname -a", label="vm root", runner="vm", runner_args={"cpus": 2, "memory": "4G"})
    root = hm.sh("make deps", cwd="app", image="debian:12", key="deps")
    return [
        vm,
        vm.sh("make", cwd="src", runner="vm", runner_args=["--fast", 3, True, None]),
        root.sh("make test", cwd="app/tests", label="tests", image="debian:12-slim"),
        root.sh("make docs", runner="vm", runner_args={}),
        hm.scratch("alpine:3").sh("echo hi", cwd="/tmp"),
    ]

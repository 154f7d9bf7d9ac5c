import harmont as hm


@hm.pipeline("env-layering", env={"A": "pipe", "B": "pipe", "DEBIAN_FRONTEND": "readline", "JOBS": 8})
def env_layering():
    root = hm.sh("a", key="a", env={"B": "step", "C": "step"})
    return [
        root,
        root.sh("child", key="child", env={"TERM": "xterm", "Z": "last", "A": "child"}),
        hm.sh("b", key="b", env={"TERM": "xterm"}),
        hm.sh("c", key="c"),
        hm.sh("numbers", key="numbers", env={"N": 4, "F": 1.5, "EMPTY": ""}),
        hm.sh("empty env", key="empty", env={}),
    ]


@hm.pipeline("env-presets", env={"CI": "true", "PATH": "/custom/bin"})
def env_presets():
    project = hm.go.project()
    return [project.action("go run ./cmd/gen", env={"GOFLAGS": "-tags=gen", "PATH": "/gen/bin"}), project.test()]

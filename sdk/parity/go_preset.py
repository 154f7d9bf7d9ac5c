import harmont as hm


@hm.pipeline("go-preset", env={"CGO_ENABLED": "0"})
def go_preset():
    api = hm.go(path="services/api")
    pinned = hm.go(path=".", version="1.22", image="golang:1.22-bookworm")
    generated = api.setup("go generate ./...", label="generate", cache=hm.forever())
    return [
        api.build(),
        api.test(env={"GOFLAGS": "-race"}),
        api.vet(),
        api.fmt(label="gofmt"),
        pinned.build(key="pinned-build"),
        generated.test(),
    ]


@hm.pipeline("go-shared-base")
def go_shared_base():
    base = hm.sh("apt-get update && apt-get install -y git make", label="base", image="debian:12", cache=hm.forever())
    one = hm.go(path="one", base=base)
    two = hm.go(path="two", base=base, version="1.21.13")
    return [one.test(), two.test()]

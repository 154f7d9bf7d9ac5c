import harmont as hm


@hm.pipeline("go-default")
def go_default():
    return hm.go.project()


@hm.pipeline("go-service")
def go_service():
    toolchain = hm.go.toolchain("1.22.10", packages=["protobuf-compiler"])
    svc = toolchain.project("svc").setup("go generate ./...", label="generate", env={"GOFLAGS": "-mod=mod"})
    lib = toolchain.project("lib")
    return [svc.fmt(), svc.vet(), svc.build(), svc.test(), lib]

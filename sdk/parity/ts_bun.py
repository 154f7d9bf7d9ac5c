import harmont as hm


@hm.pipeline("ts-bun")
def ts_bun():
    return hm.ts.project(runtime="bun")


@hm.pipeline("ts-bun-pinned")
def ts_bun_pinned():
    toolchain = hm.ts.toolchain("bun", "1.1.38")
    app = toolchain.project("apps/site")
    return [app.run("typecheck"), app.run("test"), toolchain.project("packages/ui")]

import harmont as hm


@hm.pipeline("ts-bun")
def ts_bun():
    bun = hm.ts.project(runtime="bun")
    pinned = hm.ts.project(path="pinned", runtime="bun", version="1.1.38")
    on_node = hm.js.project(path="hybrid", runtime="node", pm="bun")
    return [bun.run("build"), bun.run("test"), pinned.run("test"), on_node.run("test")]

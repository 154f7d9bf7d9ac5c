import harmont as hm


@hm.pipeline("js-node-pnpm")
def js_node_pnpm():
    pnpm = hm.js.project(pm="pnpm")
    classic = hm.js.project(path="classic", pm="yarn-classic")
    berry = hm.js.project(path="berry", runtime="node", pm="yarn-berry", version="22")
    generated = pnpm.setup("pnpm run codegen", label="codegen")
    return [pnpm.run("lint"), pnpm.run("test"), classic.run("test"), berry.run("build"), generated.run("build")]

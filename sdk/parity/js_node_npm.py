import harmont as hm


@hm.pipeline("js-node-npm", env={"CI": "true"})
def js_node_npm():
    web = hm.js.project(path="web", runtime="node", pm="npm")
    legacy = hm.js.project(path="legacy", runtime="node", version="20.x", image="debian:12")
    return [web.install(), web.run("build"), web.run("test", label="unit"), legacy.run("lint")]


@hm.pipeline("js-detected")
def js_detected():
    # Nothing to read in the project: node and npm.
    return [hm.js.project().run("test")]

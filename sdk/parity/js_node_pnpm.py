import harmont as hm


@hm.pipeline("js-node-pnpm")
def js_node_pnpm():
    project = hm.js.project(package_manager="pnpm")
    return [project.install(), project.run("lint"), project.run("test")]

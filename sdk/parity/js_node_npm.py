import harmont as hm


@hm.pipeline("js-node-npm")
def js_node_npm():
    return hm.js.project()


@hm.pipeline("js-node-yarn")
def js_node_yarn():
    project = hm.js.project("web", version="20", package_manager="yarn")
    return [project.install(), project.run("build"), project.run("test")]

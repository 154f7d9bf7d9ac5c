import harmont as hm


@hm.pipeline("js-deno")
def js_deno():
    return hm.js.project(runtime="deno")


@hm.pipeline("js-deno-pinned")
def js_deno_pinned():
    project = hm.js.project(runtime="deno", version="2.1.4", image="debian:12")
    return [project.run("lint"), project.run("check")]

import harmont as hm


@hm.pipeline("js-deno")
def js_deno():
    latest = hm.js.project(runtime="deno")
    pinned = hm.js.project(path="api", runtime="deno", version="2.1.4", image="debian:12")
    return [latest.run("test"), latest.run("lint"), pinned.run("check")]

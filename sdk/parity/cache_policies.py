from datetime import timedelta

import harmont as hm


@hm.pipeline("cache-policies")
def cache_policies():
    base = hm.sh("apt-get update", label="apt", cache=hm.ttl(timedelta(hours=6)))
    tools = base.sh("make tools", label="tools", cache=hm.forever(env_keys=("TOOLS_VERSION", "ARCH")))
    deps = tools.sh("make deps", label="deps", cache=hm.on_change("Makefile", "deps/**/*.lock", "vendor/"))
    daily = deps.sh(
        "make index",
        label="index",
        cache=hm.compose(hm.ttl(timedelta(days=1)), hm.on_change("index.toml"), hm.forever()),
    )
    return [daily, hm.sh("make fresh", label="fresh", cache=hm.forever())]

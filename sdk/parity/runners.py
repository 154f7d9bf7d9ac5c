import harmont as hm


@hm.pipeline("runners")
def runners():
    root = hm.scratch().sh("make", label="root", runner="vm", runner_args={"cpus": 2, "tags": ["a", "b"]})
    in_dir = root.sh("make test", label="in dir", cwd="sub dir", image="ignored:1")
    return [
        in_dir.sh("make more", label="more", runner="vm"),
        hm.sh("make docs", label="docs", cwd="docs", image="alpine:3.20"),
        hm.scratch().sh("true", label="plain", key="plain-key"),
    ]

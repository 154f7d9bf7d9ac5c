import harmont as hm


@hm.pipeline("keys-labels")
def keys_labels():
    root = hm.sh("make deps", label=":package: Install Deps!")
    return [
        root.sh("make a", label="Build", key="build"),
        root.sh("make b", label="build"),
        root.sh("make c", label="lint"),
        root.sh("make d", label="LINT"),
        root.sh("make e", label="构建"),
        root.sh("make f", label=":rocket:"),
        root.sh("make g"),
        root.sh("make g"),
        root.sh("make h", label="a:b:c -- Δ step 2"),
        root.sh("make i", key="explicit"),
        hm.sh("make j", label="explicit"),
        hm.sh("make k", label=""),
    ]

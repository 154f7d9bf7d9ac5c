import harmont as hm


@hm.pipeline("cache-policies")
def cache_policies():
    return [
        hm.sh("plain", label="none"),
        hm.sh("forever", label="forever", cache=hm.forever()),
        hm.sh("forever env", label="forever env", cache=hm.forever(env_keys=["RUSTFLAGS", "CC"])),
        hm.sh("forever one", label="forever one", cache=hm.forever("CC")),
        hm.sh("ttl seconds", label="ttl seconds", cache=hm.ttl(90)),
        hm.sh("ttl text", label="ttl text", cache=hm.ttl("1d", env_keys=["TZ"])),
        hm.sh("ttl mixed", label="ttl mixed", cache=hm.ttl("1h30m")),
        hm.sh("on change", label="on change", cache=hm.on_change("Cargo.lock")),
        hm.sh(
            "on change globs",
            label="on change globs",
            cache=hm.on_change("Cargo.toml", "src/**/*.rs", ["crates/*/Cargo.toml", "**/*.proto"]),
        ),
        hm.sh(
            "compose",
            label="compose",
            cache=hm.compose(hm.on_change("go.sum"), hm.ttl(604800), hm.forever(["GOFLAGS"])),
        ),
        hm.sh("nested", label="nested", cache=hm.compose(hm.compose(hm.forever()), hm.on_change(["a", "b"]))),
    ]

import harmont as hm


@hm.pipeline("forks")
def forks():
    deps = hm.sh("npm ci", label="deps", cache=hm.on_change("package-lock.json"))
    checks = deps.fork(label="checks")
    lint = checks.sh("npm run lint", label="lint")
    unit = checks.fork().sh("npm test", label="unit")
    e2e = deps.sh("npm run e2e").sh("npm run report")
    return [lint, unit, e2e, deps.fork(), checks.sh("npm run typecheck")]


@hm.pipeline("fork-only")
def fork_only():
    return hm.sh("make deps", key="deps").fork()

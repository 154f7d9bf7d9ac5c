import harmont as hm


@hm.pipeline(
    "triggers-main",
    name="On main",
    triggers=[hm.push(branch="main"), hm.push(branch=["release/*", "hotfix/**"]), hm.pr()],
    allow_manual=False,
)
def triggers_main():
    return hm.sh("make", key="make")


@hm.pipeline("triggers-tags", triggers=[hm.push(tag="v*"), hm.push(tag=["nightly-*", "rc-*"])])
def triggers_tags():
    return hm.sh("make release", key="release")


@hm.pipeline(
    "triggers-pr",
    triggers=[
        hm.pull_request(branches="main"),
        hm.pull_request(branches=["main", "dev"], types=["opened", "labeled"]),
        hm.pr(types="closed"),
    ],
)
def triggers_pr():
    return hm.sh("make check", key="check")

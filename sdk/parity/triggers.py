import harmont as hm


@hm.pipeline("on-push", triggers=[hm.push(branch="main"), hm.push(tag=["v*", "release-*"])])
def on_push():
    return hm.sh("make")


@hm.pipeline(
    "on-pr",
    name="Pull requests",
    allow_manual=False,
    triggers=[hm.pull_request(), hm.pull_request(branches="main", types=["opened", "closed", "ready_for_review"])],
)
def on_pr():
    return [hm.sh("make")]


@hm.pipeline("on-branches", triggers=[hm.push(branch=["main", "release/*"]), hm.pr(branches=["a", "b"])])
def on_branches():
    return [hm.sh("make")]

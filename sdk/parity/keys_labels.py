import harmont as hm


@hm.pipeline("keys-labels")
def keys_labels():
    root = hm.sh("make", key="root", label="Root Step")
    return [
        hm.sh("a", key="given", label="Some Label"),
        hm.sh("b", label="Build :rocket: App!!"),
        hm.sh("c", label=":package: cargo   test --all"),
        hm.sh("d", label="  Unit/Integration Tests  "),
        hm.sh("e", label="v1.2 :white_check_mark:"),
        hm.sh("f", label=":rocket:"),
        hm.sh("g", label="Déploiement 🚀 prod"),
        hm.sh("h", label="Same"),
        hm.sh("i", label="same!"),
        hm.sh("j", key="taken"),
        hm.sh("k", label="Taken"),
        hm.sh("l", label=""),
        root.sh("make"),
        root.sh("make"),
        hm.sh("make"),
        hm.sh("make"),
        hm.sh("child", label="Labelled Parent").sh("grandchild"),
    ]


@hm.pipeline("keys-scratch")
def keys_scratch():
    base = hm.scratch("debian:12")
    return [base.sh("make"), base.sh("make"), base.sh("make", image="alpine:3", label="Alpine :mountain:")]

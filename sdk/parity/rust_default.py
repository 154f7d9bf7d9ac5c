import harmont as hm


@hm.pipeline("rust-default")
def rust_default():
    return hm.rust.project()

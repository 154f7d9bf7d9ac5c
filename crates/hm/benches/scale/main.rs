//! `hm` at scale (issue 15): source trees of many files, pipelines of
//! many steps, a registry of many entries. Each part prints its own table.
//!
//! `cargo bench -p hm --bench scale`; `HM_BENCH_RUNS` sets the runs per
//! figure.

#[path = "../common/mod.rs"]
mod common;
mod pipelines;
mod source;

fn main() {
    source::main();
    pipelines::main();
}

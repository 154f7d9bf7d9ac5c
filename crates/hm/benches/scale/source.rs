//! Source trees of 100 to 50,000 files (issue 15): filled in by its own change.

pub fn main() {}

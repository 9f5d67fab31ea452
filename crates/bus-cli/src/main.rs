//! The `bus` command (work in progress).

fn main() {}

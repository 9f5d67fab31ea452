//! The interoperability suite with eventail 2.3.6 lives in `suite/` (Rust
//! side) and `python/` (Python side). Run it with `cargo xtask interop`.

//! Shared test support. Each integration test crate that says `mod support;`
//! compiles this separately and uses only part of it, hence the allow.

#[allow(dead_code)]
pub mod fake_hub;
#[allow(dead_code)]
pub mod precis;
#[allow(dead_code)]
pub mod require;
#[allow(dead_code)]
pub mod tiny_marian;

//! precis: translate a French news article into English and summarise it, offline, on CPU.
//!
//! The crate is organised by pipeline stage. Arrows only go down:
//! `pipeline -> assemble -> engines -> {load, tokenize, infer}`; `load`, `tokenize` and `infer`
//! never import each other, so each stage can be tested and benchmarked alone.

pub mod assemble;
pub mod engines;
pub mod failure;
pub mod infer;
pub mod interrupt;
pub mod load;
pub mod pipeline;
pub mod tokenize;

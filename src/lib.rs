//! precis: translate a French news article into English and summarise it, offline, on CPU.
//!
//! The crate is organised by pipeline stage. Arrows only go down:
//! `batch -> pipeline -> {summarize, fidelity} -> engines -> {load, tokenize, infer}`; `load`,
//! `tokenize` and `infer` never import each other, so each stage can be tested and benchmarked
//! alone. `text`, `failure`, `interrupt` and `files` are leaves that any module may use.

pub mod batch;
pub mod engines;
pub mod errors;
pub mod failure;
pub mod fidelity;
pub mod files;
pub mod infer;
pub mod interrupt;
pub mod load;
pub mod pipeline;
pub mod summarize;
pub mod text;
pub mod tokenize;

//! The numeric kernels the models run on, apart from any model: they know block layouts and
//! vectors, never a model's types (nothing here imports `qwen2`).
//!
//! - `kquant/`: matrix products over GGUF Q4_K/Q6_K weights (blocks, scalar reference, AVX2,
//!   AVX-512, AVX-512 VNNI tiles);
//! - `int8/`: matrix products over int8 weights and activations quantised per row (scalar
//!   reference, AVX2), for an int8 Marian path;
//! - `attention.rs`: the decoding attention's query-key scores and weighted value sums;
//! - `math.rs`: `exp` and `argmax`;
//! - `testing.rs`: deterministic inputs for the tests and the benches.
//!
//! Every SIMD kernel dispatches on [`crate::infer::cpu::level`]; the threads they run on are
//! described in `team.rs`.

pub(crate) mod attention;
pub mod int8;
pub mod kquant;
pub mod math;
pub mod testing;

//! Speed of the chat engine on the demo article (ignored by default; run it alone, in release):
//!
//! ```text
//! PRECIS_TEST_GGUF_15=... PRECIS_BENCH_THREADS=2 \
//!     cargo test --release --test llm_bench -- --ignored --nocapture
//! ```
//!
//! Prints prompt and generation speed, the thread count candle uses, and the CPU time spent
//! per second of generation (2.0 means two busy cores).

mod llm_common;

use candle_core::Device;
use precis::engines::{self, ChatMessage, GenerateOptions, LlmEngine};
use std::num::NonZeroUsize;
use std::ops::ControlFlow;
use std::time::Instant;

/// CPU time (user + system) of this process so far, in seconds, from `/proc/self/stat`.
fn cpu_seconds() -> f64 {
    let stat = std::fs::read_to_string("/proc/self/stat").unwrap();
    // Fields after the parenthesised command name; utime and stime are the 12th and 13th.
    let fields: Vec<&str> = stat
        .rsplit(')')
        .next()
        .unwrap()
        .split_whitespace()
        .collect();
    let ticks: f64 = fields[11].parse::<f64>().unwrap() + fields[12].parse::<f64>().unwrap();
    // USER_HZ is 100 on Linux.
    ticks / 100.0
}

fn os_threads() -> usize {
    std::fs::read_dir("/proc/self/task").unwrap().count()
}

#[test]
#[ignore = "benchmark: needs the 1.5B model and a quiet machine"]
fn translate_demo_article() {
    let threads = std::env::var("PRECIS_BENCH_THREADS")
        .ok()
        .and_then(|s| s.parse::<NonZeroUsize>().ok());
    if let Some(n) = threads {
        // Before any tensor operation, as set_cpu_threads requires.
        engines::set_cpu_threads(n);
    }
    let Some(path) = llm_common::qwen15() else {
        return;
    };
    let article = std::fs::read_to_string(
        std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("examples/alaska-summit.fr.txt"),
    )
    .unwrap();
    let messages = [
        ChatMessage::system(
            "You are a professional translator. Translate the user's French text into English. \
             Output only the translation.",
        ),
        ChatMessage::user(article),
    ];
    let load = Instant::now();
    let mut engine = LlmEngine::load(&path, &Device::Cpu).unwrap();
    let load = load.elapsed();

    let opts = GenerateOptions {
        max_new_tokens: 200,
        ..GenerateOptions::default()
    };
    let mut cpu_at_first_token = None;
    let mut max_threads = 0;
    let out = engine
        .generate(&messages, &opts, |ev| {
            if ev.index == 0 {
                cpu_at_first_token = Some((cpu_seconds(), Instant::now()));
            }
            max_threads = max_threads.max(os_threads());
            ControlFlow::Continue(())
        })
        .unwrap();
    let (cpu0, t0) = cpu_at_first_token.unwrap();
    let cpu_per_s = (cpu_seconds() - cpu0) / t0.elapsed().as_secs_f64();

    let s = &out.stats;
    eprintln!("load: {load:.2?}");
    eprintln!(
        "prompt: {} tokens in {:.2?} = {:.1} tokens/s",
        s.prompt_tokens,
        s.prompt_time,
        s.prompt_tokens_per_s()
    );
    eprintln!(
        "generation: {} tokens in {:.2?} = {:.1} tokens/s (stop: {:?})",
        s.generated_tokens,
        s.generation_time,
        s.generation_tokens_per_s(),
        out.stop
    );
    eprintln!(
        "threads: candle uses {}; OS threads in the process: {max_threads}; \
         CPU seconds per second while generating: {cpu_per_s:.2}",
        engines::cpu_threads()
    );
    eprintln!("{}", out.text);
}

//! Speed of the chat engine on the demo article (ignored by default; run it alone, in release):
//!
//! ```text
//! PRECIS_TEST_GGUF_15=... PRECIS_BENCH_THREADS=2 \
//!     cargo test --release --test llm_bench -- --ignored --nocapture
//! ```
//!
//! Prints prompt and generation speed, the thread count candle uses, and which threads were
//! busy while generating (CPU seconds per second of wall time, per thread).

mod llm_common;

use candle_core::Device;
use precis::engines::{self, ChatMessage, GenerateOptions, LlmEngine};
use precis::load::ModelFiles;
use std::num::NonZeroUsize;
use std::ops::ControlFlow;
use std::time::Instant;

/// CPU seconds (user + system) used so far by each thread of this process, from
/// `/proc/self/task/*/stat` (fields 14 and 15, in USER_HZ = 100 ticks per second).
fn cpu_by_thread() -> std::collections::HashMap<String, f64> {
    std::fs::read_dir("/proc/self/task")
        .unwrap()
        .filter_map(|task| {
            let task = task.ok()?;
            let stat = std::fs::read_to_string(task.path().join("stat")).ok()?;
            let fields: Vec<&str> = stat.rsplit(')').next()?.split_whitespace().collect();
            let ticks = fields[11].parse::<f64>().ok()? + fields[12].parse::<f64>().ok()?;
            Some((
                task.file_name().to_string_lossy().into_owned(),
                ticks / 100.0,
            ))
        })
        .collect()
}

#[test]
#[ignore = "benchmark: needs the 1.5B model and a quiet machine"]
fn translate_demo_article() {
    let threads = std::env::var("PRECIS_BENCH_THREADS")
        .ok()
        .and_then(|s| s.parse::<NonZeroUsize>().ok());
    // Before any tensor operation, as configure_process requires.
    engines::configure_process(threads);
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
    let mut engine = LlmEngine::load(&ModelFiles::single("qwen", &path), &Device::Cpu).unwrap();
    let load = load.elapsed();

    let opts = GenerateOptions {
        max_new_tokens: 200,
        ..GenerateOptions::default()
    };
    let mut at_first_token = None;
    let out = engine
        .generate(&messages, &opts, |ev| {
            if ev.index == 0 {
                at_first_token = Some((cpu_by_thread(), Instant::now()));
            }
            ControlFlow::Continue(())
        })
        .unwrap();
    let (before, t0) = at_first_token.unwrap();
    let wall = t0.elapsed().as_secs_f64();
    let after = cpu_by_thread();
    // Share of the generation's wall time each thread spent on a CPU, busiest first.
    let mut busy: Vec<f64> = after
        .iter()
        .map(|(tid, cpu)| (cpu - before.get(tid).unwrap_or(&0.0)) / wall)
        .filter(|share| *share > 0.05)
        .collect();
    busy.sort_by(|a, b| b.total_cmp(a));

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
        "threads: candle uses {}; {} of the process's {} threads were busy while generating, \
         CPU seconds per second: {:.2?} (total {:.2})",
        engines::cpu_threads(),
        busy.len(),
        after.len(),
        busy,
        busy.iter().sum::<f64>()
    );
    eprintln!("{}", out.text);
}

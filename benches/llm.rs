//! Replays chat requests through precis' LLM engine and prints timings as JSON: the precis
//! side of `scripts/bench.sh`, the counterpart of `scripts/llama_run.py` for llama.cpp (same
//! request file, same fields).
//!
//! ```text
//! cargo bench --bench llm -- --model FILE.gguf --requests requests.json [--threads N] [--max-tokens N] [--no-lookup] [--batch N]
//! ```
//!
//! `--no-lookup` turns prompt-lookup drafting off (one token per forward pass, as llama.cpp's
//! plain loop); the text is the same either way. `--batch N` decodes up to N requests together
//! (`LlmEngine::generate_batch`; the replies are the same as one at a time): the totals then
//! hold the wall time of the whole set (`wall_ms`) and the aggregate generated tokens/s over
//! it, and each request's times are its own prompt pass and the span of its decoding, which
//! overlaps the others'.
//!
//! Each request is `{"name", "messages": [{"role", "content"}], "max_tokens"}`; decoding is
//! greedy with no repetition guard (llama_run.py turns llama.cpp's penalties off too), and
//! every request starts from an empty KV cache.

use candle_core::Device;
use precis::engines::{self, ChatMessage, ChatRequest, GenerateOptions, LlmEngine};
use precis::load::ModelFiles;
use precis::tokenize::Role;
use serde_json::{json, Value};
use std::num::NonZeroUsize;
use std::ops::ControlFlow;
use std::time::Instant;

fn peak_rss_mib() -> f64 {
    let status = std::fs::read_to_string("/proc/self/status").unwrap_or_default();
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmHWM:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse::<f64>().ok())
        .map_or(f64::NAN, |kib| kib / 1024.0)
}

fn messages(request: &Value) -> Vec<ChatMessage> {
    request["messages"]
        .as_array()
        .expect("messages")
        .iter()
        .map(|m| {
            let role = match m["role"].as_str().expect("role") {
                "system" => Role::System,
                "assistant" => Role::Assistant,
                _ => Role::User,
            };
            ChatMessage::new(role, m["content"].as_str().expect("content"))
        })
        .collect()
}

fn main() {
    let mut args = std::env::args().skip(1);
    let (mut model, mut requests, mut threads, mut max_tokens) = (None, None, None, None);
    let mut lookup = GenerateOptions::default().lookup;
    let mut batch = 1;
    while let Some(arg) = args.next() {
        match arg.as_str() {
            "--model" => model = args.next(),
            "--requests" => requests = args.next(),
            "--threads" => threads = args.next().and_then(|t| t.parse::<NonZeroUsize>().ok()),
            "--max-tokens" => max_tokens = args.next().and_then(|t| t.parse::<usize>().ok()),
            "--no-lookup" => lookup = None,
            "--batch" => {
                batch = args
                    .next()
                    .and_then(|t| t.parse::<usize>().ok())
                    .expect("--batch N")
            }
            // cargo bench passes --bench to every bench binary.
            "--bench" => {}
            other => panic!("unknown argument {other}"),
        }
    }
    let (Some(model), Some(requests)) = (model, requests) else {
        eprintln!("usage: cargo bench --bench llm -- --model FILE.gguf --requests FILE [--threads N] [--max-tokens N] [--no-lookup] [--batch N]");
        std::process::exit(2);
    };
    engines::configure_process(threads);
    let requests: Vec<Value> =
        serde_json::from_str(&std::fs::read_to_string(&requests).expect("requests file"))
            .expect("requests JSON");

    let started = Instant::now();
    let mut engine =
        LlmEngine::load(&ModelFiles::single("qwen", model.as_ref()), &Device::Cpu).expect("model");
    let load_ms = started.elapsed().as_secs_f64() * 1e3;

    let options: Vec<GenerateOptions> = requests
        .iter()
        .map(|request| GenerateOptions {
            max_new_tokens: max_tokens
                .or(request["max_tokens"].as_u64().map(|n| n as usize))
                .unwrap_or(256),
            repetition: None,
            lookup,
            ..GenerateOptions::default()
        })
        .collect();
    let conversations: Vec<Vec<ChatMessage>> = requests.iter().map(messages).collect();
    let chats: Vec<ChatRequest<'_>> = conversations
        .iter()
        .zip(&options)
        .map(|(messages, opts)| ChatRequest { messages, opts })
        .collect();
    let wall = Instant::now();
    let mut replies = Vec::new();
    if batch > 1 {
        replies = engine
            .generate_batch(&chats, batch, |_, _| ControlFlow::Continue(()))
            .expect("generation");
    } else {
        // One at a time, as before batching: each request's wall time is its own.
        for chat in &chats {
            replies.push(
                engine
                    .generate(chat.messages, chat.opts, |_| ControlFlow::Continue(()))
                    .expect("generation"),
            );
        }
    }
    let wall_ms = wall.elapsed().as_secs_f64() * 1e3;

    let mut results = Vec::new();
    let (mut prompt_tokens, mut cached_tokens, mut generated_tokens) = (0, 0, 0);
    let (mut prompt_ms, mut generate_ms) = (0.0, 0.0);
    for (request, out) in requests.iter().zip(&replies) {
        let s = &out.stats;
        let (p_ms, g_ms) = (
            s.prompt_time.as_secs_f64() * 1e3,
            s.generation_time.as_secs_f64() * 1e3,
        );
        prompt_tokens += s.prompt_tokens;
        cached_tokens += s.cached_prompt_tokens;
        generated_tokens += s.generated_tokens;
        prompt_ms += p_ms;
        generate_ms += g_ms;
        results.push(json!({
            "name": request["name"],
            "prompt_tokens": s.prompt_tokens,
            "prompt_tokens_cached": s.cached_prompt_tokens,
            "generated_tokens": s.generated_tokens,
            "stop_reason": format!("{:?}", out.stop),
            "prompt_ms": p_ms,
            "generate_ms": g_ms,
            "prompt_tokens_per_s": s.prompt_tokens_per_s(),
            "generated_tokens_per_s": s.generation_tokens_per_s(),
            "generation_passes": s.generation_passes,
            "draft_tokens": s.draft_tokens,
            "accepted_draft_tokens": s.accepted_draft_tokens,
            "text": out.text,
        }));
    }
    // Decoding time of the set: with batching, the wall time less the prompt passes (which
    // run one at a time); one at a time, the sum of the requests' decoding.
    if batch > 1 {
        generate_ms = wall_ms - prompt_ms;
    }
    let report = json!({
        "engine": "precis",
        "prompt_lookup": lookup.is_some(),
        "batch": batch,
        "kv_cache_mib": engine.cache_bytes() as f64 / (1 << 20) as f64,
        "threads": engines::cpu_threads(),
        "load_ms": load_ms,
        "requests": results,
        "totals": {
            "prompt_tokens": prompt_tokens,
            "prompt_tokens_cached": cached_tokens,
            "generated_tokens": generated_tokens,
            "wall_ms": wall_ms,
            "generated_tokens_per_wall_s": generated_tokens as f64 / (wall_ms / 1e3),
            "prompt_ms": prompt_ms,
            "generate_ms": generate_ms,
            // Computed tokens: those the cache held from the request before cost no time.
            "prompt_tokens_per_s": (prompt_tokens - cached_tokens) as f64 / (prompt_ms / 1e3),
            // As in DecodeStats: the first generated token comes with the prompt pass.
            "generated_tokens_per_s": (generated_tokens.saturating_sub(results.len())) as f64 / (generate_ms / 1e3),
        },
        "peak_rss_mib": peak_rss_mib(),
    });
    println!("{}", serde_json::to_string_pretty(&report).expect("JSON"));
}

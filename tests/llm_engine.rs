//! The chat engine on the real 0.5B model: streaming, stop conditions, load errors.

mod llm_common;

use candle_core::quantized::gguf_file::Content;
use candle_core::Device;
use precis::engines::copy_guard::{NearCopyRule, SourceRuns};
use precis::engines::{ChatMessage, GenerateOptions, LlmEngine, StopReason};
use precis::infer::kernels::math::argmax;
use precis::infer::{CausalLm, InferError, Qwen2};
use precis::load::ModelFiles;
use precis::summarize::candidate::copied_share;
use precis::tokenize::GgufTokenizer;
use std::ops::ControlFlow;

#[test]
fn streams_the_same_text_it_returns() {
    let Some(path) = llm_common::qwen05() else {
        return;
    };
    let mut engine = LlmEngine::load(&ModelFiles::single("qwen", &path), &Device::Cpu).unwrap();
    let messages = [ChatMessage::user(
        "Traduis en anglais : « Le sommet s'est tenu à Anchorage, en Alaska, à la mi-août. »",
    )];
    let mut streamed = String::new();
    let mut count = 0;
    let out = engine
        .generate(&messages, &GenerateOptions::default(), |ev| {
            assert_eq!(ev.index, count);
            count += 1;
            streamed.push_str(ev.text);
            ControlFlow::Continue(())
        })
        .unwrap();
    eprintln!("{:?} {:?}", out.text, out.stats);
    assert_eq!(out.stop, StopReason::EndToken);
    assert_eq!(streamed, out.text);
    assert_eq!(count, out.tokens.len());
    assert!(engine.stop_tokens().contains(out.tokens.last().unwrap()));
    assert!(out.text.contains("Anchorage"), "{}", out.text);
    assert_eq!(out.prompt_ids, engine.encode_chat(&messages).unwrap());
}

#[test]
fn a_shared_prefix_is_reused_without_changing_the_answer() {
    let Some(path) = llm_common::qwen05() else {
        return;
    };
    let system = ChatMessage::system(
        "You are a professional translator. Translate the user's French text into English. \
         Output only the translation.",
    );
    let first = [
        system.clone(),
        ChatMessage::user("Le sommet s'est tenu à Anchorage."),
    ];
    let second = [
        system,
        ChatMessage::user("Moscou garde la porte ouverte à un accord."),
    ];
    let opts = GenerateOptions {
        max_new_tokens: 24,
        ..GenerateOptions::default()
    };
    let mut warm = LlmEngine::load(&ModelFiles::single("qwen", &path), &Device::Cpu).unwrap();
    warm.generate(&first, &opts, |_| ControlFlow::Continue(()))
        .unwrap();
    let reused = warm
        .generate(&second, &opts, |_| ControlFlow::Continue(()))
        .unwrap();
    let mut fresh = LlmEngine::load(&ModelFiles::single("qwen", &path), &Device::Cpu).unwrap();
    let recomputed = fresh
        .generate(&second, &opts, |_| ControlFlow::Continue(()))
        .unwrap();
    assert_eq!(
        reused.tokens, recomputed.tokens,
        "{:?} vs {:?}",
        reused.text, recomputed.text
    );
    assert!(!reused.tokens.is_empty());
    // The shared system prompt came from the cache, and only there: the timings count it.
    let cached = reused.stats.cached_prompt_tokens;
    assert!(
        cached > 10 && cached < reused.stats.prompt_tokens,
        "{cached} of {} prompt tokens cached",
        reused.stats.prompt_tokens
    );
    assert_eq!(recomputed.stats.cached_prompt_tokens, 0);
}

/// Folded words, for comparing runs: lower case, letters and digits.
fn folded_words(text: &str) -> Vec<String> {
    text.split(|c: char| !c.is_alphanumeric())
        .filter(|w| !w.is_empty())
        .map(str::to_lowercase)
        .collect()
}

/// Asked to repeat a sentence word for word, the model does; with the sentence's runs of four
/// words refused, it writes none of them and still answers.
#[test]
fn a_reply_kept_from_the_source_runs_repeats_none_of_them() {
    let Some(path) = llm_common::qwen05() else {
        return;
    };
    let mut engine = LlmEngine::load(&ModelFiles::single("qwen", &path), &Device::Cpu).unwrap();
    let source = "The strong dynamic created by the summit was extinguished by protesters \
                  coming mainly from western countries.";
    let messages = [ChatMessage::user(format!(
        "Repeat this sentence word for word: {source}"
    ))];
    let runs_of = |text: &str| -> Vec<Vec<String>> {
        folded_words(text)
            .windows(4)
            .map(<[String]>::to_vec)
            .collect()
    };
    let source_runs = runs_of(source);
    let free = engine
        .generate(&messages, &GenerateOptions::default(), |_| {
            ControlFlow::Continue(())
        })
        .unwrap();
    assert!(
        runs_of(&free.text).iter().any(|r| source_runs.contains(r)),
        "{}",
        free.text
    );
    let opts = GenerateOptions {
        avoid_copying: Some(SourceRuns::new(source, 4)),
        ..GenerateOptions::default()
    };
    let guarded = engine
        .generate(&messages, &opts, |_| ControlFlow::Continue(()))
        .unwrap();
    eprintln!("free: {:?}\nguarded: {:?}", free.text, guarded.text);
    assert!(folded_words(&guarded.text).len() >= 4, "{}", guarded.text);
    let repeated: Vec<_> = runs_of(&guarded.text)
        .into_iter()
        .filter(|r| source_runs.contains(r))
        .collect();
    assert!(repeated.is_empty(), "{repeated:?} in {}", guarded.text);

    // Held besides to at most 80% of its words in the source's order, it is no near copy.
    let opts = GenerateOptions {
        avoid_near_copy: Some(NearCopyRule::new(&[source], 0.8)),
        ..opts
    };
    let rewritten = engine
        .generate(&messages, &opts, |_| ControlFlow::Continue(()))
        .unwrap();
    eprintln!("rewritten: {:?}", rewritten.text);
    assert!(
        folded_words(&rewritten.text).len() >= 4,
        "{}",
        rewritten.text
    );
    assert!(
        copied_share(&rewritten.text, source) <= 0.8,
        "{}",
        rewritten.text
    );
    assert!(copied_share(&free.text, source) > 0.8, "{}", free.text);
}

#[test]
fn max_tokens_and_cancellation() {
    let Some(path) = llm_common::qwen05() else {
        return;
    };
    let mut engine = LlmEngine::load(&ModelFiles::single("qwen", &path), &Device::Cpu).unwrap();
    let messages = [ChatMessage::user("Écris un long poème sur la mer.")];
    let opts = GenerateOptions {
        max_new_tokens: 3,
        ..GenerateOptions::default()
    };
    let out = engine
        .generate(&messages, &opts, |_| ControlFlow::Continue(()))
        .unwrap();
    assert_eq!((out.tokens.len(), out.stop), (3, StopReason::MaxTokens));
    assert_eq!(out.stats.generated_tokens, 3);
    assert_eq!(out.stats.prompt_tokens, out.prompt_ids.len());

    let out = engine
        .generate(&messages, &GenerateOptions::default(), |ev| {
            if ev.index == 1 {
                ControlFlow::Break(())
            } else {
                ControlFlow::Continue(())
            }
        })
        .unwrap();
    assert_eq!((out.tokens.len(), out.stop), (2, StopReason::Cancelled));
}

/// The model gives the same logits whether the prompt is run at once, in two pieces, or after
/// the cache was rewound past a different continuation.
#[test]
fn kv_cache_continues_and_rewinds() {
    let Some(path) = llm_common::qwen05() else {
        return;
    };
    let device = Device::Cpu;
    let mut reader = std::io::BufReader::new(std::fs::File::open(&path).unwrap());
    let ct = Content::read(&mut reader).unwrap();
    let tok = GgufTokenizer::from_gguf(&ct).unwrap();
    let mut model = Qwen2::from_gguf(&ct, &mut reader, &device).unwrap();
    let ids = tok
        .encode_text("Le président russe a rencontré le président américain en Alaska.")
        .unwrap();
    let whole = model.forward(&ids, 0).unwrap();

    let split = ids.len() / 2;
    model.forward(&ids[..split], 0).unwrap();
    let pieces = model.forward(&ids[split..], split).unwrap();

    model.forward(&[42, 43, 44], ids.len()).unwrap();
    let rewound = model.forward(&ids[split..], split).unwrap();

    let mean_diff = |a: &[f32], b: &[f32]| {
        a.iter().zip(b).map(|(x, y)| (x - y).abs()).sum::<f32>() / a.len() as f32
    };
    assert_eq!(whole.len(), tok.vocab_size());
    // Different batch shapes sum in a different order, and the quantised products re-quantise
    // activations to 8 bits, so a rounding difference can flip a step: measured mean 0.06.
    // A chunk that did not see the earlier one would differ by whole units (4.1 on average
    // between unrelated contexts).
    assert!(
        mean_diff(&whole, &pieces) < 0.2,
        "{}",
        mean_diff(&whole, &pieces)
    );
    assert_eq!(argmax(&whole), argmax(&pieces));
    assert_eq!(pieces, rewound);
    assert!(matches!(
        model.forward(&[1], ids.len() + 5),
        Err(InferError::Position { .. })
    ));
}

/// Prompt-lookup drafts are checked in batched passes (`Qwen2::forward_each`); the reply, and
/// the logits of every step, must be exactly those of one token per pass.
#[test]
fn prompt_lookup_changes_nothing_but_the_number_of_passes() {
    let models = [llm_common::qwen05(), llm_common::qwen15()];
    for path in models.into_iter().flatten() {
        let messages = [ChatMessage::user(
            "Translate into English: « Le 15 août 2025, Donald Trump et Vladimir Poutine se sont \
             rencontrés à la base Elmendorf-Richardson d'Anchorage, en Alaska. Donald Trump et \
             Vladimir Poutine ont parlé pendant trois heures. »",
        )];
        let mut runs = Vec::new();
        for lookup in [None, GenerateOptions::default().lookup] {
            // A fresh engine each time: a cached prompt would change how its last token is
            // computed, not what drafting does.
            let mut engine =
                LlmEngine::load(&ModelFiles::single("qwen", &path), &Device::Cpu).unwrap();
            let opts = GenerateOptions {
                max_new_tokens: 80,
                lookup,
                ..GenerateOptions::default()
            };
            let mut steps: Vec<(u32, Vec<f32>)> = Vec::new();
            let out = engine
                .generate(&messages, &opts, |ev| {
                    steps.push((ev.token, ev.logits.to_vec()));
                    ControlFlow::Continue(())
                })
                .unwrap();
            eprintln!("{}: {:?} {:?}", path.display(), out.text, out.stats);
            runs.push((out, steps));
        }
        let [(plain, plain_steps), (drafted, drafted_steps)] = <[_; 2]>::try_from(runs).unwrap();
        assert_eq!(
            drafted.tokens, plain.tokens,
            "{:?} vs {:?}",
            drafted.text, plain.text
        );
        assert_eq!(drafted.stop, plain.stop);
        for (i, (a, b)) in drafted_steps.iter().zip(&plain_steps).enumerate() {
            assert!(
                a.1.iter()
                    .zip(&b.1)
                    .all(|(x, y)| x.to_bits() == y.to_bits()),
                "logits differ at step {i}"
            );
        }
        assert!(
            drafted.stats.accepted_draft_tokens > 0,
            "{:?}",
            drafted.stats
        );
        assert!(drafted.stats.generation_passes < plain.stats.generation_passes);
    }
}

//! The chat engine on the real 0.5B model: streaming, stop conditions, load errors.

mod llm_common;

use candle_core::Device;
use precis::engines::{ChatMessage, GenerateOptions, LlmEngine, StopReason};
use std::ops::ControlFlow;

#[test]
fn streams_the_same_text_it_returns() {
    let Some(path) = llm_common::qwen05() else {
        return;
    };
    let mut engine = LlmEngine::load(&path, &Device::Cpu).unwrap();
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
    assert_eq!(out.prompt_tokens, engine.encode_chat(&messages).unwrap());
}

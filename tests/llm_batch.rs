//! Batched decoding on both real models: requests decoded together give exactly the replies
//! they give one after another.

mod llm_common;

use candle_core::Device;
use precis::engines::constraint::FactRules;
use precis::engines::{ChatMessage, ChatRequest, GenerateOptions, LlmEngine, Role};
use precis::load::ModelFiles;
use std::ops::ControlFlow;

const SYSTEM: &str = "You are a professional translator. Translate the user's French text into \
English. Output only the translation.";

const PARAGRAPHS: [&str; 5] = [
    "Le 15 août 2025, Donald Trump et Vladimir Poutine se sont rencontrés à la base \
     Elmendorf-Richardson d'Anchorage, en Alaska.",
    "La rencontre a duré près de trois heures, sans accord sur un cessez-le-feu.",
    "« Nous avons fait de grands progrès », a déclaré Donald Trump à la presse, sans donner de \
     détails. Vladimir Poutine a parlé d'une rencontre « constructive ».",
    "Fin mars, 15 237 clients avaient déjà quitté la banque, qui a perdu 1,36 milliard d'euros.",
    "Les dirigeants européens, qui n'étaient pas invités, attendent un compte rendu.",
];

/// What a reply is, bit for bit: its tokens, how it stopped, and the logits of every step.
#[derive(Debug, PartialEq)]
struct Reply {
    tokens: Vec<u32>,
    stop: String,
    logits: Vec<u64>,
}

/// A digest of a step's logits that changes with any bit of any of them.
fn digest(logits: &[f32]) -> u64 {
    logits.iter().fold(0xcbf2_9ce4_8422_2325, |h, x| {
        (h ^ u64::from(x.to_bits())).wrapping_mul(0x0100_0000_01b3)
    })
}

#[test]
fn requests_decoded_together_equal_requests_made_one_after_another() {
    // The 0.5B model's Q5_0 and Q8_0 products go through candle's scalar kernels, several
    // times slower than the 1.5B model's: three requests and fewer tokens keep its part short
    // (the constrained request is the 1.5B model's).
    let models = [(llm_common::qwen05(), 3, 16), (llm_common::qwen15(), 5, 48)];
    for (path, count, max_new_tokens) in models {
        let Some(path) = path else {
            continue;
        };
        let conversations: Vec<Vec<ChatMessage>> = PARAGRAPHS[..count]
            .iter()
            .map(|p| {
                vec![
                    ChatMessage::new(Role::System, SYSTEM),
                    ChatMessage::user(*p),
                ]
            })
            .collect();
        let plain = GenerateOptions {
            max_new_tokens,
            ..GenerateOptions::default()
        };
        // One request held to its source's numbers, one with a short budget.
        let facts = GenerateOptions {
            facts: Some(FactRules {
                numbers: ["15237", "1", "36"].map(String::from).to_vec(),
                decimals: vec!["1.36".into()],
                ..FactRules::default()
            }),
            ..plain.clone()
        };
        let short = GenerateOptions {
            max_new_tokens: 6,
            ..plain.clone()
        };
        let requests: Vec<ChatRequest<'_>> = conversations
            .iter()
            .enumerate()
            .map(|(i, messages)| ChatRequest {
                messages,
                opts: match i {
                    3 => &facts,
                    1 => &short,
                    _ => &plain,
                },
            })
            .collect();
        let load = || LlmEngine::load(&ModelFiles::single("qwen", &path), &Device::Cpu).unwrap();

        let mut engine = load();
        let mut one_by_one = Vec::new();
        for request in &requests {
            let mut logits = Vec::new();
            let out = engine
                .generate(request.messages, request.opts, |ev| {
                    logits.push(digest(ev.logits));
                    ControlFlow::Continue(())
                })
                .unwrap();
            one_by_one.push(Reply {
                tokens: out.tokens,
                stop: format!("{:?}", out.stop),
                logits,
            });
        }

        let mut engine = load();
        let mut logits = vec![Vec::new(); requests.len()];
        let mut order = Vec::new();
        let together = engine
            .generate_batch(&requests, 3, |index, ev| {
                logits[index].push(digest(ev.logits));
                order.push(index);
                ControlFlow::Continue(())
            })
            .unwrap();
        // The requests were decoded side by side, not one after another.
        assert!(
            order.windows(2).filter(|w| w[0] != w[1]).count() >= requests.len(),
            "{order:?}"
        );
        for (i, (out, logits)) in together.into_iter().zip(logits).enumerate() {
            eprintln!("{}: {i}: {:?}", path.display(), out.text);
            let reply = Reply {
                tokens: out.tokens,
                stop: format!("{:?}", out.stop),
                logits,
            };
            assert_eq!(reply, one_by_one[i], "request {i}");
        }
        assert!(engine.cache_bytes() > 0);
    }
}

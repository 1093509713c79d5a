//! The greedy decoding loop on scripted "models" (no weights): stop conditions, the repetition
//! guard, cancellation, context limits and KV-cache positions.

use precis::infer::decode::{
    greedy, CausalLm, DecodeOptions, PromptLookup, RepetitionGuard, StopReason,
};
use precis::infer::InferError;
use std::ops::ControlFlow;

const VOCAB: usize = 64;
const END: u32 = 2;

/// Predicts the next token from the whole sequence so far, and checks that it is driven like a
/// model with a KV cache: the prompt at position 0, then one token at a time, each at the
/// position after the last or (after a rejected draft) rewinding to an earlier one.
struct Scripted<F: Fn(&[u32]) -> u32> {
    next: F,
    seen: Vec<u32>,
    context: usize,
}

impl<F: Fn(&[u32]) -> u32> Scripted<F> {
    fn new(next: F) -> Self {
        Self {
            next,
            seen: Vec::new(),
            context: 4096,
        }
    }
}

impl<F: Fn(&[u32]) -> u32> CausalLm for Scripted<F> {
    fn forward(&mut self, tokens: &[u32], position: usize) -> Result<Vec<f32>, InferError> {
        assert!(position <= self.seen.len(), "forward pass out of order");
        assert!(position == 0 || tokens.len() == 1);
        self.seen.truncate(position);
        self.seen.extend_from_slice(tokens);
        let mut logits = vec![0.0; VOCAB];
        logits[(self.next)(&self.seen) as usize] = 1.0;
        Ok(logits)
    }

    fn context_length(&self) -> usize {
        self.context
    }
}

fn opts(max_new_tokens: usize) -> DecodeOptions {
    DecodeOptions {
        max_new_tokens,
        stop_tokens: vec![END],
        repetition: Some(RepetitionGuard::default()),
        lookup: None,
    }
}

fn run(model: &mut impl CausalLm, prompt: &[u32], opts: &DecodeOptions) -> (Vec<u32>, StopReason) {
    let out = greedy(model, prompt, opts, |_| ControlFlow::Continue(())).unwrap();
    assert_eq!(out.stats.prompt_tokens, prompt.len());
    assert_eq!(out.stats.generated_tokens, out.tokens.len());
    (out.tokens, out.stop)
}

/// Counts up from the last token through 10..60, so it only repeats with a period of 50.
fn counting(seen: &[u32]) -> u32 {
    match *seen.last().unwrap() {
        l @ 10..=58 => l + 1,
        _ => 10,
    }
}

#[test]
fn stops_on_an_end_token_and_keeps_it() {
    let mut m = Scripted::new(|seen: &[u32]| {
        if seen.len() >= 6 {
            END
        } else {
            40 + seen.len() as u32
        }
    });
    let (tokens, stop) = run(&mut m, &[1, 1, 1], &opts(100));
    assert_eq!(tokens, [43, 44, 45, END]);
    assert_eq!(stop, StopReason::EndToken);
}

#[test]
fn stops_at_max_new_tokens() {
    let mut m = Scripted::new(counting);
    let (tokens, stop) = run(&mut m, &[1], &opts(7));
    assert_eq!(tokens, [10, 11, 12, 13, 14, 15, 16]);
    assert_eq!(stop, StopReason::MaxTokens);
    // The last token's forward pass is not needed, so not run.
    assert_eq!(m.seen.len(), 1 + 6);
}

#[test]
fn repetition_guard_stops_a_loop_once_it_spans_48_tokens() {
    // Twenty distinct tokens, then "30 31 32 33 34" forever.
    let mut m = Scripted::new(|seen: &[u32]| {
        let n = seen.len() - 1;
        if n < 20 {
            10 + n as u32
        } else {
            30 + (n as u32 - 20) % 5
        }
    });
    let (tokens, stop) = run(&mut m, &[1], &opts(500));
    assert_eq!(stop, StopReason::Repetition);
    assert_eq!(tokens.len(), 20 + 48);
}

#[test]
fn repetition_guard_catches_a_single_token_loop() {
    let mut m = Scripted::new(|_: &[u32]| 7);
    let (tokens, stop) = run(&mut m, &[1], &opts(500));
    assert_eq!((tokens.len(), stop), (48, StopReason::Repetition));
}

#[test]
fn loops_longer_than_the_guard_are_not_reported() {
    // Period 17 exceeds the default guard's 16.
    let mut m = Scripted::new(|seen: &[u32]| 10 + (seen.len() as u32 % 17));
    let (tokens, stop) = run(&mut m, &[1], &opts(200));
    assert_eq!((tokens.len(), stop), (200, StopReason::MaxTokens));
}

#[test]
fn repetition_guard_can_be_turned_off() {
    let mut m = Scripted::new(|_: &[u32]| 7);
    let mut o = opts(100);
    o.repetition = None;
    let (tokens, stop) = run(&mut m, &[1], &o);
    assert_eq!((tokens.len(), stop), (100, StopReason::MaxTokens));
}

#[test]
fn callback_sees_every_token_and_can_cancel() {
    let mut m = Scripted::new(counting);
    let mut seen = Vec::new();
    let out = greedy(&mut m, &[1], &opts(100), |step| {
        assert_eq!(step.index, seen.len());
        assert_eq!(step.logits.len(), VOCAB);
        seen.push(step.token);
        if step.index == 3 {
            ControlFlow::Break(())
        } else {
            ControlFlow::Continue(())
        }
    })
    .unwrap();
    assert_eq!(out.stop, StopReason::Cancelled);
    assert_eq!(out.tokens, seen);
    assert_eq!(out.tokens.len(), 4);
}

#[test]
fn end_token_wins_over_cancellation() {
    let mut m = Scripted::new(|_: &[u32]| END);
    let out = greedy(&mut m, &[1], &opts(100), |_| ControlFlow::Break(())).unwrap();
    assert_eq!((out.tokens, out.stop), (vec![END], StopReason::EndToken));
}

#[test]
fn generation_stops_when_the_context_is_full() {
    let mut m = Scripted::new(counting);
    m.context = 10;
    let (tokens, stop) = run(&mut m, &[1; 8], &opts(100));
    assert_eq!((tokens.len(), stop), (2, StopReason::MaxTokens));
    assert!(matches!(
        greedy(&mut m, &[1; 10], &opts(100), |_| ControlFlow::Continue(())),
        Err(InferError::ContextOverflow {
            tokens: 10,
            context: 10
        })
    ));
}

#[test]
fn empty_prompt_is_an_error() {
    let mut m = Scripted::new(counting);
    assert!(matches!(
        greedy(&mut m, &[], &opts(10), |_| ControlFlow::Continue(())),
        Err(InferError::EmptyPrompt)
    ));
}

#[test]
fn a_second_generation_starts_from_a_fresh_cache() {
    let mut m = Scripted::new(counting);
    run(&mut m, &[1, 2, 3], &opts(5));
    let (tokens, _) = run(&mut m, &[20], &opts(3));
    assert_eq!(tokens, [21, 22, 23]);
    assert_eq!(m.seen, [20, 21, 22]);
}

#[test]
fn ties_go_to_the_lowest_id() {
    struct Flat;
    impl CausalLm for Flat {
        fn forward(&mut self, _: &[u32], _: usize) -> Result<Vec<f32>, InferError> {
            Ok(vec![0.5; VOCAB])
        }
        fn context_length(&self) -> usize {
            100
        }
    }
    let (tokens, _) = run(&mut Flat, &[1], &opts(3));
    assert_eq!(tokens, [0, 0, 0]);
}

/// Copies: after token 20 it repeats the prompt's token that followed the latest earlier 20,
/// and otherwise says what `counting` says, so prompt-lookup drafts hold in some places and
/// fail in others.
fn copying(seen: &[u32]) -> u32 {
    let last = *seen.last().unwrap();
    let earlier = seen[..seen.len() - 1].iter().rposition(|&t| t == last);
    match earlier {
        Some(i) if last == 20 || !seen[i + 1].is_multiple_of(3) => seen[i + 1],
        _ => counting(seen),
    }
}

fn with_lookup(max_new_tokens: usize) -> DecodeOptions {
    DecodeOptions {
        lookup: Some(PromptLookup::default()),
        ..opts(max_new_tokens)
    }
}

#[test]
fn drafts_leave_the_output_and_every_steps_logits_unchanged() {
    let prompt = [1, 20, 21, 22, 25, 26, 27, 40, 41, 30, 31, 32, 33, 20];
    for max_new in [1, 2, 5, 17, 64, 200] {
        // Every step the callback saw: index, token, logits.
        let run_recording = |model: &mut Scripted<fn(&[u32]) -> u32>, opts: &DecodeOptions| {
            let mut steps = Vec::new();
            let out = greedy(model, &prompt, opts, |step| {
                steps.push((step.index, step.token, step.logits.to_vec()));
                ControlFlow::Continue(())
            })
            .unwrap();
            (out, steps)
        };
        let mut plain = Scripted::new(copying as fn(&[u32]) -> u32);
        let (base, expected) = run_recording(&mut plain, &opts(max_new));
        let mut drafted = Scripted::new(copying as fn(&[u32]) -> u32);
        let (out, got) = run_recording(&mut drafted, &with_lookup(max_new));
        assert_eq!(
            (&out.tokens, out.stop),
            (&base.tokens, base.stop),
            "max_new {max_new}"
        );
        assert_eq!(got, expected);
        assert_eq!(out.stats.generated_tokens, base.stats.generated_tokens);
        // What the model saw last is the same sequence (rejected drafts rewound).
        let n = prompt.len() + out.tokens.len() - 1;
        assert_eq!(drafted.seen[..n], plain.seen[..n]);
        if max_new == 200 {
            assert!(out.stats.accepted_draft_tokens > 10, "{:?}", out.stats);
            assert!(out.stats.accepted_draft_tokens < out.stats.draft_tokens);
            assert!(out.stats.generation_passes < out.tokens.len() - 1);
            assert_eq!(base.stats.generation_passes, base.tokens.len() - 1);
        }
    }
}

#[test]
fn an_end_token_inside_a_confirmed_draft_ends_generation_there() {
    // The prompt holds "5 6 7 END 9"; the model copies after 5, so the draft "6 7 END 9"
    // holds up to END.
    let next = |seen: &[u32]| match *seen.last().unwrap() {
        5 => 6,
        6 => 7,
        7 => END,
        _ => 5,
    };
    let prompt = [4, 5, 6, 7, END, 9, 4];
    let mut m = Scripted::new(next);
    let out = greedy(&mut m, &prompt, &with_lookup(50), |_| {
        ControlFlow::Continue(())
    })
    .unwrap();
    assert_eq!(
        (out.tokens, out.stop),
        (vec![5, 6, 7, END], StopReason::EndToken)
    );
}

#[test]
fn drafts_never_pass_the_token_budget() {
    let prompt: Vec<u32> = (10..60).chain(10..13).collect();
    let mut m = Scripted::new(counting);
    let out = greedy(&mut m, &prompt, &with_lookup(9), |_| {
        ControlFlow::Continue(())
    })
    .unwrap();
    assert_eq!(out.tokens, (13..22).collect::<Vec<_>>());
    assert_eq!(out.stop, StopReason::MaxTokens);
    // Every draft was confirmed and none reached past the ninth token.
    assert_eq!(out.stats.accepted_draft_tokens, out.stats.draft_tokens);
    assert_eq!(m.seen.len(), prompt.len() + 8);
}

#[test]
fn lookup_drafts_from_the_latest_occurrence_of_the_longest_ngram() {
    let lookup = PromptLookup {
        max_ngram: 3,
        min_ngram: 2,
        max_draft: 3,
    };
    // "1 2 3" occurs at 0 and 6; the latest earlier one (6) is followed by 9 9.
    assert_eq!(
        lookup.draft(&[1, 2, 3, 4, 5, 6, 1, 2, 3, 9, 9, 1, 2, 3]),
        [9, 9, 1]
    );
    // Only the last two tokens occurred before.
    assert_eq!(lookup.draft(&[7, 2, 3, 8, 1, 2, 3]), [8, 1, 2]);
    // The draft stops at the end of the sequence.
    assert_eq!(lookup.draft(&[2, 3, 2, 3]), [2, 3]);
    // A lone token is below min_ngram; nothing else matches.
    assert!(lookup.draft(&[1, 2, 3, 4, 3]).is_empty());
    assert!(lookup.draft(&[]).is_empty());
}

#[test]
fn drafting_stops_when_drafts_keep_failing() {
    // Every pair of consecutive counts is followed by 5 in the prompt; the model never says 5.
    let prompt: Vec<u32> = (10..59).flat_map(|t| [t, t + 1, 5]).collect();
    let mut m = Scripted::new(counting);
    let out = greedy(&mut m, &prompt, &with_lookup(100), |_| {
        ControlFlow::Continue(())
    })
    .unwrap();
    let mut plain = Scripted::new(counting);
    let base = greedy(&mut plain, &prompt, &opts(100), |_| {
        ControlFlow::Continue(())
    })
    .unwrap();
    assert_eq!(out.tokens, base.tokens);
    assert_eq!(out.stats.accepted_draft_tokens, 0);
    // Eight one-token drafts failed, then none was tried.
    assert_eq!(out.stats.draft_tokens, 8, "{:?}", out.stats);
    assert_eq!(out.stats.generation_passes, out.tokens.len() - 1);
}

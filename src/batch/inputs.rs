//! The articles of a batch: files, folders of files, and JSONL records (from files or standard
//! input), each with the id that resuming and sharding go by.

use std::{
    collections::HashMap,
    io::Read,
    path::{Path, PathBuf},
};

use serde_json::{Map, Value};
use sha2::Digest;

use super::{ArticleFailure, BatchError};
use crate::text::input::{self, MAX_INPUT_BYTES};

/// The keys of a result line that precis writes itself: a record's own field of that name
/// would be lost among them, so such a record fails instead.
pub const RESULT_KEYS: [&str; 11] = [
    "id",
    "source",
    "text_sha256",
    "job_sha256",
    "error",
    "input",
    "translation",
    "summary",
    "fidelity",
    "timings",
    "warnings",
];

/// One article to do.
#[derive(Debug, Clone)]
pub struct Record {
    pub id: String,
    /// Where it came from, for people: a path, or `FILE:LINE` for a JSONL record.
    pub source: String,
    pub body: Body,
    /// A JSONL record's other fields, copied into its result line.
    pub extra: Map<String, Value>,
}

#[derive(Debug, Clone)]
pub enum Body {
    /// A file, read when its turn comes.
    File {
        path: PathBuf,
        html: bool,
    },
    Text(String),
    Html(String),
    /// A JSONL record that cannot be an article, and why: it gets an error line.
    Invalid(String),
}

impl Body {
    /// Whether the text is HTML, to be kept without its markup.
    pub fn is_html(&self) -> bool {
        matches!(self, Body::File { html: true, .. } | Body::Html(_))
    }
}

/// Every article the inputs name, in the order given (a folder's files sorted by path). Ids
/// are unique: two articles with one id could not be told apart when resuming.
pub fn collect(inputs: &[PathBuf]) -> Result<Vec<Record>, BatchError> {
    let mut records = Vec::new();
    for input in inputs {
        if input == Path::new("-") {
            let mut bytes = Vec::new();
            std::io::stdin()
                .lock()
                .read_to_end(&mut bytes)
                .map_err(|source| BatchError::Read {
                    path: "standard input".into(),
                    source,
                })?;
            records.extend(jsonl_records(&bytes, "standard input"));
            continue;
        }
        let meta = std::fs::metadata(input).map_err(|source| BatchError::Read {
            path: input.display().to_string(),
            source,
        })?;
        if meta.is_dir() {
            let mut files = Vec::new();
            walk(input, &mut files)?;
            files.sort();
            for path in files {
                let id = path
                    .strip_prefix(input)
                    .unwrap_or(&path)
                    .display()
                    .to_string();
                records.push(file_record(id, path));
            }
        } else if extension(input) == Some("jsonl") {
            let bytes = std::fs::read(input).map_err(|source| BatchError::Read {
                path: input.display().to_string(),
                source,
            })?;
            records.extend(jsonl_records(&bytes, &input.display().to_string()));
        } else {
            records.push(file_record(input.display().to_string(), input.clone()));
        }
    }
    let mut first_source: HashMap<&str, &str> = HashMap::new();
    for record in &records {
        if let Some(first) = first_source.insert(&record.id, &record.source) {
            return Err(BatchError::DuplicateId {
                id: record.id.clone(),
                first: first.to_string(),
                second: record.source.clone(),
            });
        }
    }
    Ok(records)
}

/// The bytes of an article, and their SHA-256 (hex), which says on resume whether it changed.
pub fn read(record: &Record) -> Result<(Vec<u8>, String), ArticleFailure> {
    let bytes = match &record.body {
        Body::File { path, .. } => input::read_input(path)?,
        Body::Text(text) | Body::Html(text) => {
            if text.len() as u64 > MAX_INPUT_BYTES {
                return Err(input::InputError::TooLarge {
                    source_name: record.source.clone(),
                }
                .into());
            }
            text.as_bytes().to_vec()
        }
        Body::Invalid(problem) => return Err(ArticleFailure::Record(problem.clone())),
    };
    let digest = format!("{:x}", sha2::Sha256::digest(&bytes));
    Ok((bytes, digest))
}

/// Whether a folder's file is an article: `*.txt`, `*.html` or `*.htm`.
pub fn is_article_file(path: &Path) -> bool {
    matches!(extension(path), Some("txt" | "html" | "htm"))
}

fn extension(path: &Path) -> Option<&str> {
    path.extension().and_then(|e| e.to_str())
}

fn file_record(id: String, path: PathBuf) -> Record {
    let html = matches!(extension(&path), Some("html" | "htm"));
    Record {
        id,
        source: path.display().to_string(),
        body: Body::File { path, html },
        extra: Map::new(),
    }
}

/// The article files under `dir`: `*.txt`, `*.html` and `*.htm`, at any depth; hidden entries
/// and symbolic links to folders are left out (a link could loop).
fn walk(dir: &Path, files: &mut Vec<PathBuf>) -> Result<(), BatchError> {
    let read_error = |source| BatchError::Read {
        path: dir.display().to_string(),
        source,
    };
    for entry in std::fs::read_dir(dir).map_err(read_error)? {
        let entry = entry.map_err(read_error)?;
        let path = entry.path();
        if entry.file_name().to_string_lossy().starts_with('.') {
            continue;
        }
        let kind = entry.file_type().map_err(read_error)?;
        if kind.is_dir() {
            walk(&path, files)?;
        } else if (kind.is_file() || (kind.is_symlink() && path.is_file()))
            && is_article_file(&path)
        {
            files.push(path);
        }
    }
    Ok(())
}

/// The records of a JSONL file; a line that is not a usable record (not UTF-8, not JSON, no id,
/// no text) becomes an [`Body::Invalid`] record, with its id when it has one and `SOURCE:LINE`
/// otherwise, so that one bad line in a feed costs one article, not the batch.
fn jsonl_records(bytes: &[u8], source: &str) -> Vec<Record> {
    let bytes = bytes.strip_prefix("\u{feff}".as_bytes()).unwrap_or(bytes);
    bytes
        .split(|&b| b == b'\n')
        .enumerate()
        .filter(|(_, line)| !line.trim_ascii().is_empty())
        .map(|(index, line)| {
            let source = format!("{source}:{}", index + 1);
            let Ok(line) = std::str::from_utf8(line) else {
                return invalid(&source, None, "the line is not UTF-8".into());
            };
            let mut fields = match serde_json::from_str::<Value>(line) {
                Ok(Value::Object(fields)) => fields,
                Ok(_) => return invalid(&source, None, "the line is not a JSON object".into()),
                Err(e) => return invalid(&source, None, format!("the line is not JSON: {e}")),
            };
            let id = match fields.remove("id") {
                Some(Value::String(id)) if !id.trim().is_empty() => id,
                Some(Value::Number(n)) => n.to_string(),
                _ => {
                    return invalid(
                        &source,
                        None,
                        "the record has no \"id\" (a non-empty string or a number)".into(),
                    )
                }
            };
            let body = match (fields.remove("text"), fields.remove("html")) {
                (Some(Value::String(text)), None) => Body::Text(text),
                (None, Some(Value::String(html))) => Body::Html(html),
                (Some(_), Some(_)) => {
                    Body::Invalid("the record has both \"text\" and \"html\"; give one".into())
                }
                _ => Body::Invalid("the record has no \"text\" or \"html\" string".into()),
            };
            let body = match fields.keys().find(|k| RESULT_KEYS.contains(&k.as_str())) {
                Some(key) => Body::Invalid(format!(
                    "the record's field \"{key}\" has the name of one precis writes; rename it"
                )),
                None => body,
            };
            Record {
                id,
                source,
                body,
                extra: fields,
            }
        })
        .collect()
}

fn invalid(source: &str, id: Option<String>, problem: String) -> Record {
    Record {
        id: id.unwrap_or_else(|| source.to_string()),
        source: source.to_string(),
        body: Body::Invalid(problem),
        extra: Map::new(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn jsonl_records_keep_their_fields_and_bad_lines_become_invalid_records() {
        let text = concat!(
            "{\"id\": \"a\", \"text\": \"Bonjour.\", \"url\": \"https://example.org/a\"}\n",
            "\n",
            "{\"id\": 7, \"html\": \"<p>Salut</p>\"}\n",
            "{\"text\": \"sans id\"}\n",
            "not json\n",
            "{\"id\": \"b\", \"text\": \"x\", \"html\": \"y\"}\n",
            "{\"id\": \"c\", \"text\": \"x\", \"summary\": \"mine\"}\n",
            "{\"id\": \"d\"}\n",
        );
        let mut bytes = b"\xef\xbb\xbf".to_vec();
        bytes.extend_from_slice(text.as_bytes());
        bytes.extend_from_slice(b"{\"id\": \"e\", \"text\": \"caf\xe9\"}\r\n");
        let records = jsonl_records(&bytes, "feed.jsonl");
        let ids: Vec<&str> = records.iter().map(|r| r.id.as_str()).collect();
        assert_eq!(
            ids,
            [
                "a",
                "7",
                "feed.jsonl:4",
                "feed.jsonl:5",
                "b",
                "c",
                "d",
                "feed.jsonl:9"
            ]
        );
        assert!(matches!(&records[0].body, Body::Text(t) if t == "Bonjour."));
        assert_eq!(records[0].extra["url"], "https://example.org/a");
        assert_eq!(records[0].source, "feed.jsonl:1");
        assert!(records[1].body.is_html());
        for (record, needle) in records[2..].iter().zip([
            "no \"id\"",
            "not JSON",
            "both",
            "\"summary\"",
            "no \"text\"",
            "not UTF-8",
        ]) {
            match &record.body {
                Body::Invalid(problem) => assert!(problem.contains(needle), "{problem}"),
                other => panic!("{}: {other:?}", record.id),
            }
        }
    }

    #[test]
    fn folders_give_their_text_and_html_files_by_relative_path_and_ids_are_unique() {
        let dir = tempfile::tempdir().unwrap();
        let root = dir.path();
        std::fs::create_dir_all(root.join("sub")).unwrap();
        for name in ["b.txt", "a.html", "sub/c.htm", "notes.md", ".hidden.txt"] {
            std::fs::write(root.join(name), "Bonjour.").unwrap();
        }
        let records = collect(&[root.to_path_buf()]).unwrap();
        let ids: Vec<&str> = records.iter().map(|r| r.id.as_str()).collect();
        assert_eq!(ids, ["a.html", "b.txt", "sub/c.htm"]);
        assert!(records[0].body.is_html() && !records[1].body.is_html());

        // The same file given twice is one id twice.
        let file = root.join("b.txt");
        let error = collect(&[file.clone(), file]).unwrap_err();
        assert!(matches!(error, BatchError::DuplicateId { .. }), "{error}");
    }
}

//! Every error type of the library and the kind of failure each is: the one list `main` asks
//! ([`kind_of`]). It sits above every stage (it names their errors), and nothing in the library
//! imports it.

use std::error::Error;

use crate::failure::FailureKind;

/// The library's error types, each with its kind: the list [`kind_of`] reads.
macro_rules! kind_of_library_errors {
    ($($error:ty),* $(,)?) => {
        /// The kind of `error` if it is one of the library's error types.
        pub fn kind_of(error: &(dyn Error + 'static)) -> Option<FailureKind> {
            $(
                if let Some(e) = error.downcast_ref::<$error>() {
                    return Some(e.kind());
                }
            )*
            None
        }

        #[cfg(test)]
        const LIBRARY_ERRORS: &[&str] = &[$(stringify!($error)),*];
    };
}

kind_of_library_errors!(
    crate::files::OutputError,
    crate::text::input::InputError,
    crate::fidelity::GlossaryError,
    crate::load::LoadError,
    crate::pipeline::PipelineError,
    crate::batch::BatchError,
    crate::batch::ArticleFailure,
    crate::engines::EngineError,
    crate::engines::embedder::EmbedError,
    crate::infer::InferError,
    crate::infer::kernels::MatrixError,
    crate::tokenize::TokenizeError,
);

#[cfg(test)]
mod tests {
    use super::*;
    use crate::failure::FailureKind;

    /// Every `thiserror` type under src/ (the library's errors) is in `kind_of`'s list.
    #[test]
    fn kind_of_knows_every_library_error() {
        fn walk(dir: &std::path::Path, found: &mut Vec<String>) {
            for entry in std::fs::read_dir(dir).unwrap() {
                let path = entry.unwrap().path();
                if path.is_dir() {
                    walk(&path, found);
                } else if path.extension().is_some_and(|e| e == "rs") {
                    let text = std::fs::read_to_string(&path).unwrap();
                    let mut lines = text.lines();
                    while let Some(line) = lines.next() {
                        if line.trim_start().starts_with("#[derive(")
                            && line.contains("thiserror::Error")
                        {
                            let item = lines.find(|l| !l.trim_start().starts_with("#[")).unwrap();
                            let name = item
                                .split_whitespace()
                                .skip_while(|w| *w != "enum" && *w != "struct")
                                .nth(1)
                                .unwrap()
                                .trim_end_matches(['{', '(', ';']);
                            found.push(name.to_string());
                        }
                    }
                }
            }
        }
        let src = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("src");
        let mut found = Vec::new();
        walk(&src, &mut found);
        // The binary's own failure type is mapped in main.rs.
        found.retain(|name| name != "CommandFailure");
        assert!(found.len() >= 8, "{found:?}");
        for name in found {
            assert!(
                LIBRARY_ERRORS
                    .iter()
                    .any(|e| e.ends_with(&format!("::{name}"))),
                "{name} is not in kind_of's list (src/errors.rs)"
            );
        }
    }

    #[test]
    fn kind_of_finds_a_library_error_and_nothing_else() {
        let error = crate::pipeline::PipelineError::Interrupted;
        assert_eq!(kind_of(&error), Some(FailureKind::Interrupted));
        let other = std::io::Error::other("not ours");
        assert_eq!(kind_of(&other), None);
    }
}

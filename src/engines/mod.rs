//! Engines compose load, tokenise and infer into the capabilities the pipeline needs.

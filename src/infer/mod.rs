//! Stage 3, infer: model definitions and the decoding loops that drive them.

//! Stage 1, load: which models exist (the catalog), where their files live (the Hugging Face
//! cache), how they get there (hub or pip mirror), and whether they are intact.

//! Embeds every `models/*.toml` catalog entry into the binary, so the catalog lives in one place
//! (the `models/` folder) and the installed tool needs no data files beside it.

use std::{env, fs, path::PathBuf};

fn main() {
    let manifest_dir = PathBuf::from(env::var("CARGO_MANIFEST_DIR").expect("set by cargo"));
    let models_dir = manifest_dir.join("models");
    println!("cargo:rerun-if-changed={}", models_dir.display());

    let mut entries: Vec<PathBuf> = fs::read_dir(&models_dir)
        .expect("models/ folder is part of the crate")
        .map(|entry| entry.expect("readable models/ entry").path())
        .filter(|path| path.extension().is_some_and(|ext| ext == "toml"))
        .collect();
    entries.sort();

    let mut generated = String::from("&[\n");
    for path in &entries {
        println!("cargo:rerun-if-changed={}", path.display());
        let name = path.file_name().unwrap().to_string_lossy();
        generated.push_str(&format!(
            "    ({name:?}, include_str!({:?})),\n",
            path.display().to_string()
        ));
    }
    generated.push_str("]\n");
    let out = PathBuf::from(env::var("OUT_DIR").expect("set by cargo")).join("catalog_entries.rs");
    fs::write(out, generated).expect("OUT_DIR is writable");
}

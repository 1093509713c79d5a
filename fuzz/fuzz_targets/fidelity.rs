//! The fidelity check's number, date, name and quotation extraction on arbitrary text pairs
//! (French source | English output): no panic, whatever the text.
#![no_main]

use libfuzzer_sys::fuzz_target;
use precis::fidelity::{check_summary, check_translation};

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    let (french, english) = text.split_once('|').unwrap_or((text, text));
    let _ = check_translation(french, english, 0);
    let _ = check_summary(french, english);
});

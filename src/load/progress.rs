//! Progress bars for downloads and imports, drawn on stderr (indicatif draws nothing when stderr
//! is not a terminal, so piped and CI output stays clean).

use std::sync::{
    atomic::{AtomicU64, Ordering},
    Arc,
};

use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle};

pub(crate) fn bytes_bar(len: u64, message: &str, visible: bool) -> ProgressBar {
    let target = if visible {
        ProgressDrawTarget::stderr()
    } else {
        ProgressDrawTarget::hidden()
    };
    let bar = ProgressBar::with_draw_target(Some(len), target);
    bar.set_style(
        ProgressStyle::with_template(
            "{msg:30!} [{bar:30}] {bytes:>10}/{total_bytes:<10} {bytes_per_sec:>12} eta {eta}",
        )
        .expect("static template")
        .progress_chars("=> "),
    );
    bar.set_message(message.to_string());
    bar
}

/// Adapts an indicatif bar to hf-hub's progress callbacks.
pub(crate) struct HubProgress {
    pub(crate) visible: bool,
    pub(crate) bar: Option<ProgressBar>,
    /// Counts the callbacks (an answer, received bytes), so a watchdog can see a stalled
    /// transfer.
    pub(crate) activity: Arc<AtomicU64>,
}

/// By reference, so that the resumes of one download share one bar.
impl hf_hub::api::Progress for &mut HubProgress {
    fn init(&mut self, size: usize, filename: &str) {
        self.activity.fetch_add(1, Ordering::Relaxed);
        // hf-hub calls init again when it resumes; keep one bar.
        let bar = self
            .bar
            .get_or_insert_with(|| bytes_bar(size as u64, filename, self.visible));
        bar.set_length(size as u64);
        bar.set_position(0);
    }

    fn update(&mut self, size: usize) {
        self.activity.fetch_add(1, Ordering::Relaxed);
        if let Some(bar) = &self.bar {
            bar.inc(size as u64);
        }
    }

    fn finish(&mut self) {
        if let Some(bar) = &self.bar {
            bar.finish();
        }
    }
}

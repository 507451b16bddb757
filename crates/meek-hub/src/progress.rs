//! Download progress: the bars drawn on standard error, and the hf-hub handler that feeds one.
//!
//! Bars are hidden unless [`Fetcher::with_progress`] asked for them. The handler also records when data last
//! arrived, which is how the hub source tells a slow download from one that stopped.

use std::sync::{Arc, Mutex};
use std::time::Instant;

use indicatif::{ProgressBar, ProgressStyle};

use crate::Fetcher;

impl Fetcher {
    /// A progress bar showing `msg`, hidden unless progress is shown.
    pub(crate) fn bar(&self, msg: &str) -> ProgressBar {
        if !self.show_progress {
            return ProgressBar::hidden();
        }
        let bar = ProgressBar::new(0);
        bar.set_style(
            ProgressStyle::with_template(
                "{spinner} {msg} {bytes}/{total_bytes} ({bytes_per_sec}, {eta})",
            )
            .expect("valid template"),
        );
        bar.set_message(msg.to_string());
        bar
    }
}

/// Shows download progress and records when data last arrived.
pub(crate) struct BarHandler(pub(crate) ProgressBar, pub(crate) Arc<Mutex<Instant>>);

impl hf_hub::progress::ProgressHandler for BarHandler {
    fn on_progress(&self, event: &hf_hub::progress::ProgressEvent) {
        if let Ok(mut t) = self.1.lock() {
            *t = Instant::now();
        }
        use hf_hub::progress::{DownloadEvent, ProgressEvent};
        if let ProgressEvent::Download(ev) = event {
            match ev {
                DownloadEvent::Start { total_bytes, .. } => self.0.set_length(*total_bytes),
                DownloadEvent::Progress { files } => {
                    for f in files {
                        self.0.set_position(f.bytes_completed);
                    }
                }
                DownloadEvent::AggregateProgress {
                    bytes_completed, ..
                } => self.0.set_position(*bytes_completed),
                _ => {}
            }
        }
    }
}

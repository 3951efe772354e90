//! Progress bars of the native training code (tokenizing, reading shards, checking ids,
//! training steps), built in one place so that they all look alike.

use indicatif::{ProgressBar, ProgressStyle};

/// A bar of `len` units drawn with `template` (indicatif's syntax) on a terminal; a hidden
/// bar when `show` is false, so that callers update it either way.
pub(crate) fn bar(show: bool, len: u64, template: &str) -> ProgressBar {
    if !show {
        return ProgressBar::hidden();
    }
    let style = ProgressStyle::with_template(template)
        .expect("a valid progress-bar template")
        .progress_chars("=> ");
    ProgressBar::new(len).with_style(style)
}

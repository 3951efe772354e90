//! Durable writes: a file or a whole directory is replaced so that a crash at any point leaves
//! either the old one or the new one complete, never a mix.
//!
//! The new content is written beside the old under a hidden name (`.NAME.tmp-PID` for a file,
//! `.NAME.saving` for a directory), fsynced, then renamed over the old one, and the parent
//! directory is fsynced so the rename itself survives a power loss. A directory cannot be
//! renamed over another, so its swap takes two renames (`NAME` -> `.NAME.previous`, then
//! `.NAME.saving` -> `NAME`); [`resolve_for_read`] and the next replacement recover from a
//! crash between them. See [`replace_dir_atomically`].
//!
//! Callers write plain files: making them durable is this module's job.

mod fsync;
mod replace_dir;
mod replace_file;

pub use replace_dir::replace_dir_atomically;
pub(super) use replace_dir::{replace_dir_with_hook, resolve_for_read, SaveStep};
pub(super) use replace_file::replace_file_atomically;

use std::ffi::OsStr;
use std::path::{Path, PathBuf};

/// The directory holding `path` (`.` for a bare name).
fn parent_of(path: &Path) -> PathBuf {
    match path.parent() {
        Some(p) if !p.as_os_str().is_empty() => p.to_path_buf(),
        _ => PathBuf::from("."),
    }
}

/// `.{name}{suffix}` in `parent`: the hidden sibling where a replacement of `name` is staged.
fn hidden_sibling(parent: &Path, name: &OsStr, suffix: &str) -> PathBuf {
    let mut s = OsStr::new(".").to_os_string();
    s.push(name);
    s.push(suffix);
    parent.join(s)
}

//! Replacing one file atomically: write a hidden sibling, fsync it, rename it over the file.

use super::fsync::{sync_dir, sync_file};
use super::{hidden_sibling, parent_of};
use crate::error::Result;
use crate::model::checkpoint::{file_err, io_err};
use std::fs;
use std::path::Path;

/// Replace the file `path` atomically by one that `write` writes: `write` gets a temporary
/// path beside `path` (in the same directory, so that the rename is atomic); the file is then
/// fsynced and renamed over `path`, and the directory fsynced. If anything fails, the
/// temporary file is deleted and `path` is unchanged. Creates the directory if needed.
pub(in crate::model::checkpoint) fn replace_file_atomically(
    path: &Path,
    write: impl FnOnce(&Path) -> Result<()>,
) -> Result<()> {
    let name = path
        .file_name()
        .ok_or_else(|| file_err(path, None, "is not a file name"))?;
    let parent = parent_of(path);
    fs::create_dir_all(&parent).map_err(|e| io_err(&parent, "create the directory", e))?;
    let tmp = hidden_sibling(&parent, name, &format!(".tmp-{}", std::process::id()));
    let written = write(&tmp)
        .and_then(|()| sync_file(&tmp).map_err(|e| io_err(path, "flush the file to disk", e)))
        .and_then(|()| {
            fs::rename(&tmp, path).map_err(|e| io_err(path, "move the new file into place", e))
        });
    if written.is_err() {
        let _ = fs::remove_file(&tmp);
    }
    written?;
    sync_dir(&parent).map_err(|e| io_err(&parent, "flush the directory to disk", e))
}

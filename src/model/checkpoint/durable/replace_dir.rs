//! Replacing a directory atomically, and recovering from a crash in the middle of it.
//!
//! The steps: any leftover of an interrupted swap is recovered first; the new directory is
//! filled and fsynced in `.NAME.saving`; `NAME` is renamed to `.NAME.previous`; `.NAME.saving`
//! is renamed to `NAME`; `.NAME.previous` is deleted. After a crash between the two renames
//! only `.NAME.previous` holds a complete directory: [`resolve_for_read`] reads it from there,
//! and the next replacement puts it back first ([`recover`]).

use super::fsync::{sync_dir, sync_tree};
use super::{hidden_sibling, parent_of};
use crate::error::Result;
use crate::model::checkpoint::{file_err, io_err, CONFIG_FILE};
use std::fs;
use std::io;
use std::path::{Path, PathBuf};

/// Replace the directory `dir` atomically by one that `fill` writes: `fill` gets an empty
/// staging directory beside `dir`; its files are fsynced, then swapped in (see the module
/// docs). If `fill` fails, nothing changes. `dir` must be missing, empty or a checkpoint
/// (it holds a config.json).
pub fn replace_dir_atomically(dir: &Path, mut fill: impl FnMut(&Path) -> Result<()>) -> Result<()> {
    replace_dir_with_hook(dir, &mut fill, &mut |_| Ok(()))
}

/// The swap, with `hook` called after each step: an `Err` from it returns at once, without
/// any cleanup, as a crash would.
pub(in crate::model::checkpoint) fn replace_dir_with_hook(
    dir: &Path,
    fill: &mut dyn FnMut(&Path) -> Result<()>,
    hook: &mut dyn FnMut(SaveStep) -> Result<()>,
) -> Result<()> {
    let p = SwapPaths::new(dir)?;
    fs::create_dir_all(&p.parent).map_err(|e| io_err(&p.parent, "create the directory", e))?;
    recover(&p)?;
    let has_previous = check_replaceable(&p.dir)?;

    fs::create_dir(&p.staging).map_err(|e| io_err(&p.staging, "create the directory", e))?;
    let filled = fill(&p.staging).and_then(|()| {
        sync_tree(&p.staging).map_err(|e| io_err(&p.staging, "flush the new files to disk", e))
    });
    if let Err(e) = filled {
        let _ = fs::remove_dir_all(&p.staging);
        return Err(e);
    }
    hook(SaveStep::Staged)?;

    if has_previous {
        let moved = fs::rename(&p.dir, &p.previous)
            .map_err(|e| io_err(&p.dir, "move the previous checkpoint aside", e))
            .and_then(|()| {
                sync_dir(&p.parent).map_err(|e| io_err(&p.parent, "flush the directory", e))
            });
        if let Err(e) = moved {
            let _ = fs::rename(&p.previous, &p.dir);
            let _ = fs::remove_dir_all(&p.staging);
            return Err(e);
        }
        hook(SaveStep::PreviousMovedAside)?;
    }

    if let Err(e) = fs::rename(&p.staging, &p.dir) {
        if has_previous {
            let _ = fs::rename(&p.previous, &p.dir);
        }
        let _ = fs::remove_dir_all(&p.staging);
        return Err(io_err(&p.dir, "move the new checkpoint into place", e));
    }
    sync_dir(&p.parent).map_err(|e| io_err(&p.parent, "flush the directory", e))?;
    hook(SaveStep::NewInPlace)?;

    if has_previous {
        if let Err(e) = fs::remove_dir_all(&p.previous) {
            // The new checkpoint is complete; the next save deletes the leftover.
            log::warn!("could not delete {}: {e}", p.previous.display());
        }
    }
    Ok(())
}

/// The directory to read a checkpoint from: `dir`, or its `.previous` copy when a save was
/// interrupted between its two renames.
pub(in crate::model::checkpoint) fn resolve_for_read(dir: &Path) -> Result<PathBuf> {
    if dir.is_dir() {
        return Ok(dir.to_path_buf());
    }
    if let Ok(p) = SwapPaths::new(dir) {
        if p.previous.is_dir() {
            log::warn!(
                "{}: a save to this checkpoint was interrupted; reading the previous checkpoint \
                 from {} (the next save puts it back in place)",
                dir.display(),
                p.previous.display()
            );
            return Ok(p.previous);
        }
    }
    Err(file_err(
        dir,
        None,
        if dir.exists() {
            "is not a directory: a checkpoint is a directory holding config.json and \
             model.safetensors"
        } else {
            "no such checkpoint directory"
        },
    ))
}

/// The directory being replaced and its two siblings.
struct SwapPaths {
    dir: PathBuf,
    parent: PathBuf,
    staging: PathBuf,
    previous: PathBuf,
}

impl SwapPaths {
    fn new(dir: &Path) -> Result<Self> {
        // Replace what a symlink points to, not the link.
        let dir = match fs::symlink_metadata(dir) {
            Ok(m) if m.file_type().is_symlink() => {
                fs::canonicalize(dir).map_err(|e| io_err(dir, "resolve the symbolic link", e))?
            }
            _ => dir.to_path_buf(),
        };
        let name = dir.file_name().ok_or_else(|| {
            file_err(
                &dir,
                None,
                "cannot be a checkpoint directory: name one, e.g. runs/tiny/step_1000",
            )
        })?;
        let parent = parent_of(&dir);
        Ok(SwapPaths {
            staging: hidden_sibling(&parent, name, ".saving"),
            previous: hidden_sibling(&parent, name, ".previous"),
            parent,
            dir,
        })
    }
}

/// The points between the steps of a directory swap, where the tests simulate a crash.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(in crate::model::checkpoint) enum SaveStep {
    /// The new directory is complete and fsynced beside the old one.
    Staged,
    /// The old directory has been renamed to `.NAME.previous`; `NAME` does not exist.
    PreviousMovedAside,
    /// The new directory is in place; `.NAME.previous` is still there.
    NewInPlace,
}

/// Finish or undo what an interrupted swap left: put `.previous` back if `dir` is missing,
/// delete it if `dir` is there (then `dir` is the complete new one), delete a partial staging.
fn recover(p: &SwapPaths) -> Result<()> {
    let dir_exists = fs::symlink_metadata(&p.dir).is_ok();
    if fs::symlink_metadata(&p.previous).is_ok() {
        if dir_exists {
            fs::remove_dir_all(&p.previous)
                .map_err(|e| io_err(&p.previous, "delete the leftover previous checkpoint", e))?;
        } else {
            fs::rename(&p.previous, &p.dir).map_err(|e| {
                io_err(
                    &p.previous,
                    "move the previous checkpoint back in place (do it by hand, then save again)",
                    e,
                )
            })?;
            sync_dir(&p.parent).map_err(|e| io_err(&p.parent, "flush the directory", e))?;
            log::warn!(
                "{}: restored the previous checkpoint: the last save to it was interrupted",
                p.dir.display()
            );
        }
    }
    if fs::symlink_metadata(&p.staging).is_ok() {
        fs::remove_dir_all(&p.staging)
            .map_err(|e| io_err(&p.staging, "delete the unfinished save", e))?;
    }
    Ok(())
}

/// Whether `dir` exists and may be replaced (missing: false; a checkpoint or empty: true).
fn check_replaceable(dir: &Path) -> Result<bool> {
    match fs::symlink_metadata(dir) {
        Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(false),
        Err(e) => Err(io_err(dir, "inspect the directory", e)),
        Ok(m) if !m.is_dir() => Err(file_err(
            dir,
            None,
            "exists and is not a directory: a checkpoint is a directory; choose another path",
        )),
        Ok(_) => {
            let mut entries =
                fs::read_dir(dir).map_err(|e| io_err(dir, "list the directory", e))?;
            let empty = entries.next().is_none();
            if empty || dir.join(CONFIG_FILE).exists() {
                Ok(true)
            } else {
                Err(file_err(
                    dir,
                    None,
                    "refusing to replace this directory: it holds files but no config.json, so \
                     it is not a checkpoint, and saving replaces the whole directory. Choose a \
                     new or empty directory",
                ))
            }
        }
    }
}

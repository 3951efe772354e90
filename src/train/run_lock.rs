//! One trainer per run directory: an advisory lock on `RUN/.wgtrain.lock`, held for the
//! trainer's life. The operating system drops it when the process ends, however it ends
//! (kill -9 included), so a crashed run never leaves its directory locked; the file keeps the
//! holder's pid only to name it in the refusal.

use crate::error::{Error, Result};
use std::fs::{File, OpenOptions, TryLockError};
use std::io::{Read, Seek, SeekFrom, Write};
use std::path::{Path, PathBuf};

/// The lock file's name inside a run directory.
pub const LOCK_FILE: &str = ".wgtrain.lock";

/// A held lock on a run directory; released when dropped.
#[derive(Debug)]
pub struct RunLock {
    _file: File,
    path: PathBuf,
}

impl RunLock {
    /// Take the run directory `run_dir` (which must exist) for this process, or explain who
    /// holds it.
    pub fn acquire(run_dir: &Path) -> Result<RunLock> {
        let path = run_dir.join(LOCK_FILE);
        let mut file = OpenOptions::new()
            .read(true)
            .write(true)
            .create(true)
            .truncate(false)
            .open(&path)
            .map_err(|e| Error::Invalid(format!("cannot open {}: {e}", path.display())))?;
        match file.try_lock() {
            Ok(()) => {}
            Err(TryLockError::WouldBlock) => {
                let mut holder = String::new();
                let _ = file.read_to_string(&mut holder);
                let holder = holder.trim();
                let who = if holder.is_empty() {
                    "another process".to_string()
                } else {
                    format!("process {holder}")
                };
                return Err(Error::Invalid(format!(
                    "{} is in use by another trainer ({who}): wait for it to finish or stop \
                     it (Ctrl-C saves a checkpoint), or train into another run directory",
                    run_dir.display()
                )));
            }
            Err(TryLockError::Error(e)) => {
                return Err(Error::Invalid(format!(
                    "cannot lock {}: {e}",
                    path.display()
                )))
            }
        }
        // Record the holder (for the message above); the lock, not the text, is what counts.
        let _ = file
            .set_len(0)
            .and_then(|()| file.seek(SeekFrom::Start(0)))
            .and_then(|_| write!(file, "{}", std::process::id()));
        Ok(RunLock { _file: file, path })
    }

    pub fn path(&self) -> &Path {
        &self.path
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_second_lock_on_a_run_directory_is_refused_until_the_first_is_dropped() {
        let dir = std::env::temp_dir().join(format!("wgtrain-lock-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let first = RunLock::acquire(&dir).unwrap();
        let e = RunLock::acquire(&dir).unwrap_err().to_string();
        assert!(
            e.contains("in use by another trainer")
                && e.contains(&format!("process {}", std::process::id())),
            "{e}"
        );
        drop(first);
        // Another test of this binary may be forking a child at this moment: until that child
        // execs, it shares the descriptor and with it the lock, so allow it a moment to go.
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
        let again = loop {
            match RunLock::acquire(&dir) {
                Ok(lock) => break lock,
                Err(_) if std::time::Instant::now() < deadline => {
                    std::thread::sleep(std::time::Duration::from_millis(20));
                }
                Err(e) => panic!("the lock was not released when dropped: {e}"),
            }
        };
        assert!(again.path().is_file());
        drop(again);
        std::fs::remove_dir_all(&dir).ok();
    }
}

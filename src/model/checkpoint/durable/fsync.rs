//! fsync: making files, and the directory entries that name them, durable before a rename
//! publishes them.

use std::fs;
use std::io;
use std::path::Path;

/// `path` opened so that it can be fsynced.
fn open_for_sync(path: &Path) -> io::Result<fs::File> {
    // Windows needs write access to flush a file; elsewhere read access is enough.
    fs::OpenOptions::new()
        .read(true)
        .write(cfg!(windows))
        .open(path)
}

/// fsync the file `path`.
pub(super) fn sync_file(path: &Path) -> io::Result<()> {
    open_for_sync(path)?.sync_all()
}

/// Make a directory's entries durable (renames, new files). Not possible on Windows, and some
/// filesystems refuse it: those cases are not errors.
pub(super) fn sync_dir(dir: &Path) -> io::Result<()> {
    #[cfg(unix)]
    {
        match fs::File::open(dir).and_then(|f| f.sync_all()) {
            Err(e)
                if matches!(
                    e.kind(),
                    io::ErrorKind::InvalidInput | io::ErrorKind::Unsupported
                ) =>
            {
                Ok(())
            }
            r => r,
        }
    }
    #[cfg(not(unix))]
    {
        let _ = dir;
        Ok(())
    }
}

/// fsync every file and directory under `dir`, `dir` included.
pub(super) fn sync_tree(dir: &Path) -> io::Result<()> {
    for entry in fs::read_dir(dir)? {
        let entry = entry?;
        let kind = entry.file_type()?;
        if kind.is_dir() {
            sync_tree(&entry.path())?;
        } else if kind.is_file() {
            sync_file(&entry.path())?;
        }
    }
    sync_dir(dir)
}

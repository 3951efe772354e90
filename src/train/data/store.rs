//! Where token ids live once a data source is open: in memory, or in a little-endian file
//! (a `.bin` input or a token cache) read on demand with positioned reads, so that a large
//! dataset costs no memory beyond the window being read.

use super::spec::BinDtype;
use crate::error::{Error, Result};
use indicatif::ProgressBar;
use std::fs::File;
use std::path::Path;

/// Where ids live: in memory, or in a little-endian file read on demand.
pub(super) enum StoreData {
    Memory(Vec<u32>),
    File { file: File, dtype: BinDtype },
}

/// The token ids of an open data source (or of one `.bin` file of it).
pub(super) struct Store {
    pub(super) data: StoreData,
    /// Length in ids.
    pub(super) len: u64,
}

impl Store {
    /// Ids held in memory (a conversion that was not cached).
    pub(super) fn in_memory(ids: Vec<u32>) -> Store {
        Store {
            len: ids.len() as u64,
            data: StoreData::Memory(ids),
        }
    }

    /// The `len` ids of a little-endian file of `dtype` ids, read on demand.
    pub(super) fn open_file(path: &Path, dtype: BinDtype, len: u64) -> Result<Store> {
        let file = File::open(path)
            .map_err(|e| Error::Invalid(format!("cannot open {}: {e}", path.display())))?;
        Ok(Store {
            data: StoreData::File { file, dtype },
            len,
        })
    }

    /// Appends ids `start .. start + n` to `out`.
    pub(super) fn read(&self, start: u64, n: usize, out: &mut Vec<u32>) -> Result<()> {
        debug_assert!(start + n as u64 <= self.len);
        match &self.data {
            StoreData::Memory(v) => out.extend_from_slice(&v[start as usize..start as usize + n]),
            StoreData::File { file, dtype } => {
                let b = dtype.bytes();
                let mut buf = vec![0u8; n * b];
                read_exact_at(file, &mut buf, start * b as u64)
                    .map_err(|e| Error::Invalid(format!("reading token data failed: {e}")))?;
                decode_ids(&buf, *dtype, out);
            }
        }
        Ok(())
    }

    /// The position and value of the first id `>= limit`, reading in chunks.
    pub(super) fn find_id_at_least(
        &self,
        limit: u64,
        bar: &ProgressBar,
    ) -> Result<Option<(u64, u32)>> {
        let chunk = 1 << 20;
        let mut buf = Vec::with_capacity(chunk);
        let mut pos = 0u64;
        while pos < self.len {
            let n = chunk.min((self.len - pos) as usize);
            buf.clear();
            self.read(pos, n, &mut buf)?;
            if let Some(i) = buf.iter().position(|&id| id as u64 >= limit) {
                return Ok(Some((pos + i as u64, buf[i])));
            }
            pos += n as u64;
            bar.inc(n as u64);
        }
        Ok(None)
    }
}

fn decode_ids(bytes: &[u8], dtype: BinDtype, out: &mut Vec<u32>) {
    match dtype {
        BinDtype::U16 => out.extend(
            bytes
                .chunks_exact(2)
                .map(|c| u16::from_le_bytes([c[0], c[1]]) as u32),
        ),
        BinDtype::U32 => out.extend(
            bytes
                .chunks_exact(4)
                .map(|c| u32::from_le_bytes([c[0], c[1], c[2], c[3]])),
        ),
    }
}

#[cfg(unix)]
fn read_exact_at(file: &File, buf: &mut [u8], offset: u64) -> std::io::Result<()> {
    std::os::unix::fs::FileExt::read_exact_at(file, buf, offset)
}

#[cfg(not(unix))]
fn read_exact_at(mut file: &File, buf: &mut [u8], offset: u64) -> std::io::Result<()> {
    use std::io::{Read, Seek, SeekFrom};
    file.seek(SeekFrom::Start(offset))?;
    file.read_exact(buf)
}

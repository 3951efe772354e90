//! Converted token streams (text and parquet inputs turned into ids) and their cache: a flat
//! file of little-endian `u32` ids plus a JSON description, keyed by a hash of the inputs,
//! so that a dataset is tokenized once and later opens only read it.

use super::spec::{BinDtype, DataKind};
use super::store::Store;
use crate::error::{Error, Result};
use crate::train::tokenizer::{fnv1a64, FNV_OFFSET};
use serde::{Deserialize, Serialize};
use std::fs::File;
use std::io::{BufWriter, Write};
use std::path::{Path, PathBuf};

/// Version of the token-cache format; bump when it changes.
const CACHE_VERSION: u32 = 1;

/// A file's part of a converted stream.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub(super) struct FileSpan {
    pub(super) path: PathBuf,
    /// First id of the file in the stream.
    pub(super) start: u64,
    len: u64,
    /// Parquet rows as runs of (row length, row count); empty for text.
    pub(super) rows: Vec<(u64, u64)>,
}

/// What a converted stream holds; saved next to a cached stream as JSON.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub(super) struct StreamMeta {
    version: u32,
    kind: DataKind,
    pub(super) n_tokens: u64,
    pub(super) max_id: u32,
    /// Documents (text) or rows (parquet).
    pub(super) docs: u64,
    pub(super) files: Vec<FileSpan>,
}

impl StreamMeta {
    /// File, offset in the file's ids, and (row, position in row) for parquet, of stream
    /// position `pos`.
    pub(super) fn locate(&self, pos: u64) -> (&Path, u64, Option<(u64, u64)>) {
        let i = self
            .files
            .partition_point(|f| f.start <= pos)
            .saturating_sub(1);
        let f = &self.files[i];
        let mut off = pos - f.start;
        let in_file = off;
        let mut rows_before = 0;
        for &(len, count) in &f.rows {
            if off < len * count {
                return (&f.path, in_file, Some((rows_before + off / len, off % len)));
            }
            off -= len * count;
            rows_before += count;
        }
        (&f.path, in_file, None)
    }
}

/// Where a [`StreamWriter`] puts the ids: memory, or the cache file being built.
enum Sink {
    Memory(Vec<u32>),
    File(BufWriter<File>),
}

/// Builds a converted stream: ids go to memory or a cache file; tracks files and rows.
pub(super) struct StreamWriter {
    sink: Sink,
    n_tokens: u64,
    max_id: u32,
    files: Vec<FileSpan>,
    bytes: Vec<u8>,
}

impl StreamWriter {
    fn new(sink: Sink) -> Self {
        StreamWriter {
            sink,
            n_tokens: 0,
            max_id: 0,
            files: Vec::new(),
            bytes: Vec::new(),
        }
    }

    pub(super) fn begin_file(&mut self, path: &Path) {
        self.close_span();
        self.files.push(FileSpan {
            path: path.to_path_buf(),
            start: self.n_tokens,
            len: 0,
            rows: Vec::new(),
        });
    }

    fn close_span(&mut self) {
        if let Some(f) = self.files.last_mut() {
            f.len = self.n_tokens - f.start;
        }
    }

    pub(super) fn push(&mut self, ids: &[u32]) -> Result<()> {
        if let Some(&m) = ids.iter().max() {
            self.max_id = self.max_id.max(m);
        }
        self.n_tokens += ids.len() as u64;
        match &mut self.sink {
            Sink::Memory(v) => v.extend_from_slice(ids),
            Sink::File(w) => {
                self.bytes.clear();
                for id in ids {
                    self.bytes.extend_from_slice(&id.to_le_bytes());
                }
                w.write_all(&self.bytes)
                    .map_err(|e| Error::Invalid(format!("writing the token cache failed: {e}")))?;
            }
        }
        Ok(())
    }

    /// Records a parquet row of `len` ids (already pushed) in the current file.
    pub(super) fn add_row(&mut self, len: u64) {
        let f = self.files.last_mut().expect("begin_file before add_row");
        match f.rows.last_mut() {
            Some((l, c)) if *l == len => *c += 1,
            _ => f.rows.push((len, 1)),
        }
    }
}

/// Describes the inputs for a cache key: paths, sizes and modification times.
fn inputs_key(tag: &str, files: &[PathBuf]) -> Result<String> {
    let mut key = format!("wgtrain token cache v{CACHE_VERSION}\n{tag}\n");
    for f in files {
        let md = std::fs::metadata(f)
            .map_err(|e| Error::Invalid(format!("cannot read {}: {e}", f.display())))?;
        let mtime = md
            .modified()
            .ok()
            .and_then(|t| t.duration_since(std::time::UNIX_EPOCH).ok())
            .map_or(0, |d| d.as_nanos());
        let canon = std::fs::canonicalize(f).unwrap_or_else(|_| f.clone());
        key.push_str(&format!("{}\t{}\t{mtime}\n", canon.display(), md.len()));
    }
    let a = fnv1a64(FNV_OFFSET, key.as_bytes());
    let b = fnv1a64(0x6C62_272E_07BB_0142, key.as_bytes());
    Ok(format!("{a:016x}{b:016x}"))
}

/// The converted stream of `files`: from the cache when there, else built by `build` (which
/// returns the number of documents or rows) and cached.
pub(super) fn token_stream(
    kind: DataKind,
    tag: &str,
    files: &[PathBuf],
    cache_dir: Option<&Path>,
    build: impl FnOnce(&mut StreamWriter) -> Result<u64>,
) -> Result<(Store, StreamMeta)> {
    let finish = |w: &mut StreamWriter, docs: u64| {
        w.close_span();
        StreamMeta {
            version: CACHE_VERSION,
            kind,
            n_tokens: w.n_tokens,
            max_id: w.max_id,
            docs,
            files: std::mem::take(&mut w.files),
        }
    };
    let cache = match cache_dir {
        Some(dir) => match std::fs::create_dir_all(dir) {
            Ok(()) => Some(dir),
            Err(e) => {
                log::warn!(
                    "cannot create the token cache {}: {e}; keeping tokens in memory",
                    dir.display()
                );
                None
            }
        },
        None => None,
    };
    let Some(dir) = cache else {
        let mut w = StreamWriter::new(Sink::Memory(Vec::new()));
        let docs = build(&mut w)?;
        let meta = finish(&mut w, docs);
        let Sink::Memory(ids) = w.sink else {
            unreachable!()
        };
        return Ok((Store::in_memory(ids), meta));
    };

    let key = inputs_key(tag, files)?;
    let bin_path = dir.join(format!("{key}.u32"));
    let meta_path = dir.join(format!("{key}.json"));
    if let Some(meta) = read_cached_meta(&meta_path, &bin_path) {
        log::info!("using cached tokens {}", bin_path.display());
        let store = Store::open_file(&bin_path, BinDtype::U32, meta.n_tokens)?;
        return Ok((store, meta));
    }

    // Unique per process and per build, so that concurrent builds never share a file.
    static BUILDS: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);
    let n = BUILDS.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
    let tmp = dir.join(format!("{key}.u32.tmp{}-{n}", std::process::id()));
    let file = File::create(&tmp).map_err(|e| {
        Error::Invalid(format!(
            "cannot write the token cache {}: {e} (set another cache directory, or none)",
            tmp.display()
        ))
    })?;
    let mut w = StreamWriter::new(Sink::File(BufWriter::with_capacity(1 << 20, file)));
    let built = build(&mut w).and_then(|docs| {
        let meta = finish(&mut w, docs);
        if let Sink::File(f) = &mut w.sink {
            f.flush()
                .map_err(|e| Error::Invalid(format!("writing the token cache failed: {e}")))?;
        }
        Ok(meta)
    });
    drop(w);
    let meta = match built {
        Ok(m) => m,
        Err(e) => {
            let _ = std::fs::remove_file(&tmp);
            return Err(e);
        }
    };
    let save = || -> std::io::Result<()> {
        std::fs::rename(&tmp, &bin_path)?;
        let meta_tmp = dir.join(format!("{key}.json.tmp{}-{n}", std::process::id()));
        std::fs::write(&meta_tmp, serde_json::to_vec(&meta)?)?;
        std::fs::rename(&meta_tmp, &meta_path)
    };
    save().map_err(|e| {
        Error::Invalid(format!(
            "cannot write the token cache in {}: {e}",
            dir.display()
        ))
    })?;
    log::info!("cached {} tokens in {}", meta.n_tokens, bin_path.display());
    let store = Store::open_file(&bin_path, BinDtype::U32, meta.n_tokens)?;
    Ok((store, meta))
}

fn read_cached_meta(meta_path: &Path, bin_path: &Path) -> Option<StreamMeta> {
    let meta: StreamMeta = serde_json::from_slice(&std::fs::read(meta_path).ok()?).ok()?;
    let len = std::fs::metadata(bin_path).ok()?.len();
    (meta.version == CACHE_VERSION && len == meta.n_tokens * 4).then_some(meta)
}

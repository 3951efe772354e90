//! Training data: a deterministic, resumable stream of token windows.
//!
//! [`DataSource`] turns a dataset on disk into batches of rows of `seq_len + 1` token ids
//! (inputs are a row's first `seq_len` ids, labels its last `seq_len`). Three inputs:
//!
//! - **text**: a `.txt` file, a `.jsonl` file (one document per line, in a `text` field), or a
//!   directory of such files, read recursively in path order (`.txt`, `.text`, `.md`,
//!   `.tokens`, `.raw`; `.jsonl`, `.ndjson`; hidden files are skipped). A text file is one
//!   document. Documents are tokenized and concatenated with the tokenizer's end-of-text id
//!   between them; the stream is cut into windows of `seq_len + 1` ids (the tail that does
//!   not fill a window is dropped).
//! - **parquet**: pico's pre-tokenized shards (`pico-lm/pretokenized-dolma`): a column
//!   `input_ids`, a list of integer ids per row (2049 in pico). Windows of `seq_len + 1` are
//!   taken from each row and never cross rows; a row shorter than `seq_len + 1` is an error.
//!   A `.parquet` file or a directory of them.
//! - **bin**: flat little-endian token ids, `u16` by default or `u32` ([`BinDtype`]), as
//!   written by nanoGPT-style preparation scripts. A `.bin` file or a directory of them; each
//!   file is cut into windows on its own.
//!
//! Order: every epoch visits each (training) window once, in an order shuffled by a seeded
//! RNG; each epoch reshuffles with a seed derived from the data seed and the epoch number. The
//! position in the stream is a small serializable [`DataState`]: restoring it on a freshly
//! opened source continues with exactly the batches the original run would have produced.
//!
//! Held-out data: [`Holdout`] sets windows aside that training never sees; open them with
//! [`DataSource::open_heldout`] (read in order, not shuffled).
//!
//! Caching: text and parquet inputs are converted once into a flat file of `u32` ids in the
//! cache directory ([`DataSpec::cache_dir`], by default [`default_cache_dir`]), keyed by a hash
//! of the file list (paths, sizes, modification times), the tokenizer and the options; later
//! opens read windows from that file on demand (nothing is tokenized again, and only the
//! window index is kept in memory). `.bin` inputs are read in place. With `cache_dir: None`
//! the ids are kept in memory instead and the conversion runs on every open.
//!
//! Tokenizing is parallel (rayon, through the `tokenizers` crate): documents are cut into
//! pieces of about 32 KB at whitespace boundaries where that provably gives the same ids as
//! encoding the whole document ([`Tokenizer::splits_at_whitespace`]), so even a single long
//! file uses every core. A progress bar shows on a terminal for inputs above 16 MB.

use crate::error::{Error, Result};
use crate::model::init::Rng;
use crate::train::tokenizer::{fnv1a64, Tokenizer, FNV_OFFSET};
use indicatif::{ProgressBar, ProgressStyle};
use parquet::column::reader::{ColumnReader, ColumnReaderImpl};
use parquet::data_type::DataType;
use parquet::file::reader::{FileReader, SerializedFileReader};
use serde::{Deserialize, Serialize};
use std::fs::File;
use std::io::{BufWriter, Write};
use std::path::{Path, PathBuf};
use std::str::FromStr;

/// Version of the token-cache format; bump when it changes.
const CACHE_VERSION: u32 = 1;
/// Target size of the pieces a document is cut into for parallel tokenizing.
const PIECE_BYTES: usize = 32 * 1024;
/// Text handed to the tokenizer at once (its pieces are encoded in parallel).
const BATCH_BYTES: usize = 4 * 1024 * 1024;
/// Inputs above this size get a progress bar.
const PROGRESS_BYTES: u64 = 16 * 1024 * 1024;

const TEXT_EXTS: [&str; 5] = ["txt", "text", "md", "tokens", "raw"];
const JSONL_EXTS: [&str; 2] = ["jsonl", "ndjson"];

/// What a data path holds.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum DataKind {
    /// Text (`.txt` and co.) or JSONL documents, tokenized with [`DataSpec::tokenizer`].
    Text,
    /// Pre-tokenized parquet shards with an `input_ids` list column.
    Parquet,
    /// Flat little-endian token ids ([`DataSpec::bin_dtype`]).
    Bin,
}

impl FromStr for DataKind {
    type Err = Error;
    fn from_str(s: &str) -> Result<Self> {
        match s.to_ascii_lowercase().as_str() {
            "text" | "txt" | "jsonl" => Ok(DataKind::Text),
            "parquet" => Ok(DataKind::Parquet),
            "bin" => Ok(DataKind::Bin),
            _ => Err(Error::Invalid(format!(
                "unknown data kind '{s}': choose text, parquet or bin"
            ))),
        }
    }
}

/// Integer type of the ids in a `.bin` token file (little-endian).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum BinDtype {
    /// 2 bytes per id: vocabularies up to 65536 ids (GPT-2, pico's 50280).
    #[default]
    U16,
    /// 4 bytes per id.
    U32,
}

impl BinDtype {
    pub fn bytes(self) -> usize {
        match self {
            BinDtype::U16 => 2,
            BinDtype::U32 => 4,
        }
    }
    fn name(self) -> &'static str {
        match self {
            BinDtype::U16 => "u16",
            BinDtype::U32 => "u32",
        }
    }
}

impl FromStr for BinDtype {
    type Err = Error;
    fn from_str(s: &str) -> Result<Self> {
        match s.to_ascii_lowercase().as_str() {
            "u16" | "uint16" => Ok(BinDtype::U16),
            "u32" | "uint32" => Ok(BinDtype::U32),
            _ => Err(Error::Invalid(format!(
                "unknown token dtype '{s}': choose u16 or u32"
            ))),
        }
    }
}

/// Windows kept out of training, for evaluation.
#[derive(Clone, Copy, Debug, Default, PartialEq)]
pub enum Holdout {
    /// Train on everything.
    #[default]
    None,
    /// This fraction of the windows (in (0, 1), rounded, at least one), spread evenly over the
    /// data so that every part of it (every file of a directory) is represented.
    Fraction(f64),
    /// The last N windows of the data, in file order.
    LastWindows(u64),
}

/// Which part of the data a [`DataSource`] serves.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Split {
    /// The windows not held out, shuffled every epoch.
    Train,
    /// The held-out windows, in data order.
    Heldout,
}

/// Where and how to read training data. Build with [`DataSpec::new`] and struct update:
/// `DataSpec { seed: 7, tokenizer: Some(tok), ..DataSpec::new("data/", 512, 50304) }`.
#[derive(Clone, Debug)]
pub struct DataSpec {
    /// A file or a directory.
    pub path: PathBuf,
    /// Detected from the extension or the directory's files when `None`.
    pub kind: Option<DataKind>,
    /// Needed for text input.
    pub tokenizer: Option<Tokenizer>,
    /// Tokens a model sees per row; rows hold `seq_len + 1` ids.
    pub seq_len: usize,
    /// Seeds the shuffle.
    pub seed: u64,
    /// The model's vocabulary: every id must be below it.
    pub vocab_size: usize,
    pub holdout: Holdout,
    /// Type of the ids in `.bin` files.
    pub bin_dtype: BinDtype,
    /// JSONL field holding a document's text.
    pub text_field: String,
    /// Parquet column holding the ids.
    pub parquet_column: String,
    /// Where converted token streams are cached; `None` keeps them in memory (no files
    /// written, conversion on every open).
    pub cache_dir: Option<PathBuf>,
    /// Show a progress bar (on a terminal) while converting large inputs.
    pub progress: bool,
}

impl DataSpec {
    /// Defaults: kind detected, seed 0, no holdout, u16 `.bin`, JSONL field `text`, parquet
    /// column `input_ids`, cache in [`default_cache_dir`], progress bars on.
    pub fn new(path: impl Into<PathBuf>, seq_len: usize, vocab_size: usize) -> Self {
        DataSpec {
            path: path.into(),
            kind: None,
            tokenizer: None,
            seq_len,
            seed: 0,
            vocab_size,
            holdout: Holdout::None,
            bin_dtype: BinDtype::U16,
            text_field: "text".to_string(),
            parquet_column: "input_ids".to_string(),
            cache_dir: Some(default_cache_dir()),
            progress: true,
        }
    }
}

/// The token cache: `$WGTRAIN_CACHE/tokens`, else `$XDG_CACHE_HOME/wgtrain/tokens`, else
/// `~/.cache/wgtrain/tokens`.
pub fn default_cache_dir() -> PathBuf {
    let root = if let Some(d) = std::env::var_os("WGTRAIN_CACHE") {
        PathBuf::from(d)
    } else if let Some(d) = std::env::var_os("XDG_CACHE_HOME") {
        PathBuf::from(d).join("wgtrain")
    } else {
        let home = std::env::var_os("HOME").map_or_else(std::env::temp_dir, PathBuf::from);
        home.join(".cache").join("wgtrain")
    };
    root.join("tokens")
}

/// A position in a [`DataSource`]'s stream: save it with a checkpoint, give it to
/// [`DataSource::restore`] to continue with the same batches.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct DataState {
    pub seed: u64,
    /// Epochs completed.
    pub epoch: u64,
    /// Windows consumed in the current epoch.
    pub position: u64,
    /// Windows per epoch (a check that the data is the same).
    pub windows: u64,
    /// A check that the window length is the same.
    pub seq_len: usize,
}

// ---------------------------------------------------------------------------------------------
// Storage of token ids.

/// Where ids live: in memory, or in a little-endian file read on demand.
enum StoreData {
    Memory(Vec<u32>),
    File { file: File, dtype: BinDtype },
}

struct Store {
    data: StoreData,
    /// Length in ids.
    len: u64,
}

impl Store {
    fn open_file(path: &Path, dtype: BinDtype, len: u64) -> Result<Store> {
        let file = File::open(path)
            .map_err(|e| Error::Invalid(format!("cannot open {}: {e}", path.display())))?;
        Ok(Store {
            data: StoreData::File { file, dtype },
            len,
        })
    }

    /// Appends ids `start .. start + n` to `out`.
    fn read(&self, start: u64, n: usize, out: &mut Vec<u32>) -> Result<()> {
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
    fn find_id_at_least(&self, limit: u64, bar: &ProgressBar) -> Result<Option<(u64, u32)>> {
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

// ---------------------------------------------------------------------------------------------
// Converted token streams (text and parquet) and their cache.

/// A file's part of a converted stream.
#[derive(Clone, Debug, Serialize, Deserialize)]
struct FileSpan {
    path: PathBuf,
    /// First id of the file in the stream.
    start: u64,
    len: u64,
    /// Parquet rows as runs of (row length, row count); empty for text.
    rows: Vec<(u64, u64)>,
}

#[derive(Clone, Debug, Serialize, Deserialize)]
struct StreamMeta {
    version: u32,
    kind: DataKind,
    n_tokens: u64,
    max_id: u32,
    /// Documents (text) or rows (parquet).
    docs: u64,
    files: Vec<FileSpan>,
}

impl StreamMeta {
    /// File, offset in the file's ids, and (row, position in row) for parquet, of stream
    /// position `pos`.
    fn locate(&self, pos: u64) -> (&Path, u64, Option<(u64, u64)>) {
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

enum Sink {
    Memory(Vec<u32>),
    File(BufWriter<File>),
}

/// Builds a converted stream: ids go to memory or a cache file; tracks files and rows.
struct StreamWriter {
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

    fn begin_file(&mut self, path: &Path) {
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

    fn push(&mut self, ids: &[u32]) -> Result<()> {
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
    fn add_row(&mut self, len: u64) {
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
fn token_stream(
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
        let store = Store {
            len: ids.len() as u64,
            data: StoreData::Memory(ids),
        };
        return Ok((store, meta));
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

fn progress_bar(show: bool, total: u64, template: &str, msg: &str) -> ProgressBar {
    if !show {
        return ProgressBar::hidden();
    }
    let style = ProgressStyle::with_template(template)
        .unwrap_or_else(|_| ProgressStyle::default_bar())
        .progress_chars("=> ");
    ProgressBar::new(total)
        .with_style(style)
        .with_message(msg.to_string())
}

// ---------------------------------------------------------------------------------------------
// Text.

struct Piece {
    text: String,
    doc_start: bool,
    file: usize,
}

/// Tokenizes documents in batches of pieces and writes them, EOS between documents.
struct TextTokenizer<'a> {
    tok: &'a Tokenizer,
    files: &'a [PathBuf],
    piece_bytes: usize,
    pending: Vec<Piece>,
    pending_bytes: usize,
    docs: u64,
    current_file: usize,
    bar: ProgressBar,
}

impl TextTokenizer<'_> {
    fn add_doc(&mut self, doc: &str, file: usize, w: &mut StreamWriter) -> Result<()> {
        if doc.is_empty() {
            return Ok(());
        }
        for (i, piece) in split_at_whitespace(doc, self.piece_bytes)
            .into_iter()
            .enumerate()
        {
            self.pending_bytes += piece.len();
            self.pending.push(Piece {
                text: piece.to_string(),
                doc_start: i == 0,
                file,
            });
        }
        if self.pending_bytes >= BATCH_BYTES {
            self.flush(w)?;
        }
        Ok(())
    }

    fn flush(&mut self, w: &mut StreamWriter) -> Result<()> {
        if self.pending.is_empty() {
            return Ok(());
        }
        let texts: Vec<&str> = self.pending.iter().map(|p| p.text.as_str()).collect();
        let ids = self.tok.encode_batch(&texts)?;
        for (p, ids) in self.pending.iter().zip(ids) {
            if p.file != self.current_file {
                w.begin_file(&self.files[p.file]);
                self.current_file = p.file;
            }
            if p.doc_start {
                if self.docs > 0 {
                    let eos = self.tok.eos_id().ok_or_else(|| {
                        Error::Invalid(
                            "the tokenizer has no end-of-text token (<|endoftext|>, </s>, ...) \
                             to put between documents"
                                .to_string(),
                        )
                    })?;
                    w.push(&[eos])?;
                }
                self.docs += 1;
            }
            w.push(&ids)?;
        }
        self.bar.inc(self.pending_bytes as u64);
        self.pending.clear();
        self.pending_bytes = 0;
        Ok(())
    }
}

/// Cuts `doc` into pieces of about `target` bytes, each cut just before an ASCII whitespace
/// that follows a non-whitespace character (see [`Tokenizer::splits_at_whitespace`]).
fn split_at_whitespace(doc: &str, target: usize) -> Vec<&str> {
    let b = doc.as_bytes();
    let mut out = Vec::new();
    let mut start = 0;
    while b.len() - start > target {
        let mut cut = None;
        for i in start + target..b.len() {
            if matches!(b[i], b' ' | b'\n' | b'\t' | b'\r')
                && doc[..i]
                    .chars()
                    .next_back()
                    .is_some_and(|c| !c.is_whitespace())
            {
                cut = Some(i);
                break;
            }
        }
        match cut {
            Some(c) => {
                out.push(&doc[start..c]);
                start = c;
            }
            None => break,
        }
    }
    out.push(&doc[start..]);
    out
}

fn has_ext(path: &Path, exts: &[&str]) -> bool {
    path.extension()
        .and_then(|e| e.to_str())
        .is_some_and(|e| exts.iter().any(|x| e.eq_ignore_ascii_case(x)))
}

fn read_text(path: &Path) -> Result<String> {
    let bytes = std::fs::read(path)
        .map_err(|e| Error::Invalid(format!("cannot read {}: {e}", path.display())))?;
    String::from_utf8(bytes).map_err(|e| {
        Error::Invalid(format!(
            "{}: not UTF-8 text (invalid byte at offset {}); text data must be UTF-8",
            path.display(),
            e.utf8_error().valid_up_to()
        ))
    })
}

fn tokenize_text(
    files: &[PathBuf],
    tok: &Tokenizer,
    field: &str,
    progress: bool,
    w: &mut StreamWriter,
) -> Result<u64> {
    let total: u64 = files
        .iter()
        .filter_map(|f| std::fs::metadata(f).ok())
        .map(|m| m.len())
        .sum();
    let bar = progress_bar(
        progress && total >= PROGRESS_BYTES,
        total,
        "{msg} [{elapsed_precise}] [{wide_bar}] {bytes}/{total_bytes} ({eta})",
        "tokenizing",
    );
    let mut tt = TextTokenizer {
        tok,
        files,
        piece_bytes: if tok.splits_at_whitespace() {
            PIECE_BYTES
        } else {
            usize::MAX
        },
        pending: Vec::new(),
        pending_bytes: 0,
        docs: 0,
        current_file: usize::MAX,
        bar,
    };
    for (fi, f) in files.iter().enumerate() {
        let text = read_text(f)?;
        if has_ext(f, &JSONL_EXTS) {
            for (ln, line) in text.lines().enumerate() {
                if line.trim().is_empty() {
                    continue;
                }
                let v: serde_json::Value = serde_json::from_str(line).map_err(|e| {
                    Error::Invalid(format!(
                        "{} line {}: not valid JSON: {e}",
                        f.display(),
                        ln + 1
                    ))
                })?;
                let doc = v.get(field).and_then(|t| t.as_str()).ok_or_else(|| {
                    Error::Invalid(format!(
                        "{} line {}: no string field \"{field}\" (JSONL documents need one)",
                        f.display(),
                        ln + 1
                    ))
                })?;
                tt.add_doc(doc, fi, w)?;
            }
        } else {
            tt.add_doc(&text, fi, w)?;
        }
    }
    tt.flush(w)?;
    tt.bar.finish_and_clear();
    Ok(tt.docs)
}

// ---------------------------------------------------------------------------------------------
// Parquet.

/// Assembles rows from a list column's levels and writes them.
struct RowAssembler<'a> {
    path: &'a Path,
    row: Vec<u32>,
    open: bool,
    rows: u64,
}

impl RowAssembler<'_> {
    fn end_row(&mut self, w: &mut StreamWriter) -> Result<()> {
        if self.open {
            w.push(&self.row)?;
            w.add_row(self.row.len() as u64);
            self.row.clear();
            self.rows += 1;
            self.open = false;
        }
        Ok(())
    }

    fn push(&mut self, v: i64) -> Result<()> {
        if v < 0 || v > u32::MAX as i64 {
            return Err(Error::Invalid(format!(
                "{}: row {} (0-based), position {}: {v} is not a token id",
                self.path.display(),
                self.rows,
                self.row.len()
            )));
        }
        self.row.push(v as u32);
        Ok(())
    }
}

fn read_list_column<T: DataType>(
    mut r: ColumnReaderImpl<T>,
    max_def: i16,
    nullable_element: bool,
    asm: &mut RowAssembler,
    w: &mut StreamWriter,
) -> Result<()>
where
    T::T: Copy + Into<i64>,
{
    let path = asm.path;
    let mut def = Vec::new();
    let mut rep = Vec::new();
    let mut vals: Vec<T::T> = Vec::new();
    loop {
        def.clear();
        rep.clear();
        vals.clear();
        let (_, _, levels) = r
            .read_records(1024, Some(&mut def), Some(&mut rep), &mut vals)
            .map_err(|e| {
                Error::Invalid(format!("{}: reading parquet failed: {e}", path.display()))
            })?;
        if levels == 0 {
            return Ok(());
        }
        let mut vi = 0;
        for k in 0..levels {
            if rep[k] == 0 {
                asm.end_row(w)?;
                asm.open = true;
            }
            if def[k] == max_def {
                asm.push(vals[vi].into())?;
                vi += 1;
            } else if nullable_element && def[k] == max_def - 1 {
                return Err(Error::Invalid(format!(
                    "{}: row {} (0-based), position {}: null token id",
                    path.display(),
                    asm.rows,
                    asm.row.len()
                )));
            }
            // Lower definition levels: an empty or null list, a row without ids.
        }
    }
}

fn read_parquet(path: &Path, column: &str, w: &mut StreamWriter, bar: &ProgressBar) -> Result<u64> {
    let file = File::open(path)
        .map_err(|e| Error::Invalid(format!("cannot open {}: {e}", path.display())))?;
    let reader = SerializedFileReader::new(file).map_err(|e| {
        Error::Invalid(format!(
            "{}: not a readable parquet file: {e}",
            path.display()
        ))
    })?;
    let schema = reader.metadata().file_metadata().schema_descr();
    let cols = schema.columns();
    let Some(idx) = cols
        .iter()
        .position(|c| c.path().parts().first().map(String::as_str) == Some(column))
    else {
        let mut names: Vec<String> = cols
            .iter()
            .filter_map(|c| c.path().parts().first().cloned())
            .collect();
        names.dedup();
        return Err(Error::Invalid(format!(
            "{}: no column \"{column}\" (its columns: {}); pico's pre-tokenized shards hold the \
             token ids in a list column \"input_ids\"",
            path.display(),
            names.join(", ")
        )));
    };
    let col = &cols[idx];
    use parquet::basic::Type as Physical;
    if col.max_rep_level() != 1 || !matches!(col.physical_type(), Physical::INT32 | Physical::INT64)
    {
        return Err(Error::Invalid(format!(
            "{}: column \"{column}\" is not a list of integer token ids (its leaf {} is {:?}, \
             repetition level {})",
            path.display(),
            col.path().string(),
            col.physical_type(),
            col.max_rep_level()
        )));
    }
    let max_def = col.max_def_level();
    let nullable = col.self_type().is_optional();
    let mut asm = RowAssembler {
        path,
        row: Vec::new(),
        open: false,
        rows: 0,
    };
    let pq = |e: parquet::errors::ParquetError| {
        Error::Invalid(format!("{}: reading parquet failed: {e}", path.display()))
    };
    for rg in 0..reader.num_row_groups() {
        let group = reader.get_row_group(rg).map_err(pq)?;
        match group.get_column_reader(idx).map_err(pq)? {
            ColumnReader::Int64ColumnReader(r) => {
                read_list_column(r, max_def, nullable, &mut asm, w)?
            }
            ColumnReader::Int32ColumnReader(r) => {
                read_list_column(r, max_def, nullable, &mut asm, w)?
            }
            _ => unreachable!("physical type checked above"),
        }
        asm.end_row(w)?;
        bar.inc(reader.metadata().row_group(rg).num_rows().max(0) as u64);
    }
    Ok(asm.rows)
}

// ---------------------------------------------------------------------------------------------
// Inputs.

fn walk(dir: &Path, out: &mut Vec<PathBuf>) -> Result<()> {
    let entries = std::fs::read_dir(dir)
        .map_err(|e| Error::Invalid(format!("cannot list {}: {e}", dir.display())))?;
    for entry in entries {
        let entry =
            entry.map_err(|e| Error::Invalid(format!("cannot list {}: {e}", dir.display())))?;
        if entry.file_name().to_string_lossy().starts_with('.') {
            continue;
        }
        let p = entry.path();
        match std::fs::metadata(&p) {
            Ok(md) if md.is_dir() => walk(&p, out)?,
            Ok(md) if md.is_file() => out.push(p),
            _ => {}
        }
    }
    Ok(())
}

/// The kind and the files of the input.
fn list_inputs(spec: &DataSpec) -> Result<(DataKind, Vec<PathBuf>)> {
    let path = &spec.path;
    let md = std::fs::metadata(path).map_err(|e| {
        if e.kind() == std::io::ErrorKind::NotFound {
            Error::Invalid(format!(
                "data path {} does not exist: give a text, .jsonl, .parquet or .bin file, or a \
                 directory of them",
                path.display()
            ))
        } else {
            Error::Invalid(format!("cannot read data path {}: {e}", path.display()))
        }
    })?;
    if md.is_file() {
        let kind = spec.kind.unwrap_or(if has_ext(path, &["parquet"]) {
            DataKind::Parquet
        } else if has_ext(path, &["bin"]) {
            DataKind::Bin
        } else {
            DataKind::Text
        });
        return Ok((kind, vec![path.clone()]));
    }
    let mut all = Vec::new();
    walk(path, &mut all)?;
    all.sort();
    let of_kind = |k: DataKind| -> Vec<PathBuf> {
        all.iter()
            .filter(|f| match k {
                DataKind::Parquet => has_ext(f, &["parquet"]),
                DataKind::Bin => has_ext(f, &["bin"]),
                DataKind::Text => has_ext(f, &TEXT_EXTS) || has_ext(f, &JSONL_EXTS),
            })
            .cloned()
            .collect()
    };
    let kind = match spec.kind {
        Some(k) => k,
        None => {
            let (pq, bin) = (of_kind(DataKind::Parquet), of_kind(DataKind::Bin));
            match (pq.is_empty(), bin.is_empty()) {
                (false, false) => {
                    return Err(Error::Invalid(format!(
                        "{} holds both .parquet and .bin files: choose the data kind explicitly",
                        path.display()
                    )))
                }
                (false, true) => DataKind::Parquet,
                (true, false) => DataKind::Bin,
                (true, true) => DataKind::Text,
            }
        }
    };
    let files = of_kind(kind);
    if files.is_empty() {
        let expected = match kind {
            DataKind::Text => "text files (.txt, .text, .md, .tokens, .raw) or JSONL (.jsonl)",
            DataKind::Parquet => ".parquet files",
            DataKind::Bin => ".bin token files",
        };
        return Err(Error::Invalid(format!(
            "no data in {}: no documents found (looked for {expected}, recursively)",
            path.display()
        )));
    }
    Ok((kind, files))
}

// ---------------------------------------------------------------------------------------------
// The source.

/// Rows of equal length laid out contiguously in a store; each row yields `per_row` windows.
struct Run {
    store: usize,
    start: u64,
    row_len: u64,
    n_rows: u64,
    per_row: u64,
    first_window: u64,
}

/// A deterministic, resumable stream of token windows; see the [module docs](self).
pub struct DataSource {
    kind: DataKind,
    stores: Vec<Store>,
    runs: Vec<Run>,
    window: usize,
    total_windows: u64,
    total_tokens: u64,
    n_files: usize,
    heldout_windows: u64,
    split: Split,
    /// This split's windows (global indices), in data order.
    base: Vec<u64>,
    /// This epoch's order.
    order: Vec<u64>,
    seed: u64,
    epoch: u64,
    position: u64,
}

impl DataSource {
    /// The training windows of `spec`.
    pub fn open(spec: &DataSpec) -> Result<DataSource> {
        Self::open_split(spec, Split::Train)
    }

    /// The held-out windows of `spec` (an error when it holds none out).
    pub fn open_heldout(spec: &DataSpec) -> Result<DataSource> {
        Self::open_split(spec, Split::Heldout)
    }

    pub fn open_split(spec: &DataSpec, split: Split) -> Result<DataSource> {
        if spec.seq_len == 0 {
            return Err(Error::Invalid("seq_len must be at least 1".to_string()));
        }
        if spec.vocab_size == 0 {
            return Err(Error::Invalid("vocab_size must be at least 1".to_string()));
        }
        let w = spec.seq_len as u64 + 1;
        let (kind, files) = list_inputs(spec)?;
        let cache = spec.cache_dir.as_deref();
        let mut stores = Vec::new();
        let mut segments: Vec<(usize, u64, u64, u64)> = Vec::new(); // store, start, row_len, rows
        let where_ = spec.path.display();
        match kind {
            DataKind::Text => {
                let tok = spec.tokenizer.as_ref().ok_or_else(|| {
                    Error::Invalid(format!(
                        "{where_} is text: a tokenizer is needed to read it (pico's \
                         tokenizer.json, or one trained with train_bpe)"
                    ))
                })?;
                let tag = format!(
                    "text\nfield={}\ntokenizer={:016x}",
                    spec.text_field,
                    tok.fingerprint()
                );
                let (store, meta) = token_stream(kind, &tag, &files, cache, |wr| {
                    tokenize_text(&files, tok, &spec.text_field, spec.progress, wr)
                })?;
                if meta.docs == 0 {
                    return Err(Error::Invalid(format!(
                        "no documents in {where_}: its {} file(s) are empty",
                        files.len()
                    )));
                }
                if meta.n_tokens < w {
                    return Err(Error::Invalid(format!(
                        "{where_} is too short: found {} tokens in {} document(s), need at least \
                         {w} (seq_len + 1) for one sequence; use more data or a shorter seq_len",
                        meta.n_tokens, meta.docs
                    )));
                }
                check_vocab(&store, &meta, spec, tok.vocab_size())?;
                segments.push((0, 0, meta.n_tokens, 1));
                stores.push(store);
            }
            DataKind::Parquet => {
                let tag = format!("parquet\ncolumn={}", spec.parquet_column);
                let (store, meta) = token_stream(kind, &tag, &files, cache, |wr| {
                    let total: u64 = files.iter().map(|f| parquet_rows(f).unwrap_or(0)).sum();
                    let bar = progress_bar(
                        spec.progress && total * 2049 * 4 >= PROGRESS_BYTES,
                        total,
                        "{msg} [{elapsed_precise}] [{wide_bar}] {pos}/{len} rows ({eta})",
                        "reading parquet",
                    );
                    let mut rows = 0;
                    for f in &files {
                        wr.begin_file(f);
                        rows += read_parquet(f, &spec.parquet_column, wr, &bar)?;
                    }
                    bar.finish_and_clear();
                    Ok(rows)
                })?;
                if meta.docs == 0 || meta.n_tokens == 0 {
                    return Err(Error::Invalid(format!(
                        "no tokens in {where_}: {} row(s) in {} parquet file(s)",
                        meta.docs,
                        files.len()
                    )));
                }
                for f in &meta.files {
                    let (mut row, mut at) = (0, f.start);
                    for &(len, count) in &f.rows {
                        if len < w {
                            return Err(Error::Invalid(format!(
                                "{}: row {row} (0-based) has {len} token ids, fewer than \
                                 seq_len + 1 = {w}: use seq_len at most {}",
                                f.path.display(),
                                len.saturating_sub(1)
                            )));
                        }
                        segments.push((0, at, len, count));
                        at += len * count;
                        row += count;
                    }
                }
                check_vocab(&store, &meta, spec, 0)?;
                stores.push(store);
            }
            DataKind::Bin => {
                let b = spec.bin_dtype.bytes() as u64;
                for f in &files {
                    let len = std::fs::metadata(f)
                        .map_err(|e| Error::Invalid(format!("cannot read {}: {e}", f.display())))?
                        .len();
                    if !len.is_multiple_of(b) {
                        return Err(Error::Invalid(format!(
                            "{}: {len} bytes is not a whole number of {} token ids ({b} bytes \
                             each): is the token dtype right?",
                            f.display(),
                            spec.bin_dtype.name()
                        )));
                    }
                    let n = len / b;
                    if n == 0 {
                        return Err(Error::Invalid(format!(
                            "{} is empty: no tokens",
                            f.display()
                        )));
                    }
                    if n < w {
                        return Err(Error::Invalid(format!(
                            "{} is too short: found {n} tokens, need at least {w} (seq_len + 1) \
                             for one sequence",
                            f.display()
                        )));
                    }
                    let store = Store::open_file(f, spec.bin_dtype, n)?;
                    let bar = progress_bar(
                        spec.progress && len >= 32 * PROGRESS_BYTES,
                        n,
                        "{msg} [{elapsed_precise}] [{wide_bar}] {pos}/{len} ids ({eta})",
                        "checking ids",
                    );
                    if let Some((pos, id)) = store.find_id_at_least(spec.vocab_size as u64, &bar)? {
                        let hint = match spec.bin_dtype {
                            BinDtype::U32 => " or it holds u16 ids read as u32",
                            BinDtype::U16 => "",
                        };
                        return Err(Error::Invalid(format!(
                            "{}: token {pos}: id {id} is outside the vocabulary (vocab_size {}): \
                             the file was written with another tokenizer than the model's{hint}; \
                             check the tokenizer, the model's vocab_size and the token dtype",
                            f.display(),
                            spec.vocab_size
                        )));
                    }
                    bar.finish_and_clear();
                    segments.push((stores.len(), 0, n, 1));
                    stores.push(store);
                }
            }
        }

        let mut runs = Vec::new();
        let mut total_windows = 0u64;
        for (store, start, row_len, n_rows) in segments {
            let per_row = row_len / w;
            if per_row * n_rows == 0 {
                continue;
            }
            runs.push(Run {
                store,
                start,
                row_len,
                n_rows,
                per_row,
                first_window: total_windows,
            });
            total_windows += per_row * n_rows;
        }
        let total_tokens = stores.iter().map(|s| s.len).sum();
        let (train, held) = split_windows(total_windows, spec.holdout, spec.seq_len)?;
        let heldout_windows = held.len() as u64;
        let base = match split {
            Split::Train => train,
            Split::Heldout => {
                if held.is_empty() {
                    return Err(Error::Invalid(
                        "no held-out data: set a holdout (a fraction, or the last N windows)"
                            .to_string(),
                    ));
                }
                held
            }
        };
        let mut src = DataSource {
            kind,
            stores,
            runs,
            window: w as usize,
            total_windows,
            total_tokens,
            n_files: files.len(),
            heldout_windows,
            split,
            order: Vec::new(),
            base,
            seed: spec.seed,
            epoch: 0,
            position: 0,
        };
        src.reorder();
        Ok(src)
    }

    /// `batch_size` rows of `seq_len + 1` ids, row after row. The stream runs on across
    /// epochs (each reshuffled).
    pub fn next_batch(&mut self, batch_size: usize) -> Result<Vec<u32>> {
        let mut out = Vec::with_capacity(batch_size * self.window);
        for _ in 0..batch_size {
            if self.position as usize >= self.order.len() {
                self.epoch += 1;
                self.position = 0;
                self.reorder();
            }
            let g = self.order[self.position as usize];
            self.position += 1;
            self.read_window(g, &mut out)?;
        }
        Ok(out)
    }

    /// The `i`-th window of this split in data order (for evaluation loops).
    pub fn window(&self, i: u64) -> Result<Vec<u32>> {
        let g = *self.base.get(i as usize).ok_or_else(|| {
            Error::Invalid(format!(
                "window {i} is out of range: this split has {} windows",
                self.base.len()
            ))
        })?;
        let mut out = Vec::with_capacity(self.window);
        self.read_window(g, &mut out)?;
        Ok(out)
    }

    /// Where the stream is: save it to resume with [`DataSource::restore`].
    pub fn state(&self) -> DataState {
        DataState {
            seed: self.seed,
            epoch: self.epoch,
            position: self.position,
            windows: self.base.len() as u64,
            seq_len: self.window - 1,
        }
    }

    /// Continues from a saved [`DataState`] (of a source opened on the same data).
    pub fn restore(&mut self, state: &DataState) -> Result<()> {
        if state.seq_len != self.window - 1 || state.windows != self.base.len() as u64 {
            return Err(Error::Invalid(format!(
                "the saved data position does not match this data: it was {} windows of seq_len \
                 {}, this is {} windows of seq_len {}; was the data, the holdout or seq_len \
                 changed?",
                state.windows,
                state.seq_len,
                self.base.len(),
                self.window - 1
            )));
        }
        if state.position > state.windows {
            return Err(Error::Invalid(format!(
                "the saved data position {} is past the end of an epoch ({} windows)",
                state.position, state.windows
            )));
        }
        self.seed = state.seed;
        self.epoch = state.epoch;
        self.position = state.position;
        self.reorder();
        Ok(())
    }

    pub fn kind(&self) -> DataKind {
        self.kind
    }
    pub fn split(&self) -> Split {
        self.split
    }
    pub fn seq_len(&self) -> usize {
        self.window - 1
    }
    /// Windows in this split (one epoch).
    pub fn num_windows(&self) -> u64 {
        self.base.len() as u64
    }
    /// Windows in the whole data, both splits.
    pub fn total_windows(&self) -> u64 {
        self.total_windows
    }
    /// Token ids in the data (including the tails that fill no window).
    pub fn total_tokens(&self) -> u64 {
        self.total_tokens
    }
    pub fn epoch(&self) -> u64 {
        self.epoch
    }

    /// A line for logs: kind, size, windows.
    pub fn describe(&self) -> String {
        format!(
            "{:?} data: {} file(s), {} tokens, {} windows of {} ids ({} held out); {:?} split: {} \
             windows",
            self.kind,
            self.n_files,
            self.total_tokens,
            self.total_windows,
            self.window,
            self.heldout_windows,
            self.split,
            self.base.len()
        )
        .to_lowercase()
    }

    fn reorder(&mut self) {
        self.order.clone_from(&self.base);
        if self.split == Split::Train {
            let mut rng = Rng::new(epoch_seed(self.seed, self.epoch));
            for i in (1..self.order.len()).rev() {
                let j = ((rng.next_u64() as u128 * (i as u128 + 1)) >> 64) as usize;
                self.order.swap(i, j);
            }
        }
    }

    fn read_window(&self, g: u64, out: &mut Vec<u32>) -> Result<()> {
        let r = &self.runs[self.runs.partition_point(|r| r.first_window <= g) - 1];
        let k = g - r.first_window;
        let (row, w) = (k / r.per_row, k % r.per_row);
        let start = r.start + row * r.row_len + w * self.window as u64;
        debug_assert!(row < r.n_rows);
        self.stores[r.store].read(start, self.window, out)
    }
}

fn epoch_seed(seed: u64, epoch: u64) -> u64 {
    Rng::new(seed ^ epoch.wrapping_mul(0xA076_1D64_78BD_642F)).next_u64()
}

/// Train and held-out window indices (both in data order).
fn split_windows(n: u64, holdout: Holdout, seq_len: usize) -> Result<(Vec<u64>, Vec<u64>)> {
    let held: Vec<u64> = match holdout {
        Holdout::None | Holdout::LastWindows(0) => Vec::new(),
        Holdout::LastWindows(k) => (n.saturating_sub(k)..n).collect(),
        Holdout::Fraction(f) => {
            if !(f > 0.0 && f < 1.0) {
                return Err(Error::Invalid(format!(
                    "holdout fraction {f} must be between 0 and 1"
                )));
            }
            let h = ((f * n as f64).round() as u64).max(1).min(n);
            (0..h)
                .map(|j| ((2 * j as u128 + 1) * n as u128 / (2 * h as u128)) as u64)
                .collect()
        }
    };
    if !held.is_empty() && held.len() as u64 >= n {
        return Err(Error::Invalid(format!(
            "holding out {} windows leaves none to train on: the data has only {n} windows of \
             {} ids",
            held.len(),
            seq_len + 1
        )));
    }
    let mut train = Vec::with_capacity((n - held.len() as u64) as usize);
    let mut hi = held.iter().peekable();
    for i in 0..n {
        if hi.peek() == Some(&&i) {
            hi.next();
        } else {
            train.push(i);
        }
    }
    Ok((train, held))
}

fn parquet_rows(path: &Path) -> Option<u64> {
    let reader = SerializedFileReader::new(File::open(path).ok()?).ok()?;
    Some(reader.metadata().file_metadata().num_rows().max(0) as u64)
}

/// Fails when the stream holds an id `>= spec.vocab_size`, naming where.
fn check_vocab(store: &Store, meta: &StreamMeta, spec: &DataSpec, tok_vocab: usize) -> Result<()> {
    let v = spec.vocab_size as u64;
    if (meta.max_id as u64) < v {
        return Ok(());
    }
    let Some((pos, id)) = store.find_id_at_least(v, &ProgressBar::hidden())? else {
        return Ok(());
    };
    let (path, in_file, row) = meta.locate(pos);
    let advice = if tok_vocab > 0 {
        format!(
            "the tokenizer ({tok_vocab} ids) does not match the model's vocabulary; use the \
             model's tokenizer, or a model with vocab_size at least {}",
            meta.max_id as u64 + 1
        )
    } else {
        "the data was tokenized with another tokenizer than the model's (pico's OLMo \
         tokenizer has 50280 ids); check the tokenizer and the model's vocab_size"
            .to_string()
    };
    let at = match row {
        Some((r, c)) => format!("{}: row {r} (0-based), position {c}", path.display()),
        None => format!("{}: token {in_file} (as tokenized)", path.display()),
    };
    Err(Error::Invalid(format!(
        "{at}: token id {id} is outside the vocabulary (vocab_size {}): {advice}",
        spec.vocab_size
    )))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn split_is_disjoint_and_complete() {
        for (n, hold) in [
            (10, Holdout::Fraction(0.1)),
            (10, Holdout::Fraction(0.5)),
            (7, Holdout::LastWindows(3)),
            (1000, Holdout::Fraction(0.013)),
            (5, Holdout::None),
        ] {
            let (t, h) = split_windows(n, hold, 8).unwrap();
            let mut all: Vec<u64> = t.iter().chain(&h).copied().collect();
            all.sort();
            assert_eq!(all, (0..n).collect::<Vec<_>>(), "{hold:?}");
        }
        let (_, h) = split_windows(10, Holdout::Fraction(0.2), 8).unwrap();
        assert_eq!(h, vec![2, 7]);
        assert!(split_windows(3, Holdout::LastWindows(3), 8).is_err());
        assert!(split_windows(3, Holdout::Fraction(1.5), 8).is_err());
    }

    #[test]
    fn pieces_cut_before_whitespace_after_a_word() {
        let doc = "aaaa bbbb\n\ncccc  dddd";
        let pieces = split_at_whitespace(doc, 3);
        assert_eq!(pieces.concat(), doc);
        assert_eq!(pieces, vec!["aaaa", " bbbb", "\n\ncccc", "  dddd"]);
        assert_eq!(split_at_whitespace("abc", 1), vec!["abc"]);
        assert_eq!(split_at_whitespace("é é é", 1), vec!["é", " é", " é"]);
    }

    #[test]
    fn shuffle_is_a_permutation_and_differs_by_epoch() {
        let mut s = DataSource {
            kind: DataKind::Bin,
            stores: vec![Store {
                data: StoreData::Memory((0..100).collect()),
                len: 100,
            }],
            runs: vec![Run {
                store: 0,
                start: 0,
                row_len: 100,
                n_rows: 1,
                per_row: 25,
                first_window: 0,
            }],
            window: 4,
            total_windows: 25,
            total_tokens: 100,
            n_files: 1,
            heldout_windows: 0,
            split: Split::Train,
            base: (0..25).collect(),
            order: Vec::new(),
            seed: 1,
            epoch: 0,
            position: 0,
        };
        s.reorder();
        let e0 = s.order.clone();
        let mut sorted = e0.clone();
        sorted.sort();
        assert_eq!(sorted, (0..25).collect::<Vec<_>>());
        assert_ne!(e0, sorted);
        let b = s.next_batch(25).unwrap();
        assert_eq!(
            &b[..4],
            &[
                e0[0] as u32 * 4,
                e0[0] as u32 * 4 + 1,
                e0[0] as u32 * 4 + 2,
                e0[0] as u32 * 4 + 3
            ]
        );
        s.next_batch(1).unwrap();
        assert_eq!(s.epoch(), 1);
        assert_ne!(s.order, e0);
    }
}

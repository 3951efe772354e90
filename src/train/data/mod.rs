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
//! encoding the whole document
//! ([`Tokenizer::splits_at_whitespace`](crate::train::tokenizer::Tokenizer::splits_at_whitespace)),
//! so even a single long file uses every core. A progress bar shows on a terminal for inputs
//! above 16 MB.
//!
//! One idea per file: `spec` (what to read), `dataset` (a config's dataset name made local),
//! `discover` (the files of a data path), `tokenize` (text to ids, in parallel), `parquet`
//! (pico's shards to ids), `cache` (converted streams and their cache files), `store` (ids in
//! memory or read from a file on demand), `load` (each kind of input into stores and rows),
//! `split` (hold-out and shuffle), `source` (the stream of windows and its position).

mod cache;
mod dataset;
mod discover;
mod load;
mod parquet;
mod source;
mod spec;
mod split;
mod store;
mod tokenize;

pub use dataset::{resolve_dataset, resolve_dataset_in, Dataset};
pub use parquet::read_parquet_documents;
pub use source::{DataSource, DataState};
pub use spec::{default_cache_dir, BinDtype, DataKind, DataSpec};
pub use split::{Holdout, Split};

/// Inputs above this size get a progress bar.
const PROGRESS_BYTES: u64 = 16 * 1024 * 1024;

//! What to read: [`DataSpec`] and the kinds of input it names ([`DataKind`], [`BinDtype`]),
//! with the defaults a run starts from, such as where converted tokens are cached.

use super::split::Holdout;
use crate::error::{Error, Result};
use crate::train::tokenizer::Tokenizer;
use serde::{Deserialize, Serialize};
use std::path::PathBuf;
use std::str::FromStr;

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
    pub(super) fn name(self) -> &'static str {
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
    crate::cache::cache_root().join("tokens")
}

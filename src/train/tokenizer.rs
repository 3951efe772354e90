//! Tokenizers: a thin wrapper over the Hugging Face `tokenizers` crate.
//!
//! [`Tokenizer::from_file`] loads a `tokenizer.json` (pico's is the OLMo GPT-NeoX tokenizer:
//! 50280 ids, `<|endoftext|>` = 50279). [`train_bpe`] trains a byte-level BPE on local text
//! when that tokenizer is not available offline. [`resolve`] picks one of these for a run,
//! as its config says.
//!
//! Padding and truncation configured in a `tokenizer.json` are switched off: language-model
//! data is a plain stream of ids.

use super::config::TokenizerSection;
use super::fetch::{cache_dir, fetch_hf_tokenizer};
use crate::error::{Error, Result};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use tokenizers::decoders::byte_level::ByteLevel as ByteLevelDecoder;
use tokenizers::models::bpe::{BpeTrainerBuilder, BPE};
use tokenizers::models::TrainerWrapper;
use tokenizers::pre_tokenizers::byte_level::ByteLevel;
use tokenizers::AddedToken;

/// The end-of-text token of pico's tokenizer and of [`train_bpe`]'s.
pub const ENDOFTEXT: &str = "<|endoftext|>";

/// End-of-document token names looked up by [`Tokenizer::eos_id`], in order.
const EOS_NAMES: [&str; 5] = [ENDOFTEXT, "<|end_of_text|>", "</s>", "<eos>", "<|eos|>"];

/// A loaded tokenizer. Cheap to clone (the model is shared).
#[derive(Clone)]
pub struct Tokenizer {
    inner: Arc<tokenizers::Tokenizer>,
    /// Hash of the tokenizer's JSON: identifies it in token-cache keys.
    fingerprint: u64,
    path: Option<PathBuf>,
}

impl std::fmt::Debug for Tokenizer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Tokenizer")
            .field("path", &self.path)
            .field("vocab_size", &self.vocab_size())
            .field("eos_id", &self.eos_id())
            .finish()
    }
}

impl Tokenizer {
    /// Loads a Hugging Face `tokenizer.json`.
    pub fn from_file(path: impl AsRef<Path>) -> Result<Self> {
        let path = path.as_ref();
        let bytes = std::fs::read(path).map_err(|e| {
            let what = if e.kind() == std::io::ErrorKind::NotFound {
                "not found".to_string()
            } else {
                format!("cannot be read: {e}")
            };
            Error::Invalid(format!(
                "tokenizer file {} {what}: give the path of a Hugging Face tokenizer.json \
                 (pico's is the OLMo tokenizer, allenai_gpt-neox-olmo-dolma-v1_5.json), or train \
                 one on your data",
                path.display()
            ))
        })?;
        let mut tok = Self::from_bytes(&bytes).map_err(|e| {
            Error::Invalid(format!(
                "{}: not a valid Hugging Face tokenizer.json: {e}",
                path.display()
            ))
        })?;
        tok.path = Some(path.to_path_buf());
        Ok(tok)
    }

    /// Parses a `tokenizer.json` held in memory (errors carry no path).
    pub fn from_bytes(bytes: &[u8]) -> Result<Self> {
        // `tokenizers` panics on some malformed files instead of returning an error.
        let mut inner = crate::panic_guard::contain("tokenizer.json", || {
            tokenizers::Tokenizer::from_bytes(bytes)
                .map_err(|e| Error::Invalid(format!("tokenizer.json: {e}")))
        })?;
        inner.with_padding(None);
        inner
            .with_truncation(None)
            .map_err(|e| Error::Invalid(format!("tokenizer.json: {e}")))?;
        Ok(Tokenizer {
            inner: Arc::new(inner),
            fingerprint: fnv1a64(FNV_OFFSET, bytes),
            path: None,
        })
    }

    /// The file this tokenizer was loaded from, if any.
    pub fn path(&self) -> Option<&Path> {
        self.path.as_deref()
    }

    /// Token ids of `text` (no special tokens added around it; special tokens written in the
    /// text, such as `<|endoftext|>`, are recognized).
    pub fn encode(&self, text: &str) -> Result<Vec<u32>> {
        let enc = self
            .inner
            .encode_fast(text, false)
            .map_err(|e| Error::Invalid(format!("tokenizing failed: {e}")))?;
        Ok(enc.get_ids().to_vec())
    }

    /// Token ids of several texts, encoded in parallel (rayon), in order.
    pub fn encode_batch(&self, texts: &[&str]) -> Result<Vec<Vec<u32>>> {
        let encs = self
            .inner
            .encode_batch_fast(texts.to_vec(), false)
            .map_err(|e| Error::Invalid(format!("tokenizing failed: {e}")))?;
        Ok(encs.into_iter().map(|e| e.get_ids().to_vec()).collect())
    }

    /// The text of `ids` (special tokens are kept).
    pub fn decode(&self, ids: &[u32]) -> Result<String> {
        self.inner
            .decode(ids, false)
            .map_err(|e| Error::Invalid(format!("decoding failed: {e}")))
    }

    /// Number of ids, added tokens included (50280 for pico's tokenizer).
    pub fn vocab_size(&self) -> usize {
        self.inner.get_vocab_size(true)
    }

    /// The end-of-text token: `<|endoftext|>`, else `<|end_of_text|>`, `</s>`, `<eos>`, `<|eos|>`.
    pub fn eos_id(&self) -> Option<u32> {
        EOS_NAMES.iter().find_map(|n| self.inner.token_to_id(n))
    }

    /// The id of a token string, if it is in the vocabulary.
    pub fn token_to_id(&self, token: &str) -> Option<u32> {
        self.inner.token_to_id(token)
    }

    /// A hash of the tokenizer's JSON (stable across runs): token caches are keyed by it.
    pub fn fingerprint(&self) -> u64 {
        self.fingerprint
    }

    /// The wrapped `tokenizers` tokenizer.
    pub fn inner(&self) -> &tokenizers::Tokenizer {
        &self.inner
    }

    /// Whether encoding a text in pieces cut just before a whitespace that follows a
    /// non-whitespace character gives exactly the ids of encoding it whole. True for
    /// byte-level BPE tokenizers (GPT-2, GPT-NeoX/OLMo, [`train_bpe`]'s): their pre-tokenizer
    /// never joins a non-space character with the whitespace after it, and looks only ahead.
    /// The data pipeline uses this to tokenize long documents on several threads.
    pub fn splits_at_whitespace(&self) -> bool {
        let Ok(json) = self.inner.to_string(false) else {
            return false;
        };
        let Ok(v) = serde_json::from_str::<serde_json::Value>(&json) else {
            return false;
        };
        let pre = &v["pre_tokenizer"];
        let byte_level = pre["type"] == "ByteLevel"
            && pre["add_prefix_space"] == false
            && pre["use_regex"] != false;
        let normalizer_ok = match &v["normalizer"] {
            serde_json::Value::Null => true,
            n => matches!(n["type"].as_str(), Some("NFC" | "NFKC" | "NFD" | "NFKD")),
        };
        let added_ok = v["added_tokens"].as_array().is_some_and(|tokens| {
            tokens.iter().all(|t| {
                let content = t["content"].as_str().unwrap_or("");
                let joins = content
                    .chars()
                    .zip(content.chars().skip(1))
                    .any(|(a, b)| !a.is_whitespace() && b.is_whitespace());
                t["rstrip"] != true && !joins
            })
        });
        byte_level && normalizer_ok && added_ok
    }
}

/// The tokenizer of a run on text data, as `config` (`data.tokenizer`) asks, tried in order:
/// `name` as the path of a tokenizer.json; the tokenizer an earlier session of the run saved
/// at `saved`; `name` as a hub name, fetched (once) when the hub is reachable. Otherwise, or
/// when `name` is `bpe`, a byte-level BPE of `config.vocab_size` ids is trained on the
/// `text_files` (asked for only then) and saved at `saved`.
pub fn resolve(
    config: &TokenizerSection,
    saved: &Path,
    text_files: impl FnOnce() -> Result<Vec<PathBuf>>,
) -> Result<Tokenizer> {
    let name = config.name.as_str();
    if Path::new(name).is_file() {
        return Tokenizer::from_file(name);
    }
    if saved.exists() {
        return Tokenizer::from_file(saved);
    }
    // A hub name (pico's default): its tokenizer.json from the cache or the hub. A tokenizer
    // that cannot be had is an error, never a silent switch to another tokenizer: only
    // `bpe` trains one on the data.
    if name != "bpe" {
        let cache = cache_dir();
        return match fetch_hf_tokenizer(name, &cache) {
            Ok(path) => Tokenizer::from_file(path),
            Err(e) => Err(Error::Invalid(format!(
                "tokenizer '{name}' is not a local file and could not be fetched ({e}). Give \
                 its tokenizer.json as a path (--tokenizer PATH or data.tokenizer.name; pico's \
                 OLMo tokenizer is in ../shared/data/tokenizers/), put it at {}, or use \
                 --tokenizer bpe to train a byte-level BPE on the data",
                cache.join("hf").join(name).join("tokenizer.json").display()
            ))),
        };
    }
    train_bpe_files(&text_files()?, config.vocab_size, saved)
}

/// Trains a byte-level BPE tokenizer (GPT-2 style: byte-level pre-tokenizer and decoder, all
/// 256 bytes in the alphabet, so any text encodes without unknown tokens) on `texts`, with
/// `vocab_size` ids in all, `<|endoftext|>` being id 0. Deterministic: the same texts give
/// the same tokenizer. Saves it as a `tokenizer.json` at `save_to` (creating the folder) and
/// returns it as loaded from there.
pub fn train_bpe<I, S>(texts: I, vocab_size: usize, save_to: &Path) -> Result<Tokenizer>
where
    I: Iterator<Item = S> + Send,
    S: AsRef<str> + Send,
{
    let min = 256 + 1;
    if vocab_size < min {
        return Err(Error::Invalid(format!(
            "train_bpe: vocab_size {vocab_size} is too small: a byte-level BPE needs at least \
             {min} ids (256 bytes and <|endoftext|>)"
        )));
    }
    let mut tk = tokenizers::Tokenizer::new(BPE::default());
    tk.with_pre_tokenizer(Some(ByteLevel::new(false, true, true)));
    tk.with_decoder(Some(ByteLevelDecoder::new(false, true, true)));
    tk.with_post_processor(Some(ByteLevel::new(false, true, true)));
    let trainer = BpeTrainerBuilder::new()
        .vocab_size(vocab_size)
        .min_frequency(0)
        .show_progress(false)
        .special_tokens(vec![AddedToken::from(ENDOFTEXT, true)])
        .initial_alphabet(ByteLevel::alphabet().into_iter().collect())
        .build();
    let mut trainer = TrainerWrapper::BpeTrainer(trainer);
    tk.train(&mut trainer, texts)
        .map_err(|e| Error::Invalid(format!("train_bpe: training failed: {e}")))?;
    if tk.get_vocab_size(true) <= min {
        return Err(Error::Invalid(
            "train_bpe: no text to train on (the texts were empty)".to_string(),
        ));
    }
    if let Some(dir) = save_to.parent().filter(|d| !d.as_os_str().is_empty()) {
        std::fs::create_dir_all(dir)
            .map_err(|e| Error::Invalid(format!("cannot create folder {}: {e}", dir.display())))?;
    }
    tk.save(save_to, false).map_err(|e| {
        Error::Invalid(format!(
            "cannot save the tokenizer to {}: {e}",
            save_to.display()
        ))
    })?;
    Tokenizer::from_file(save_to)
}

/// [`train_bpe`] on the contents of text files (each file one text).
pub fn train_bpe_files(files: &[PathBuf], vocab_size: usize, save_to: &Path) -> Result<Tokenizer> {
    let mut texts = Vec::with_capacity(files.len());
    for f in files {
        texts.push(
            std::fs::read_to_string(f).map_err(|e| {
                Error::Invalid(format!("cannot read text file {}: {e}", f.display()))
            })?,
        );
    }
    train_bpe(texts.into_iter(), vocab_size, save_to)
}

pub(crate) use crate::cache::{fnv1a64, FNV_OFFSET};

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn corrupt_tokenizer_json_is_an_error() {
        let err = Tokenizer::from_bytes(b"{not json").unwrap_err().to_string();
        assert!(err.contains("tokenizer.json"), "{err}");
    }

    #[test]
    fn tiny_bpe_round_trip() {
        let dir = std::env::temp_dir().join(format!("wgtrain-tok-unit-{}", std::process::id()));
        let path = dir.join("tokenizer.json");
        let texts = ["the cat sat on the mat", "the dog sat on the log"];
        let tok = train_bpe(texts.iter(), 300, &path).unwrap();
        assert_eq!(tok.eos_id(), Some(0));
        let ids = tok.encode("the cat sat on the log").unwrap();
        assert_eq!(tok.decode(&ids).unwrap(), "the cat sat on the log");
        assert!(tok.splits_at_whitespace());
        let _ = std::fs::remove_dir_all(&dir);
    }
}

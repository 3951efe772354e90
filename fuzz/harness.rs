//! The bodies of wgtrain's fuzz targets, one per reader of outside data. Each takes any bytes
//! and must end in `Ok` or a clear `Err`: a panic, an abort or an unbounded allocation is a
//! finding. Where a reader succeeds, its result is checked for what a caller relies on (shapes
//! that match the data, ids below the vocabulary, a config that survives its own round trip).
//!
//! Shared by the cargo-fuzz targets (fuzz/fuzz_targets/) and by `tests/fuzz_replay.rs`, which
//! replays the seed corpus and every kept crash on stable Rust in the normal test suite.

#![allow(dead_code)] // each fuzz target uses one function of this file

use std::path::{Path, PathBuf};
use std::sync::OnceLock;
use wgtrain::train::data::{BinDtype, DataKind, DataSource, DataSpec};

/// A scratch directory of this process and thread (the replay test runs threads in parallel).
fn scratch() -> PathBuf {
    let thread = format!("{:?}", std::thread::current().id());
    let tag: String = thread.chars().filter(char::is_ascii_digit).collect();
    let dir = std::env::temp_dir().join(format!("wgtrain-fuzz-{}-{tag}", std::process::id()));
    std::fs::create_dir_all(&dir).expect("scratch directory");
    dir
}

fn write(name: &str, bytes: &[u8]) -> PathBuf {
    let path = scratch().join(name);
    std::fs::write(&path, bytes).expect("scratch file");
    path
}

/// Split `data` at its first NUL byte (text inputs never contain one).
fn split_at_nul(data: &[u8]) -> (&[u8], &[u8]) {
    match data.iter().position(|&b| b == 0) {
        Some(i) => (&data[..i], &data[i + 1..]),
        None => (data, &[]),
    }
}

fn text(data: &[u8]) -> Option<&str> {
    std::str::from_utf8(data).ok()
}

/// A data spec for small fuzzed inputs: windows of 4 + 1 ids, vocabulary 300, no cache files.
fn small_spec(path: &Path) -> DataSpec {
    let mut spec = DataSpec::new(path, 4, 300);
    spec.cache_dir = None;
    spec.progress = false;
    spec
}

/// Read every window a source offers (at most a few) and check each id against the vocabulary.
fn drain(mut source: DataSource, vocab: usize) {
    for _ in 0..3 {
        if let Ok(batch) = source.next_batch(2) {
            assert_eq!(batch.len(), 2 * (source.seq_len() + 1), "batch shape");
            assert!(batch.iter().all(|&id| (id as usize) < vocab), "id >= vocab");
        }
    }
    if source.num_windows() > 0 {
        let w = source
            .window(0)
            .expect("window 0 of a source that has windows");
        assert_eq!(w.len(), source.seq_len() + 1);
    }
}

/// safetensors files: model.safetensors, optimizer.safetensors.
pub fn safetensors_file(data: &[u8]) {
    let path = write("t.safetensors", data);
    if let Ok(tensors) = wgtrain::model::checkpoint::read_safetensors(&path) {
        for (name, t) in &tensors {
            let n = t.shape.iter().try_fold(1usize, |a, &d| a.checked_mul(d));
            assert_eq!(n, Some(t.data.len()), "{name}: shape and values disagree");
        }
    }
}

/// A checkpoint directory: config.json, a NUL, then model.safetensors.
pub fn checkpoint_dir(data: &[u8]) {
    let (config, weights) = split_at_nul(data);
    let dir = scratch().join("ckpt");
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    std::fs::write(dir.join("config.json"), config).unwrap();
    std::fs::write(dir.join("model.safetensors"), weights).unwrap();
    if let Ok(ckpt) = wgtrain::model::checkpoint::load(&dir) {
        let _ = ckpt.config.num_params();
        let _ = ckpt.check_against(&ckpt.config.param_specs());
    }
}

/// The fixed token file trainer_state positions are restored against (2000 ids, u16).
fn fixed_bin() -> &'static Path {
    static PATH: OnceLock<PathBuf> = OnceLock::new();
    PATH.get_or_init(|| {
        let ids: Vec<u8> = (0..2000u16).flat_map(|i| (i % 300).to_le_bytes()).collect();
        let dir = std::env::temp_dir().join(format!("wgtrain-fuzz-bin-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join("fixed.bin");
        std::fs::write(&path, ids).unwrap();
        path
    })
}

/// trainer_state.json: the step, the data position and the saved config.
pub fn trainer_state(data: &[u8]) {
    let Some(text) = text(data) else { return };
    let Ok(state) = serde_json::from_str::<wgtrain::train::trainer::TrainerState>(text) else {
        return;
    };
    let _ = wgtrain::train::config::TrainConfig::from_yaml(&state.config_yaml, &[]);
    let mut source = DataSource::open(&small_spec(fixed_bin())).expect("the fixed .bin opens");
    if source.restore(&state.data).is_ok() {
        drain(source, 300);
    }
}

/// The YAML training config, a NUL, then `--set key=value` overrides, one per line.
pub fn train_config(data: &[u8]) {
    let (yaml, sets) = split_at_nul(data);
    let (Some(yaml), Some(sets)) = (text(yaml), text(sets)) else {
        return;
    };
    let overrides: Vec<String> = sets.lines().map(str::to_string).collect();
    use wgtrain::train::config::TrainConfig;
    if let Ok(config) = TrainConfig::from_yaml(yaml, &overrides) {
        // What a checkpoint stores must read back as the same config.
        let again = TrainConfig::from_yaml(&config.to_yaml(), &[])
            .expect("a valid config's own YAML is valid");
        assert_eq!(again.to_yaml(), config.to_yaml(), "config round trip");
    }
}

/// Study files (studies/*.yaml), expanded into their runs' configs.
pub fn study_file(data: &[u8]) {
    let Some(text) = text(data) else { return };
    if let Ok(study) = wgtrain::study::file::StudyFile::from_yaml(text) {
        let _ = wgtrain::study::plan::plan_runs(&study, &scratch().join("study"), None);
    }
}

/// tokenizer.json (Hugging Face format), then a round of encoding and decoding.
pub fn tokenizer_json(data: &[u8]) {
    if let Ok(tok) = wgtrain::train::tokenizer::Tokenizer::from_bytes(data) {
        let _ = tok.vocab_size();
        let _ = tok.eos_id();
        let _ = tok.splits_at_whitespace();
        if let Ok(ids) = tok.encode("Hello, world. <|endoftext|> 123") {
            let _ = tok.decode(&ids);
        }
    }
}

/// Pre-tokenized parquet shards (pico's `input_ids` column).
pub fn parquet_shard(data: &[u8]) {
    let path = write("shard.parquet", data);
    let _ = wgtrain::train::data::read_parquet_documents(&path);
    let mut spec = small_spec(&path);
    spec.kind = Some(DataKind::Parquet);
    if let Ok(source) = DataSource::open(&spec) {
        drain(source, 300);
    }
}

/// `.bin` token files; the first byte chooses u16 or u32 ids.
pub fn token_bin(data: &[u8]) {
    let Some((&choice, ids)) = data.split_first() else {
        return;
    };
    let path = write("tokens.bin", ids);
    let mut spec = small_spec(&path);
    spec.bin_dtype = if choice & 1 == 0 {
        BinDtype::U16
    } else {
        BinDtype::U32
    };
    if let Ok(source) = DataSource::open(&spec) {
        drain(source, 300);
    }
}

/// The byte-level tokenizer the browser demo uses (no training, 257 ids).
fn byte_tokenizer() -> &'static wgtrain::train::tokenizer::Tokenizer {
    static TOK: OnceLock<wgtrain::train::tokenizer::Tokenizer> = OnceLock::new();
    TOK.get_or_init(|| {
        let json = wgtrain::train::byte_tokenizer::tokenizer_json();
        wgtrain::train::tokenizer::Tokenizer::from_bytes(json.as_bytes()).unwrap()
    })
}

/// JSONL text: training data (one document per line, `text` field) and held-out documents.
pub fn jsonl_text(data: &[u8]) {
    let path = write("docs.jsonl", data);
    if let Some(text) = text(data) {
        let _ = wgtrain::eval::documents::parse_jsonl_documents(text, &path);
    }
    let mut spec = small_spec(&path);
    spec.vocab_size = 300;
    spec.tokenizer = Some(byte_tokenizer().clone());
    if let Ok(source) = DataSource::open(&spec) {
        drain(source, 300);
    }
}

/// BLiMP paradigm files (JSONL of sentence pairs).
pub fn blimp_jsonl(data: &[u8]) {
    let path = write("paradigm.jsonl", data);
    if let Some(text) = text(data) {
        let _ = wgtrain::eval::blimp::parse_jsonl(text, &path);
    }
    let _ = wgtrain::eval::blimp::read_paradigm(&path);
}

/// A fuzz target's body.
pub type Target = fn(&[u8]);

/// Every target by name, for the replay test.
pub const TARGETS: &[(&str, Target)] = &[
    ("safetensors_file", safetensors_file),
    ("checkpoint_dir", checkpoint_dir),
    ("trainer_state", trainer_state),
    ("train_config", train_config),
    ("study_file", study_file),
    ("tokenizer_json", tokenizer_json),
    ("parquet_shard", parquet_shard),
    ("token_bin", token_bin),
    ("jsonl_text", jsonl_text),
    ("blimp_jsonl", blimp_jsonl),
];

//! Replays every fuzz target's seed corpus and every crash the fuzzers found (kept as
//! regressions) through the same harness the fuzzers run (fuzz/harness.rs), on stable Rust:
//! each reader must return Ok or an error, never panic. The fuzzers themselves run with
//! cargo-fuzz (see fuzz/README.md); CI also gives each a short smoke run.

#[path = "../fuzz/harness.rs"]
mod harness;

use std::path::Path;

fn inputs(dir: &Path) -> Vec<std::path::PathBuf> {
    let mut files: Vec<_> = std::fs::read_dir(dir)
        .map(|d| {
            d.flatten()
                .map(|e| e.path())
                .filter(|p| p.is_file())
                .collect()
        })
        .unwrap_or_default();
    files.sort();
    files
}

#[test]
fn every_seed_and_every_kept_crash_is_read_without_a_panic() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("fuzz");
    for (name, run) in harness::TARGETS {
        let seeds = inputs(&root.join("corpus").join(name));
        assert!(!seeds.is_empty(), "fuzz/corpus/{name} has no seeds");
        let crashes = inputs(&root.join("regressions").join(name));
        for file in seeds.iter().chain(&crashes) {
            let bytes = std::fs::read(file).unwrap();
            let outcome = std::panic::catch_unwind(|| run(&bytes));
            assert!(outcome.is_ok(), "{name}: {} panicked", file.display());
        }
    }
}

/// The seeds are valid inputs: a reader that rejected them all would make the fuzzers start
/// from nothing (and the replay above would pass vacuously).
#[test]
fn the_seeds_are_accepted_by_their_readers() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("fuzz/corpus");
    let ckpt = std::fs::read(root.join("checkpoint_dir/tiny")).unwrap();
    let nul = ckpt.iter().position(|&b| b == 0).unwrap();
    let dir = std::env::temp_dir().join(format!("wgtrain-seed-ckpt-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    std::fs::write(dir.join("config.json"), &ckpt[..nul]).unwrap();
    std::fs::write(dir.join("model.safetensors"), &ckpt[nul + 1..]).unwrap();
    wgtrain::model::checkpoint::load_checked(&dir).expect("the checkpoint seed loads");
    std::fs::remove_dir_all(&dir).unwrap();

    for seed in inputs(&root.join("train_config")) {
        let text = std::fs::read_to_string(&seed).unwrap();
        let (yaml, sets) = text.split_once('\0').unwrap();
        let sets: Vec<String> = sets.lines().map(str::to_string).collect();
        wgtrain::train::config::TrainConfig::from_yaml(yaml, &sets)
            .unwrap_or_else(|e| panic!("{}: {e}", seed.display()));
    }
    for seed in inputs(&root.join("study_file")) {
        let text = std::fs::read_to_string(&seed).unwrap();
        wgtrain::study::file::StudyFile::from_yaml(&text)
            .unwrap_or_else(|e| panic!("{}: {e}", seed.display()));
    }
    for seed in inputs(&root.join("parquet_shard")) {
        let copy =
            std::env::temp_dir().join(format!("wgtrain-seed-{}.parquet", std::process::id()));
        std::fs::copy(&seed, &copy).unwrap();
        let docs = wgtrain::train::data::read_parquet_documents(&copy)
            .unwrap_or_else(|e| panic!("{}: {e}", seed.display()));
        assert_eq!(docs.map(|d| d.len()), Some(3), "{}", seed.display());
    }
    for seed in inputs(&root.join("tokenizer_json")) {
        let bytes = std::fs::read(&seed).unwrap();
        wgtrain::train::tokenizer::Tokenizer::from_bytes(&bytes)
            .unwrap_or_else(|e| panic!("{}: {e}", seed.display()));
    }
    let text = std::fs::read_to_string(root.join("blimp_jsonl/pairs")).unwrap();
    let paradigm = wgtrain::eval::blimp::parse_jsonl(&text, Path::new("pairs")).unwrap();
    assert_eq!(paradigm.pairs.len(), 2);
}

//! Configs that would silently train something other than what they say are refused with the
//! key named, and the pico keys wgtrain accepts but does not act on are listed.

use std::path::Path;
use wgtrain::train::config::TrainConfig;

fn error_of(yaml: &str) -> String {
    match TrainConfig::from_yaml(yaml, &[]).and_then(|c| c.model_config().map(|_| c)) {
        Ok(_) => panic!("accepted: {yaml}"),
        Err(e) => e.to_string(),
    }
}

const RELORA: &str = "relora: { r: 4, lora_alpha: 8, reset_frequency: 10";

#[test]
fn configs_that_would_train_something_else_are_refused() {
    let cases = [
        ("model: { model_type: pico_relora }", "model.model_type"),
        (
            "training: { optimization: { lr_scheduler: relora_jagged_cosine } }",
            "training.optimization.lr_scheduler",
        ),
        (
            &*format!("model: {{ {RELORA}, target_modules: [proj] }} }}"),
            "'proj' is not a module",
        ),
        (
            &*format!("model: {{ {RELORA}, target_modules: [] }} }}"),
            "relora.target_modules",
        ),
        (
            "model: { relora: { r: 4, reset_frequency: 1 } }",
            "relora.reset_frequency",
        ),
        (
            &*format!("model: {{ {RELORA}, keep_original_weights: false }} }}"),
            "keep_original_weights",
        ),
    ];
    for (yaml, key) in cases {
        let e = error_of(yaml);
        assert!(e.contains(key), "{yaml}: {e}");
    }
    // The study's own configs are still accepted as they are.
    for name in [
        "pico-decoder-tiny",
        "pico-relora-tiny",
        "pico-relora-small",
        "quickstart",
    ] {
        let path = Path::new(env!("CARGO_MANIFEST_DIR")).join(format!("configs/{name}.yaml"));
        let c = TrainConfig::from_file(&path, &[]).unwrap();
        c.model_config().unwrap();
    }
    // The scheduler with its block is fine.
    let yaml = format!(
        "model: {{ model_type: pico_relora, {RELORA} }} }}\ntraining: {{ optimization: {{ lr_scheduler: relora_jagged_cosine }} }}"
    );
    TrainConfig::from_yaml(&yaml, &[])
        .unwrap()
        .model_config()
        .unwrap();
}

#[test]
fn accepted_but_ignored_pico_keys_are_listed() {
    let c = TrainConfig::from_yaml(
        "model: { batch_size: 1024 }\ncheckpointing: { save_to_hf: true }\nmonitoring: { save_to_wandb: false, wandb: { project: x } }",
        &[],
    )
    .unwrap();
    assert_eq!(
        c.ignored_keys(),
        [
            "model.batch_size",
            "checkpointing.save_to_hf",
            "monitoring.save_to_wandb",
            "monitoring.wandb"
        ]
    );
    assert!(TrainConfig::from_yaml("", &[])
        .unwrap()
        .ignored_keys()
        .is_empty());
}

#[test]
fn an_unavailable_hub_tokenizer_is_an_error_not_a_fresh_bpe() {
    // No cache and an unreachable hub (a closed port on this machine).
    let cache = std::env::temp_dir().join(format!("wgtrain-no-tok-{}", std::process::id()));
    std::env::set_var("WGTRAIN_CACHE", &cache);
    std::env::set_var("WGTRAIN_HF_ENDPOINT", "http://127.0.0.1:9");
    let section = wgtrain::train::config::TokenizerSection {
        name: "allenai/OLMo-7B-0724-hf".into(),
        vocab_size: 50304,
    };
    let saved = cache.join("run-tokenizer.json");
    let listed = std::cell::Cell::new(false);
    let result = wgtrain::train::tokenizer::resolve(&section, &saved, || {
        listed.set(true);
        Ok(Vec::new())
    });
    let e = match result {
        Ok(_) => panic!("a tokenizer that cannot be had must be an error"),
        Err(e) => e.to_string(),
    };
    assert!(
        e.contains("could not be fetched") && e.contains("--tokenizer bpe"),
        "{e}"
    );
    assert!(
        !listed.get() && !saved.exists(),
        "no BPE may be trained in its place"
    );
    let _ = std::fs::remove_dir_all(&cache);
}

#[test]
fn a_bare_hub_dataset_name_that_cannot_be_fetched_says_how_to_provide_it() {
    // pico's study configs name `pico-lm/pretokenized-dolma` without hf://: it is the hub
    // dataset; with an unreachable hub (a closed port) and an empty cache, the error gives
    // the ways to provide it.
    std::env::set_var("WGTRAIN_HF_ENDPOINT", "http://127.0.0.1:9");
    let cache = std::env::temp_dir().join(format!("wgtrain-no-data-{}", std::process::id()));
    for name in [
        "pico-lm/pretokenized-dolma",
        "hf://pico-lm/pretokenized-dolma",
    ] {
        let e = match wgtrain::train::data::resolve_dataset_in(name, &cache) {
            Ok(d) => panic!("{name} resolved to {}", d.path.display()),
            Err(e) => e.to_string(),
        };
        assert!(
            e.contains("Hugging Face dataset pico-lm/pretokenized-dolma")
                && e.contains("local directory of its parquet shards")
                && e.contains(&cache.join("hf").display().to_string()),
            "{e}"
        );
    }
    let _ = std::fs::remove_dir_all(&cache);
}

//! Paloma's per-document perplexity during training (`evaluation.metrics: [paloma]` with
//! `evaluation.paloma.documents`): the in-training figures of a ReLoRA run with LoRA dropout
//! equal what `wgtrain eval --documents` prints for the checkpoint written at the same step;
//! configs that would score the wrong thing are refused; the keys round-trip.
//!
//! The runs are tiny (context 16, one layer) with the byte tokenizer (one id per byte), so a
//! document's ids are its bytes.

mod common;

use std::path::{Path, PathBuf};
use std::sync::Arc;
use wgtrain::metrics::log::{read_log, series};
use wgtrain::model::checkpoint::load;
use wgtrain::train::byte_tokenizer;
use wgtrain::train::config::{PalomaSection, TrainConfig};
use wgtrain::train::trainer::Trainer;

/// Training text: sentences from a small seeded vocabulary.
fn training_text() -> String {
    let words = [
        "the", "cat", "sat", "on", "a", "mat", "and", "dog", "ran", "to", "house", "red",
    ];
    let r = common::random(1500, 5);
    let mut s = String::new();
    for (i, u) in r.iter().enumerate() {
        s.push_str(words[((u + 1.0) * 6.0) as usize % words.len()]);
        s.push(if i % 9 == 8 { '.' } else { ' ' });
    }
    s
}

/// Held-out documents: long ones (truncated to the context), short ones, one of a single id
/// (skipped).
const DOCUMENTS: [&str; 6] = [
    "the red dog ran to the house and the cat sat on a mat.",
    "a cat.",
    "on the mat the dog sat and ran and sat.",
    "x",
    "house to house, the red cat.",
    "dogs and cats and mats and houses and more than sixteen bytes",
];

struct Setup {
    root: PathBuf,
    data: PathBuf,
    documents: PathBuf,
    tokenizer: PathBuf,
}

fn setup(tag: &str) -> Setup {
    let root = common::temp_path(&format!("train-paloma-{tag}"));
    let data = root.join("data");
    let documents = root.join("heldout");
    std::fs::create_dir_all(&data).unwrap();
    std::fs::create_dir_all(&documents).unwrap();
    std::fs::write(data.join("train.txt"), training_text()).unwrap();
    let lines: Vec<String> = DOCUMENTS
        .iter()
        .map(|d| serde_json::json!({ "text": d }).to_string())
        .collect();
    std::fs::write(documents.join("docs.jsonl"), lines.join("\n")).unwrap();
    let tokenizer = root.join("tokenizer.json");
    std::fs::write(&tokenizer, byte_tokenizer::tokenizer_json()).unwrap();
    Setup {
        root,
        data,
        documents,
        tokenizer,
    }
}

/// A tiny pico-relora run (dropout 0.1) evaluating `evaluation` (a YAML mapping's body).
fn yaml(s: &Setup, evaluation: &str) -> String {
    format!(
        r#"
model:
  model_type: pico_relora
  d_model: 16
  n_layers: 1
  attention_n_heads: 4
  attention_n_kv_heads: 2
  activation_hidden_dim: 32
  max_seq_len: 16
  relora: {{ r: 4, lora_alpha: 8, lora_dropout: 0.1, reset_frequency: 50 }}
training:
  max_steps: 6
  seed: 11
  optimization: {{ lr: 0.01, lr_warmup_steps: 1 }}
data:
  dataset: {{ name: {data:?} }}
  dataloader: {{ batch_size: 4 }}
  tokenizer: {{ name: {tok:?} }}
checkpointing: {{ save_every_n_steps: 4 }}
evaluation: {{ every_n_steps: 4, {evaluation} }}
"#,
        data = s.data.display().to_string(),
        tok = s.tokenizer.display().to_string(),
    )
}

fn paloma_yaml(s: &Setup) -> String {
    yaml(
        s,
        &format!(
            "metrics: [paloma], paloma: {{ documents: {:?} }}",
            s.documents.display().to_string()
        ),
    )
}

/// The number right after `key` on the first line of `out` containing it.
fn number_after(out: &str, key: &str) -> f64 {
    out.lines()
        .find_map(|l| l.split_once(key).map(|(_, rest)| rest.to_string()))
        .and_then(|rest| rest.split_whitespace().next().and_then(|w| w.parse().ok()))
        .unwrap_or_else(|| panic!("no number after {key:?} in:\n{out}"))
}

fn eval_documents(checkpoint: &Path, documents: &Path) -> (f64, f64, String) {
    let out = common::wgtrain(["eval", "--checkpoint"])
        .arg(checkpoint)
        .arg("--documents")
        .arg(documents)
        .test_backend()
        .run_ok();
    (
        number_after(&out, "per-document perplexity "),
        number_after(&out, "token-pooled perplexity "),
        out,
    )
}

/// The value of `key` the log holds at `step`.
fn logged(log: &[serde_json::Map<String, serde_json::Value>], key: &str, step: u64) -> f64 {
    series(log, key)
        .iter()
        .find(|(s, _)| *s as u64 == step)
        .unwrap_or_else(|| panic!("no {key} at step {step}"))
        .1
}

#[test]
fn in_training_paloma_of_a_relora_run_equals_wgtrain_eval_on_its_checkpoints() {
    let s = setup("equal");
    let config = s.root.join("config.yaml");
    std::fs::write(&config, paloma_yaml(&s)).unwrap();
    let run = s.root.join("run");
    let out = common::wgtrain(["train", "--quiet", "--config"])
        .arg(&config)
        .arg("--run-dir")
        .arg(&run)
        .test_backend()
        .run_ok();
    assert!(out.contains("eval/paloma"), "{out}");
    let log = read_log(&run.join("metrics.jsonl")).unwrap();
    // Step 4: evaluated inside the loop after the checkpoint; step 6: the final evaluation.
    for step in [4u64, 6] {
        let ckpt = run.join(format!("checkpoints/step_{step:06}"));
        // The adapters matter (B is non-zero), and dropout is on: evaluation must ignore it.
        let c = load(&ckpt).unwrap();
        assert_eq!(c.config.relora.as_ref().unwrap().lora_dropout, 0.1);
        let b_max = c
            .tensors
            .iter()
            .filter(|(n, _)| n.ends_with("B_lora.weight"))
            .flat_map(|(_, t)| t.data.iter().map(|v| v.abs()))
            .fold(0.0f32, f32::max);
        assert!(b_max > 1e-4, "step {step}: B is zero ({b_max})");
        let (mean, pooled, eval_out) = eval_documents(&ckpt, &s.documents);
        let got_mean = logged(&log, "eval/paloma", step);
        let got_pooled = logged(&log, "eval/paloma_pooled", step);
        for (what, got, want) in [("mean", got_mean, mean), ("pooled", got_pooled, pooled)] {
            assert!(
                (got / want - 1.0).abs() < 1e-4,
                "step {step} {what}: training {got}, wgtrain eval {want}\n{eval_out}"
            );
        }
        assert!(
            (got_mean / got_pooled - 1.0).abs() > 1e-3,
            "the two figures differ"
        );
        // 5 documents of 2+ ids; each scores min(len, 16) - 1 ids.
        let tokens: usize = DOCUMENTS
            .iter()
            .filter(|d| d.len() >= 2)
            .map(|d| d.len().min(16) - 1)
            .sum();
        assert_eq!(logged(&log, "eval/paloma_documents", step), 5.0);
        assert_eq!(logged(&log, "eval/paloma_tokens", step), tokens as f64);
    }
    // Pre-tokenized documents (parquet, `input_ids` per row) score the same ids the same way.
    let parquet = s.root.join("heldout.parquet");
    write_input_ids(
        &parquet,
        &DOCUMENTS.map(|d| d.bytes().map(i32::from).collect()),
    );
    let ckpt = run.join("checkpoints/step_000006");
    let (mean, pooled, _) = eval_documents(&ckpt, &parquet);
    let (want_mean, want_pooled, _) = eval_documents(&ckpt, &s.documents);
    assert_eq!((mean, pooled), (want_mean, want_pooled));
    std::fs::remove_dir_all(&s.root).ok();
}

/// A parquet file with one required list<required int32> column `input_ids`.
fn write_input_ids(path: &Path, rows: &[Vec<i32>]) {
    use parquet::data_type::Int32Type;
    use parquet::file::properties::WriterProperties;
    use parquet::file::writer::SerializedFileWriter;
    use parquet::schema::parser::parse_message_type;
    let schema = "message schema { REQUIRED GROUP input_ids (LIST) { REPEATED GROUP list { \
                  REQUIRED INT32 element; } } }";
    let schema = Arc::new(parse_message_type(schema).unwrap());
    let props = Arc::new(WriterProperties::builder().build());
    let file = std::fs::File::create(path).unwrap();
    let mut w = SerializedFileWriter::new(file, schema, props).unwrap();
    let mut rg = w.next_row_group().unwrap();
    while let Some(mut col) = rg.next_column().unwrap() {
        let (mut vals, mut def, mut rep) = (vec![], vec![], vec![]);
        for row in rows {
            for (i, &v) in row.iter().enumerate() {
                vals.push(v);
                def.push(1);
                rep.push(if i == 0 { 0 } else { 1 });
            }
        }
        col.typed::<Int32Type>()
            .write_batch(&vals, Some(&def), Some(&rep))
            .unwrap();
        col.close().unwrap();
    }
    rg.close().unwrap();
    w.close().unwrap();
}

fn config_error(yaml: &str, overrides: &[&str]) -> String {
    let overrides: Vec<String> = overrides.iter().map(|o| o.to_string()).collect();
    match TrainConfig::from_yaml(yaml, &overrides) {
        Ok(_) => panic!("{yaml} {overrides:?} should be refused"),
        Err(e) => e.to_string(),
    }
}

fn trainer_error(s: &Setup, yaml: &str, tag: &str) -> String {
    let gpu = common::gpu();
    let config = TrainConfig::from_yaml(yaml, &[]).unwrap();
    match Trainer::new(&gpu, config, &s.root.join(tag)) {
        Ok(_) => panic!("{yaml} should be refused"),
        Err(e) => e.to_string(),
    }
}

#[test]
fn paloma_without_documents_inside_the_training_data_or_on_the_hub_is_refused() {
    let s = setup("refusals");
    // Listed without documents: refused at validation, never scored on training windows.
    for yaml in [
        "evaluation: { metrics: [paloma] }",
        "evaluation: { metrics: [paloma], paloma: { batch_size: 16, max_length: 64 } }",
    ] {
        let e = config_error(yaml, &[]);
        assert!(
            e.contains("evaluation.paloma.documents") && e.contains("never on the training"),
            "{e}"
        );
    }
    // Inside (or equal to) the training data.
    let inside = s.data.join("heldout");
    std::fs::create_dir_all(&inside).unwrap();
    std::fs::write(inside.join("a.txt"), "a held-out document").unwrap();
    for (i, docs) in [&inside, &s.data].iter().enumerate() {
        let config = yaml(
            &s,
            &format!(
                "metrics: [paloma], paloma: {{ documents: {:?} }}",
                docs.display().to_string()
            ),
        );
        let e = trainer_error(&s, &config, &format!("inside{i}"));
        assert!(e.contains("overlaps the training data"), "{e}");
    }
    // pico's hub dataset: not downloaded; the error says how to give the documents.
    let hub = yaml(
        &s,
        "metrics: [paloma], paloma: { dataset_name: pico-lm/pretokenized-paloma-tinsy, \
         dataset_split: val }",
    );
    let e = trainer_error(&s, &hub, "hub");
    assert!(
        e.contains("evaluation.paloma.dataset_name")
            && e.contains("huggingface-cli download")
            && e.contains("evaluation.paloma.documents: DIR"),
        "{e}"
    );
    // A missing local path.
    let missing = yaml(
        &s,
        "metrics: [paloma], paloma: { documents: ./no/such/docs }",
    );
    let e = trainer_error(&s, &missing, "missing");
    assert!(e.contains("does not exist"), "{e}");
    // Impossible options.
    for (paloma, key) in [
        ("max_length: 17", "evaluation.paloma.max_length"),
        ("max_length: 1", "evaluation.paloma.max_length"),
        ("long_documents: wrap", "evaluation.paloma.long_documents"),
        ("stride: 4", "evaluation.paloma.stride"),
        (
            "long_documents: slide, stride: 16",
            "evaluation.paloma.stride",
        ),
        ("documets: x", "documets"),
    ] {
        let e = config_error(
            &format!(
                "model: {{ max_seq_len: 16 }}\nevaluation: {{ metrics: [paloma], paloma: {{ documents: d, {paloma} }} }}"
            ),
            &[],
        );
        assert!(e.contains(key), "{paloma}: {e}");
    }
    std::fs::remove_dir_all(&s.root).ok();
}

#[test]
fn paloma_keys_round_trip_and_pico_keys_are_accepted() {
    let yaml = "model: { max_seq_len: 64 }\nevaluation:\n  metrics: [paloma, perplexity]\n  \
                paloma:\n    documents: /data/paloma\n    max_length: 32\n    \
                long_documents: slide\n    stride: 8\n";
    let c = TrainConfig::from_yaml(yaml, &[]).unwrap();
    let want = PalomaSection {
        documents: Some("/data/paloma".into()),
        max_length: Some(32),
        long_documents: Some("slide".into()),
        stride: Some(8),
        ..Default::default()
    };
    assert_eq!(c.evaluation.paloma.as_ref(), Some(&want));
    let back = TrainConfig::from_yaml(&c.to_yaml(), &[]).unwrap();
    assert_eq!(back.evaluation.paloma.as_ref(), Some(&want));
    assert_eq!(back.evaluation.metrics, ["paloma", "perplexity"]);
    let o = want.options(64);
    assert_eq!(
        (o.max_length, o.long),
        (32, wgtrain::eval::LongDocuments::Slide { stride: 8 })
    );
    // Defaults: the model's context, truncated (Paloma's rule).
    let d = PalomaSection::default().options(64);
    assert_eq!(d, wgtrain::eval::DocumentOptions::paloma(64));

    // pico's block as its configs write it; documents set on the command line win over the
    // hub name, which is then listed as not acted on, with pico's split and batch size.
    let pico = "evaluation:\n  metrics: [paloma]\n  paloma:\n    dataset_name: \
                pico-lm/pretokenized-paloma-tinsy\n    dataset_split: val\n    max_length: \
                2048\n    batch_size: 16\nmodel: { max_seq_len: 2048 }\n";
    let c = TrainConfig::from_yaml(pico, &[]).unwrap();
    let p = c.evaluation.paloma.clone().unwrap();
    assert_eq!(p.source(), Some("pico-lm/pretokenized-paloma-tinsy"));
    let c = TrainConfig::from_yaml(pico, &["evaluation.paloma.documents=/local/paloma".into()])
        .unwrap();
    assert_eq!(
        c.evaluation.paloma.as_ref().unwrap().source(),
        Some("/local/paloma")
    );
    assert_eq!(
        c.ignored_keys(),
        [
            "evaluation.paloma.dataset_name",
            "evaluation.paloma.dataset_split",
            "evaluation.paloma.batch_size"
        ]
    );
    // A paloma block without the metric is not acted on, and said so.
    let c = TrainConfig::from_yaml("evaluation: { paloma: { batch_size: 16 } }", &[]).unwrap();
    assert_eq!(c.ignored_keys(), ["evaluation.paloma"]);
    // The study's configs keep pico's block and load.
    for name in ["pico-decoder-tiny", "pico-relora-tiny"] {
        let path = Path::new(env!("CARGO_MANIFEST_DIR")).join(format!("configs/{name}.yaml"));
        let c = TrainConfig::from_file(&path, &[]).unwrap();
        assert!(c.evaluates("paloma"));
    }
}

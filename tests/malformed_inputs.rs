//! The table of malformed inputs (docs/errors.md): every row is a case here. Each case builds
//! one bad input, runs the reader (or the CLI) on it, and checks that it ends in an error (not
//! a panic) whose message names the problem, and for the CLI and training cases that nothing
//! half-made is left on disk. `WGTRAIN_ERRORS_TABLE=PATH` writes the messages as seen, in the
//! table's form; `docs_list_every_case` keeps docs/errors.md and this file in step.

mod common;

use std::path::{Path, PathBuf};
use std::sync::atomic::AtomicBool;
use std::sync::{Arc, OnceLock};
use wgtrain::model::checkpoint;
use wgtrain::train::config::TrainConfig;
use wgtrain::train::data::{DataSource, DataSpec};
use wgtrain::train::tokenizer::Tokenizer;
use wgtrain::train::trainer::Trainer;

type Check = fn(&Path) -> String;

/// (row id, what the input is, the check, substrings the message must hold)
struct Case {
    id: &'static str,
    input: &'static str,
    run: Check,
    expect: &'static [&'static str],
}

fn repo(rel: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join(rel)
}

fn err<T>(r: wgtrain::Result<T>) -> String {
    match r {
        Ok(_) => "NO ERROR".into(),
        Err(e) => e.to_string(),
    }
}

fn config_err(yaml: &str, sets: &[&str]) -> String {
    let sets: Vec<String> = sets.iter().map(|s| s.to_string()).collect();
    err(TrainConfig::from_yaml(yaml, &sets).and_then(|c| c.model_config()))
}

/// A copy of the pico_mini fixture checkpoint (config.json, model.safetensors) in `dir`.
fn mini_checkpoint(dir: &Path) -> PathBuf {
    let ckpt = dir.join("ckpt");
    std::fs::create_dir_all(&ckpt).unwrap();
    for f in ["config.json", "model.safetensors"] {
        std::fs::copy(repo("tests/fixtures/pico_mini").join(f), ckpt.join(f)).unwrap();
    }
    ckpt
}

/// A safetensors file from a raw header and data.
fn safetensors_bytes(header: &str, data: &[u8]) -> Vec<u8> {
    let mut h = header.as_bytes().to_vec();
    while !h.len().is_multiple_of(8) {
        h.push(b' ');
    }
    let mut out = (h.len() as u64).to_le_bytes().to_vec();
    out.extend(h);
    out.extend_from_slice(data);
    out
}

/// The pico_mini weights rewritten with `edit` applied to (name, shape, values).
fn edited_mini(dir: &Path, edit: impl Fn(&mut Vec<(String, Vec<usize>, Vec<f32>)>)) -> PathBuf {
    let ckpt = mini_checkpoint(dir);
    let loaded = checkpoint::read_safetensors(&ckpt.join("model.safetensors")).unwrap();
    let mut tensors: Vec<(String, Vec<usize>, Vec<f32>)> = loaded
        .into_iter()
        .map(|(n, t)| (n, t.shape.clone(), t.data.as_f32().unwrap().to_vec()))
        .collect();
    edit(&mut tensors);
    let refs: Vec<(&str, &[usize], checkpoint::HostSlice)> = tensors
        .iter()
        .map(|(n, s, v)| (n.as_str(), s.as_slice(), checkpoint::HostSlice::F32(v)))
        .collect();
    checkpoint::write_safetensors(&ckpt.join("model.safetensors"), &refs).unwrap();
    ckpt
}

fn load_err(ckpt: &Path) -> String {
    err(checkpoint::load_checked(ckpt))
}

fn data_err(path: &Path, vocab: usize, tokenizer: Option<Tokenizer>) -> String {
    let mut spec = DataSpec::new(path, 8, vocab);
    spec.cache_dir = None;
    spec.progress = false;
    spec.tokenizer = tokenizer;
    err(DataSource::open(&spec))
}

fn byte_tokenizer() -> Tokenizer {
    let json = wgtrain::train::byte_tokenizer::tokenizer_json();
    Tokenizer::from_bytes(json.as_bytes()).unwrap()
}

fn run_yaml(data: &Path, extra_training: &str) -> String {
    format!(
        r#"
model: {{ preset: tiny, d_model: 32, n_layers: 1, attention_n_heads: 2, attention_n_kv_heads: 2,
         activation_hidden_dim: 64, max_seq_len: 16 }}
training: {{ max_steps: 2, {extra_training} }}
data:
  dataset: {{ name: {data:?} }}
  dataloader: {{ batch_size: 2 }}
  tokenizer: {{ name: bpe, vocab_size: 300 }}
checkpointing: {{ save_every_n_steps: 2 }}
evaluation: {{ metrics: [] }}
"#
    )
}

/// One trained checkpoint (2 steps), made once and copied by the cases that damage it.
fn trained_checkpoint() -> &'static Path {
    static DIR: OnceLock<PathBuf> = OnceLock::new();
    DIR.get_or_init(|| {
        let gpu = common::gpu();
        let run = common::temp_path("malformed-trained");
        let config = TrainConfig::from_yaml(&run_yaml(&common::alice(), ""), &[]).unwrap();
        let mut t = Trainer::new(&gpu, config, &run).unwrap();
        t.show_progress = false;
        t.run(&Arc::new(AtomicBool::new(false))).unwrap();
        run.join("checkpoints/step_000002")
    })
}

fn damaged_resume(dir: &Path, damage: impl Fn(&Path)) -> String {
    let run = dir.join("run");
    let ckpt = run.join("checkpoints/step_000002");
    common::copy_checkpoint(trained_checkpoint(), &ckpt);
    damage(&ckpt);
    let gpu = common::gpu();
    err(Trainer::resume(&gpu, &ckpt, &[]))
}

/// The CLI's message for `args` (run in `dir`), which must fail without a panic.
fn cli(dir: &Path, args: &[&str]) -> String {
    std::fs::create_dir_all(dir).unwrap();
    common::wgtrain(args).current_dir(dir).run().assert_failed()
}

const CASES: &[Case] = &[
    // --- config
    Case { id: "config-unknown-key", input: "`training: { max_stepz: 10 }`",
        run: |_| config_err("training: { max_stepz: 10 }", &[]), expect: &["max_stepz"] },
    Case { id: "config-wrong-type", input: "`training: { max_steps: many }`",
        run: |_| config_err("training: { max_steps: many }", &[]), expect: &["`training.max_steps`", "invalid type"] },
    Case { id: "config-zero-steps", input: "`training: { max_steps: 0 }`",
        run: |_| config_err("training: { max_steps: 0 }", &[]), expect: &["training.max_steps", "at least 1"] },
    Case { id: "config-negative-lr", input: "`training.optimization.lr: -1`",
        run: |_| config_err("training: { optimization: { lr: -1 } }", &[]), expect: &["lr"] },
    Case { id: "config-bad-yaml", input: "a config that is not YAML (`model: [`)",
        run: |_| config_err("model: [", &[]), expect: &["not valid YAML"] },
    Case { id: "config-heads-dont-divide", input: "`d_model: 64` with 12 heads",
        run: |_| config_err("model: { preset: tiny, d_model: 64, attention_n_heads: 12 }", &[]), expect: &["d_model", "divisible"] },
    Case { id: "config-unknown-preset", input: "`model.preset: gigantic`",
        run: |_| config_err("model: { preset: gigantic }", &[]), expect: &["gigantic"] },
    Case { id: "config-jagged-without-relora", input: "`lr_scheduler: relora_jagged_cosine` without a `model.relora` block",
        run: |_| config_err("training: { optimization: { lr_scheduler: relora_jagged_cosine } }", &[]), expect: &["relora_jagged_cosine", "model.relora"] },
    Case { id: "config-relora-type-without-block", input: "`model_type: pico_relora` without a `model.relora` block",
        run: |_| config_err("model: { model_type: pico_relora }", &[]), expect: &["pico_relora needs a model.relora block"] },
    Case { id: "config-bad-nonfinite-policy", input: "`training.on_nonfinite: ignore`",
        run: |_| config_err("training: { on_nonfinite: ignore }", &[]), expect: &["training.on_nonfinite", "skip"] },
    Case { id: "config-set-without-equals", input: "`--set training.max_steps`",
        run: |_| config_err("", &["training.max_steps"]), expect: &["training.max_steps"] },
    Case { id: "config-set-unknown-key", input: "`--set training.nope=3`",
        run: |_| config_err("", &["training.nope=3"]), expect: &["nope"] },
    Case { id: "config-missing-file", input: "`wgtrain train --config missing.yaml`",
        run: |d| cli(d, &["train", "--config", "/no/such/config.yaml"]), expect: &["/no/such/config.yaml"] },
    // --- checkpoint
    Case { id: "ckpt-missing-dir", input: "`load` of a directory that does not exist",
        run: |_| load_err(Path::new("/no/such/ckpt")), expect: &["no such checkpoint directory"] },
    Case { id: "ckpt-missing-config", input: "a checkpoint without config.json",
        run: |d| { let c = mini_checkpoint(d); std::fs::remove_file(c.join("config.json")).unwrap(); load_err(&c) },
        expect: &["config.json"] },
    Case { id: "ckpt-config-not-json", input: "config.json that is not JSON",
        run: |d| { let c = mini_checkpoint(d); std::fs::write(c.join("config.json"), "{ d_model: ").unwrap(); load_err(&c) },
        expect: &["config.json"] },
    Case { id: "ckpt-foreign-model-type", input: "config.json with `model_type: llama`",
        run: |d| { let c = mini_checkpoint(d); let t = std::fs::read_to_string(c.join("config.json")).unwrap();
            std::fs::write(c.join("config.json"), t.replacen('{', "{\"model_type\": \"llama\",", 1)).unwrap(); load_err(&c) },
        expect: &["llama"] },
    Case { id: "ckpt-missing-weights", input: "a checkpoint without model.safetensors",
        run: |d| { let c = mini_checkpoint(d); std::fs::remove_file(c.join("model.safetensors")).unwrap(); load_err(&c) },
        expect: &["model.safetensors"] },
    Case { id: "ckpt-truncated", input: "model.safetensors cut to half its length",
        run: |d| { let c = mini_checkpoint(d); let p = c.join("model.safetensors"); let b = std::fs::read(&p).unwrap();
            std::fs::write(&p, &b[..b.len() / 2]).unwrap(); load_err(&c) },
        expect: &["model.safetensors"] },
    Case { id: "ckpt-header-past-file", input: "a safetensors header whose tensor ends past the file",
        run: |d| { let c = mini_checkpoint(d);
            std::fs::write(c.join("model.safetensors"), safetensors_bytes(r#"{"a":{"dtype":"F32","shape":[1000],"data_offsets":[0,4000]}}"#, &[0; 16])).unwrap(); load_err(&c) },
        expect: &["model.safetensors"] },
    Case { id: "ckpt-header-claims-100gb", input: "a safetensors header length of 100 GB (not allocated)",
        run: |d| { let c = mini_checkpoint(d); let mut b = (100u64 << 30).to_le_bytes().to_vec(); b.extend_from_slice(b"{}      ");
            std::fs::write(c.join("model.safetensors"), b).unwrap(); load_err(&c) },
        expect: &["model.safetensors"] },
    Case { id: "ckpt-tensor-claims-100gb", input: "a tensor whose shape claims 100 GB in a small file",
        run: |d| { let c = mini_checkpoint(d);
            std::fs::write(c.join("model.safetensors"), safetensors_bytes(r#"{"a":{"dtype":"F32","shape":[25000000000],"data_offsets":[0,100000000000]}}"#, &[0; 64])).unwrap(); load_err(&c) },
        expect: &["model.safetensors"] },
    Case { id: "ckpt-integer-weights", input: "a weight stored as I64",
        run: |d| { let c = mini_checkpoint(d);
            std::fs::write(c.join("model.safetensors"), safetensors_bytes(r#"{"embedding_proj.weight":{"dtype":"I64","shape":[1],"data_offsets":[0,8]}}"#, &[0; 8])).unwrap(); load_err(&c) },
        expect: &["unsupported dtype", "F32, BF16 or F16"] },
    Case { id: "ckpt-wrong-shape", input: "a weight with a transposed shape",
        run: |d| { let c = edited_mini(d, |t| { let x = t.iter_mut().find(|x| x.0 == "layers.0.swiglu.w_2.weight").unwrap(); x.1.reverse(); }); load_err(&c) },
        expect: &["layers.0.swiglu.w_2.weight", "shape"] },
    Case { id: "ckpt-missing-tensor", input: "model.safetensors without `output_norm.weight`",
        run: |d| { let c = edited_mini(d, |t| t.retain(|x| x.0 != "output_norm.weight")); load_err(&c) },
        expect: &["output_norm.weight", "missing"] },
    Case { id: "ckpt-extra-tensor", input: "model.safetensors with an extra tensor",
        run: |d| { let c = edited_mini(d, |t| t.push(("layers.9.extra.weight".into(), vec![2], vec![0.0, 1.0]))); load_err(&c) },
        expect: &["layers.9.extra.weight"] },
    Case { id: "ckpt-mixed-hf-prefix", input: "tensor names with and without pico's `pico_decoder.` prefix",
        run: |d| { let c = edited_mini(d, |t| t[0].0 = format!("pico_decoder.{}", t[0].0)); load_err(&c) },
        expect: &["pico_decoder."] },
    Case { id: "resume-not-a-checkpoint", input: "`--resume` of a directory without trainer_state.json",
        run: |d| { let gpu = common::gpu(); std::fs::create_dir_all(d).unwrap(); err(Trainer::resume(&gpu, d, &[])) },
        expect: &["not a wgtrain training checkpoint"] },
    Case { id: "resume-state-corrupt", input: "trainer_state.json that is not JSON",
        run: |d| damaged_resume(d, |c| std::fs::write(c.join("trainer_state.json"), "{\"step\": 2,").unwrap()),
        expect: &["trainer_state.json"] },
    Case { id: "resume-optimizer-missing-tensor", input: "optimizer.safetensors without one moment",
        run: |d| damaged_resume(d, |c| {
            let p = c.join("optimizer.safetensors");
            let t = checkpoint::read_safetensors(&p).unwrap();
            let kept: Vec<_> = t.iter().skip(1).map(|(n, x)| (n.clone(), x.shape.clone(), x.data.as_f32().unwrap().to_vec())).collect();
            let refs: Vec<(&str, &[usize], checkpoint::HostSlice)> = kept.iter().map(|(n, s, v)| (n.as_str(), s.as_slice(), checkpoint::HostSlice::F32(v))).collect();
            checkpoint::write_safetensors(&p, &refs).unwrap(); }),
        expect: &["optimizer.safetensors", "is missing", "earlier checkpoint"] },
    Case { id: "resume-optimizer-truncated", input: "optimizer.safetensors cut short",
        run: |d| damaged_resume(d, |c| { let p = c.join("optimizer.safetensors"); let b = std::fs::read(&p).unwrap(); std::fs::write(&p, &b[..b.len() - 100]).unwrap(); }),
        expect: &["optimizer.safetensors"] },
    Case { id: "resume-data-position-mismatch", input: "trainer_state.json whose data position is for other data",
        run: |d| damaged_resume(d, |c| { let p = c.join("trainer_state.json"); let t = std::fs::read_to_string(&p).unwrap();
            let mut v: serde_json::Value = serde_json::from_str(&t).unwrap(); v["data"]["windows"] = 7.into(); std::fs::write(&p, v.to_string()).unwrap(); }),
        expect: &["windows"] },
    // --- tokenizer
    Case { id: "tok-missing", input: "`data.tokenizer.name: /no/such/tokenizer.json`",
        run: |_| err(Tokenizer::from_file("/no/such/tokenizer.json")), expect: &["not found", "tokenizer.json"] },
    Case { id: "tok-not-json", input: "tokenizer.json holding garbage",
        run: |d| { std::fs::create_dir_all(d).unwrap(); let p = d.join("t.json"); std::fs::write(&p, b"\x00\x01garbage").unwrap(); err(Tokenizer::from_file(&p)) },
        expect: &["not a valid Hugging Face tokenizer.json"] },
    Case { id: "tok-panicking-structure", input: "tokenizer.json whose decoder lacks a field (the `tokenizers` crate panics on it; found by fuzzing)",
        run: |_| err(Tokenizer::from_bytes(&std::fs::read(repo("fuzz/regressions/tokenizer_json/decoder_missing_field")).unwrap())),
        expect: &["tokenizer.json", "malformed"] },
    Case { id: "tok-vocab-above-model", input: "a tokenizer of 300 ids for `model.vocab_size: 64`",
        run: |d| { let gpu = common::gpu(); let c = TrainConfig::from_yaml(&run_yaml(&common::alice(), ""), &["model.vocab_size=64".into()]).unwrap();
            let r = Trainer::new(&gpu, c, &d.join("run")).map(|_| ()); assert!(!d.join("run/metrics.jsonl").exists()); err(r) },
        expect: &["model.vocab_size", "smaller than the tokenizer"] },
    // --- data
    Case { id: "data-missing", input: "`--data /no/such/data.txt`",
        run: |_| data_err(Path::new("/no/such/data.txt"), 300, Some(byte_tokenizer())), expect: &["/no/such/data.txt", "does not exist"] },
    Case { id: "data-empty-text", input: "an empty text file",
        run: |d| { std::fs::create_dir_all(d).unwrap(); let p = d.join("e.txt"); std::fs::write(&p, "").unwrap(); data_err(&p, 300, Some(byte_tokenizer())) },
        expect: &["empty"] },
    Case { id: "data-too-short", input: "a text shorter than one sequence",
        run: |d| { std::fs::create_dir_all(d).unwrap(); let p = d.join("s.txt"); std::fs::write(&p, "hi").unwrap(); data_err(&p, 300, Some(byte_tokenizer())) },
        expect: &["too short", "seq_len"] },
    Case { id: "data-binary-garbage-text", input: "binary garbage in a .txt file",
        run: |d| { std::fs::create_dir_all(d).unwrap(); let p = d.join("g.txt"); std::fs::write(&p, [0xffu8, 0xfe, 0x00, 0x80, 0x81].repeat(50)).unwrap(); data_err(&p, 300, Some(byte_tokenizer())) },
        expect: &["g.txt"] },
    Case { id: "data-text-without-tokenizer", input: "text data with no tokenizer",
        run: |d| { std::fs::create_dir_all(d).unwrap(); let p = d.join("t.txt"); std::fs::write(&p, "some words here").unwrap(); data_err(&p, 300, None) },
        expect: &["tokenizer is needed"] },
    Case { id: "data-jsonl-not-json", input: "a .jsonl line that is not JSON",
        run: |d| { std::fs::create_dir_all(d).unwrap(); let p = d.join("x.jsonl"); std::fs::write(&p, "{\"text\": \"fine\"}\nnot json\n").unwrap(); data_err(&p, 300, Some(byte_tokenizer())) },
        expect: &["x.jsonl", "line 2"] },
    Case { id: "data-jsonl-missing-field", input: "a .jsonl line without the `text` field",
        run: |d| { std::fs::create_dir_all(d).unwrap(); let p = d.join("y.jsonl"); std::fs::write(&p, "{\"body\": \"no text field\"}\n").unwrap(); data_err(&p, 300, Some(byte_tokenizer())) },
        expect: &["y.jsonl", "text"] },
    Case { id: "data-bin-id-out-of-range", input: "a .bin file holding id 60000 for a 300-id model",
        run: |d| { std::fs::create_dir_all(d).unwrap(); let p = d.join("t.bin"); let ids: Vec<u8> = (0..100u16).map(|i| if i == 50 { 60000 } else { i }).flat_map(u16::to_le_bytes).collect();
            std::fs::write(&p, ids).unwrap(); data_err(&p, 300, None) },
        expect: &["60000", "300"] },
    Case { id: "data-bin-odd-length", input: "a u16 .bin file of an odd number of bytes",
        run: |d| { std::fs::create_dir_all(d).unwrap(); let p = d.join("o.bin"); std::fs::write(&p, [1u8; 101]).unwrap(); data_err(&p, 300, None) },
        expect: &["o.bin"] },
    Case { id: "data-parquet-garbage", input: "a .parquet file of random bytes",
        run: |d| { std::fs::create_dir_all(d).unwrap(); let p = d.join("g.parquet"); std::fs::write(&p, common::random(200, 3).iter().map(|x| x.to_bits() as u8).collect::<Vec<u8>>()).unwrap(); data_err(&p, 300, None) },
        expect: &["g.parquet"] },
    Case { id: "data-parquet-wrong-column", input: "a parquet shard without an `input_ids` column",
        run: |d| { std::fs::create_dir_all(d).unwrap(); let p = d.join("w.parquet");
            std::fs::copy(repo("fuzz/corpus/parquet_shard/int64_plain"), &p).unwrap();
            let mut spec = DataSpec::new(&p, 4, 300); spec.cache_dir = None; spec.progress = false; spec.parquet_column = "tokens".into(); err(DataSource::open(&spec)) },
        expect: &["tokens"] },
    Case { id: "blimp-missing-field", input: "a BLiMP line without `sentence_bad`",
        run: |d| { std::fs::create_dir_all(d).unwrap(); let p = d.join("p.jsonl"); std::fs::write(&p, "{\"sentence_good\": \"A dog barks.\"}\n").unwrap(); err(wgtrain::eval::blimp::read_paradigm(&p)) },
        expect: &["p.jsonl", "sentence_bad"] },
    // --- backend and adapter
    Case { id: "backend-unknown", input: "`--backend cuda`",
        run: |d| cli(d, &["devices", "--backend", "cuda"]), expect: &["unknown backend 'cuda'", "vulkan"] },
    Case { id: "backend-not-here", input: "`--backend metal` on Linux",
        run: |_| err(wgtrain::Gpu::new_blocking(wgtrain::GpuOptions { backend: "metal".parse().unwrap(), ..Default::default() })),
        expect: &["metal"] },
    Case { id: "adapter-buffer-too-large", input: "a row above the adapter's largest storage binding",
        run: |_| { let gpu = common::gpu_with(wgtrain::GpuOptions { max_binding_bytes: Some(64), ..Default::default() });
            err(wgtrain::Tensor::zeros(&gpu, &[2, 1024], wgtrain::gpu::DType::F32)) },
        expect: &["too large for this adapter"] },
    Case { id: "adapter-memory-too-small", input: "a run planned above `--memory-gib`",
        run: |d| { let gpu = common::gpu_with(wgtrain::GpuOptions { memory_bytes: Some(64 << 10), ..Default::default() });
            let c = TrainConfig::from_yaml(&run_yaml(&common::alice(), ""), &[]).unwrap();
            let r = Trainer::new(&gpu, c, &d.join("run")).map(|_| ()); assert!(!d.join("run/metrics.jsonl").exists()); err(r) },
        expect: &["needs about", "gradient_accumulation_steps"] },
    // --- CLI
    Case { id: "cli-existing-run-dir", input: "`wgtrain train --run-dir` of a directory that holds a run",
        run: |d| { std::fs::create_dir_all(d).unwrap(); std::fs::write(d.join("metrics.jsonl"), "{\"step\":1}\n").unwrap();
            let before = std::fs::read(d.join("metrics.jsonl")).unwrap();
            let m = cli(d, &["train", "--quiet", "--steps", "1", "--run-dir", d.to_str().unwrap()]);
            assert_eq!(std::fs::read(d.join("metrics.jsonl")).unwrap(), before, "the old run was touched"); m },
        expect: &["already holds a run", "--resume"] },
    Case { id: "cli-resume-missing", input: "`wgtrain train --resume /no/such/run`",
        run: |d| cli(d, &["train", "--resume", "/no/such/run"]), expect: &["/no/such/run"] },
    Case { id: "cli-eval-missing-checkpoint", input: "`wgtrain eval --checkpoint /no/such/ckpt`",
        run: |d| cli(d, &["eval", "--checkpoint", "/no/such/ckpt", "--text", "x.txt"]), expect: &["/no/such/ckpt"] },
    Case { id: "cli-study-missing-file", input: "`wgtrain study --config missing.yaml`",
        run: |d| cli(d, &["study", "--config", "/no/such/study.yaml"]), expect: &["/no/such/study.yaml"] },
    Case { id: "study-bad-name", input: "a study file named `a b`",
        run: |_| err(wgtrain::study::file::StudyFile::from_yaml("name: a b\nbase: {}\nscales: []\nvariants: []\n")),
        expect: &["study name"] },
];

fn table_row(c: &Case, msg: &str) -> String {
    let one_line = msg.replace('\n', " ").replace('|', "\\|");
    format!("| `{}` | {} | {} |\n", c.id, c.input, one_line)
}

#[test]
fn every_malformed_input_gets_a_clear_error() {
    let mut failures = Vec::new();
    let mut table = String::new();
    for c in CASES {
        let dir = common::temp_path(&format!("malformed-{}", c.id));
        let msg = match std::panic::catch_unwind(|| (c.run)(&dir)) {
            Ok(m) => m,
            Err(_) => {
                failures.push(format!("{}: panicked", c.id));
                continue;
            }
        };
        let missing: Vec<_> = c.expect.iter().filter(|w| !msg.contains(*w)).collect();
        if msg == "NO ERROR" || !missing.is_empty() {
            failures.push(format!("{}: missing {missing:?} in: {msg}", c.id));
        }
        table += &table_row(c, &msg);
        let _ = std::fs::remove_dir_all(&dir);
    }
    if let Ok(path) = std::env::var("WGTRAIN_ERRORS_TABLE") {
        std::fs::write(path, &table).unwrap();
    }
    assert!(
        failures.is_empty(),
        "{} cases failed:\n{}",
        failures.len(),
        failures.join("\n")
    );
}

#[test]
fn docs_list_every_case() {
    let doc = std::fs::read_to_string(repo("docs/errors.md")).unwrap();
    assert!(CASES.len() >= 40, "the table needs at least 40 rows");
    for c in CASES {
        assert!(
            doc.contains(&format!("| `{}` |", c.id)),
            "docs/errors.md lacks {}",
            c.id
        );
    }
}

//! `wgtrain export --merge` writes a plain model that computes what its ReLoRA checkpoint
//! computes, `W x + s B A x`, under every quirk setting (the quirks describe the reference's
//! training, not the checkpoint's function); and the browser demo's export agrees with it.

mod common;

use std::path::{Path, PathBuf};
use wgtrain::demo::{DemoOptions, DemoSession};
use wgtrain::model::checkpoint::{load, Checkpoint};
use wgtrain::model::config::ModelConfig;
use wgtrain::model::decoder::Decoder;
use wgtrain::model::merge::merge_checkpoint;
use wgtrain::Gpu;

fn fixture() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/relora_mini")
}

type Weights = std::collections::HashMap<String, Vec<f32>>;

fn logits_of(gpu: &Gpu, config: &ModelConfig, weights: &Weights) -> Vec<f32> {
    let m = Decoder::for_inference(gpu, config, 2, 16).unwrap();
    m.load_params(gpu, |n| weights.get(n).map(Vec::as_slice))
        .unwrap();
    let ids: Vec<u32> = (0..34).map(|i| (i * 7 + 3) % 97).collect();
    m.set_batch(gpu, &ids).unwrap();
    let mut enc = gpu.encoder();
    m.record_eval_forward(&mut enc);
    gpu.submit(enc);
    m.logits().unwrap().to_vec_f32(gpu).unwrap()
}

fn checkpoint_logits(gpu: &Gpu, ckpt: &Checkpoint) -> Vec<f32> {
    let weights = ckpt
        .tensors
        .iter()
        .map(|(n, t)| (n.clone(), t.data.clone()))
        .collect();
    logits_of(gpu, &ckpt.config, &weights)
}

#[test]
fn the_merged_export_computes_the_checkpoint_under_every_quirk() {
    let gpu = common::gpu();
    for (zero_a, no_scale) in [(false, false), (true, false), (false, true), (true, true)] {
        let mut ckpt = load(&fixture()).unwrap();
        let r = ckpt.config.relora.as_mut().unwrap();
        r.quirk_zero_init_a = zero_a;
        r.quirk_merge_without_scale = no_scale;
        assert_ne!(r.scale(), 1.0, "the scale must matter for this test");
        let want = checkpoint_logits(&gpu, &ckpt);
        let (config, tensors) = merge_checkpoint(&ckpt).unwrap();
        assert!(config.relora.is_none());
        let weights = tensors.into_iter().map(|(n, t)| (n, t.data)).collect();
        let got = logits_of(&gpu, &config, &weights);
        common::assert_close(
            &got,
            &want,
            1e-4,
            1e-4,
            &format!(
                "merged logits, quirk_zero_init_a {zero_a}, quirk_merge_without_scale {no_scale}"
            ),
        );
    }
}

#[test]
fn the_demo_export_agrees_with_the_cli_merge() {
    let gpu = common::gpu();
    let text = std::fs::read_to_string(
        Path::new(env!("CARGO_MANIFEST_DIR")).join("../shared/data/tinyshakespeare/input.txt"),
    )
    .expect("../shared/data/tinyshakespeare/input.txt");
    let options = DemoOptions {
        d_model: 32,
        n_layers: 2,
        n_heads: 4,
        n_kv_heads: 2,
        seq: 32,
        batch: 4,
        steps: 12,
        relora: true,
        relora_r: 4,
        relora_reset_every: 5,
        ..Default::default()
    };
    let mut s = DemoSession::new(&gpu, &text[..200_000], options).unwrap();
    pollster::block_on(s.train(&gpu, 12)).unwrap();
    // The live ReLoRA model as a checkpoint, merged the CLI's way (on the host, f64) ...
    let dir = common::temp_path("demo-relora");
    pollster::block_on(s.model().save_checkpoint(&gpu, &dir)).unwrap();
    let (_, cli) = merge_checkpoint(&load(&dir).unwrap()).unwrap();
    // ... and the demo's own merged weights (on the device, f32).
    let demo = pollster::block_on(s.merged_params(&gpu)).unwrap();
    assert_eq!(demo.len(), cli.len());
    for ((name, _, values), (cli_name, cli_t)) in demo.iter().zip(&cli) {
        assert_eq!(name, cli_name);
        common::assert_close(values, &cli_t.data, 1e-6, 1e-5, name);
    }
    let _ = std::fs::remove_dir_all(&dir);
}

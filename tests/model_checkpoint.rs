//! A model planned on the GPU writes a pico checkpoint that loads back bit for bit, and
//! refuses checkpoints that do not match its config, naming the tensor.

mod common;

use wgtrain::model::checkpoint::{load, save};
use wgtrain::model::config::ModelConfig;
use wgtrain::model::decoder::Decoder;

fn small_config() -> ModelConfig {
    let mut c = ModelConfig::preset("tiny").unwrap();
    c.d_model = 24;
    c.n_layers = 2;
    c.vocab_size = 50;
    c.attention_n_heads = 6;
    c.attention_n_kv_heads = 2;
    c.activation_hidden_dim = 40;
    c.max_seq_len = 16;
    c
}

#[test]
fn checkpoint_round_trips_bitwise_and_resumes_the_same_loss() {
    let gpu = common::gpu();
    let config = small_config();
    let model = Decoder::new(&gpu, &config, 2, 8).unwrap();
    model.init_params(&gpu, 3).unwrap();
    let dir = std::env::temp_dir().join(format!("wgtrain-ckpt-{}", std::process::id()));
    pollster::block_on(model.save_checkpoint(&gpu, &dir)).unwrap();
    let ckpt = load(&dir).unwrap();
    ckpt.check_against(&config.param_specs()).unwrap();
    assert_eq!(ckpt.config.d_model, 24);
    let before = pollster::block_on(model.read_params(&gpu)).unwrap();
    for (name, shape, values) in &before {
        let t = &ckpt.tensors[name];
        assert_eq!(&t.shape, shape, "{name}");
        let same = t
            .data
            .iter()
            .zip(values)
            .all(|(a, b)| a.to_bits() == b.to_bits());
        assert!(same, "{name} changed in the round trip");
    }

    // A second model loaded from the checkpoint computes the same loss, bit for bit.
    let tokens: Vec<u32> = (0..18).map(|i| (i * 7 % 50) as u32).collect();
    let loss_of = |m: &Decoder| {
        m.set_batch(&gpu, &tokens).unwrap();
        let mut enc = gpu.encoder();
        m.record_forward(&mut enc);
        gpu.submit(enc);
        m.loss().to_vec_f32(&gpu).unwrap()[0]
    };
    let reloaded = Decoder::new(&gpu, &ckpt.config, 2, 8).unwrap();
    reloaded
        .load_params(&gpu, |n| ckpt.tensors.get(n).map(|t| t.data.as_slice()))
        .unwrap();
    let (a, b) = (loss_of(&model), loss_of(&reloaded));
    assert_eq!(a.to_bits(), b.to_bits());
    assert!(a.is_finite() && a > 0.0);
    std::fs::remove_dir_all(&dir).ok();
}

#[test]
fn a_checkpoint_with_a_wrong_shape_names_the_tensor() {
    let config = small_config();
    let dir = std::env::temp_dir().join(format!("wgtrain-ckpt-bad-{}", std::process::id()));
    let specs = config.param_specs();
    let data: Vec<Vec<f32>> = specs
        .iter()
        .map(|s| {
            let n = if s.name == "layers.1.attention.k_proj.weight" {
                s.numel() + 24
            } else {
                s.numel()
            };
            vec![0.5; n]
        })
        .collect();
    let shapes: Vec<Vec<usize>> = specs
        .iter()
        .map(|s| {
            if s.name == "layers.1.attention.k_proj.weight" {
                vec![s.shape[0] + 1, s.shape[1]]
            } else {
                s.shape.clone()
            }
        })
        .collect();
    let tensors: Vec<(&str, &[usize], &[f32])> = specs
        .iter()
        .zip(&shapes)
        .zip(&data)
        .map(|((s, sh), d)| (s.name.as_str(), sh.as_slice(), d.as_slice()))
        .collect();
    save(&dir, &config, &tensors).unwrap();
    let err = load(&dir)
        .unwrap()
        .check_against(&specs)
        .err()
        .unwrap()
        .to_string();
    std::fs::remove_dir_all(&dir).ok();
    assert!(err.contains("layers.1.attention.k_proj.weight"), "{err}");
    assert!(
        err.contains("expected [8, 24]") && err.contains("got [9, 24]"),
        "{err}"
    );
}

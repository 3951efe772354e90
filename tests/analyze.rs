//! Learning dynamics end to end: `wgtrain analyze` on a checkpoint agrees with an f64 CPU SVD
//! (nalgebra) of the same matrices, a short training run logs the metrics for plain and
//! ReLoRA models, and `wgtrain plot` draws them with both runs overlaid.

mod common;

use std::path::{Path, PathBuf};
use std::sync::atomic::AtomicBool;
use std::sync::Arc;
use wgtrain::metrics::log::{read_log, series};
use wgtrain::model::checkpoint::load;
use wgtrain::train::config::TrainConfig;
use wgtrain::train::trainer::Trainer;

fn per_and_condition(rows: usize, cols: usize, data: &[f64]) -> (f64, f64) {
    let s = nalgebra::DMatrix::from_row_slice(rows, cols, data).singular_values();
    let sum: f64 = s.iter().sum();
    let entropy: f64 = s
        .iter()
        .map(|v| v / sum)
        .filter(|p| *p > 0.0)
        .map(|p| -p * p.ln())
        .sum();
    let max = s.iter().cloned().fold(0.0, f64::max);
    let min = s.iter().cloned().fold(f64::INFINITY, f64::min);
    (entropy.exp() / s.len() as f64, max / min)
}

#[test]
fn analyze_agrees_with_an_f64_cpu_svd() {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/pico_tiny_shape");
    let stdout = common::wgtrain(["analyze", "--json"])
        .test_backend()
        .arg("--checkpoint")
        .arg(&dir)
        .run_ok();
    let lines: Vec<serde_json::Value> = stdout
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert_eq!(lines.len(), 2, "w_2 and the OV circuit of the one layer");
    let ckpt = load(&dir).unwrap();
    let c = &ckpt.config;
    let f64s = |name: &str| -> (Vec<usize>, Vec<f64>) {
        let t = &ckpt.tensors[name];
        (t.shape.clone(), t.data.iter().map(|&v| v as f64).collect())
    };
    // w_2 as stored.
    let (shape, w2) = f64s("layers.0.swiglu.w_2.weight");
    let want_w2 = per_and_condition(shape[0], shape[1], &w2);
    // The OV circuit: per query head h, W_o[:, h] (d x hd) times W_v[kv(h)] (hd x d),
    // heads side by side: d x (H d).
    let (d, h, kv, hd) = (
        c.d_model,
        c.attention_n_heads,
        c.attention_n_kv_heads,
        c.head_dim(),
    );
    let (_, wv) = f64s("layers.0.attention.v_proj.weight");
    let (_, wo) = f64s("layers.0.attention.o_proj.weight");
    let mut ov = vec![0.0; d * h * d];
    for head in 0..h {
        let g = head / (h / kv);
        for i in 0..d {
            for j in 0..d {
                let mut acc = 0.0;
                for k in 0..hd {
                    acc += wo[i * h * hd + head * hd + k] * wv[(g * hd + k) * d + j];
                }
                ov[i * h * d + head * d + j] = acc;
            }
        }
    }
    let want_ov = per_and_condition(d, h * d, &ov);
    for (line, (name, (per, cond))) in lines.iter().zip([
        ("layers.0.swiglu.w_2.weight", want_w2),
        ("layers.0.ov_circuit", want_ov),
    ]) {
        assert_eq!(line["name"], name);
        let got_per = line["per"].as_f64().unwrap();
        let got_cond = line["condition_number"].as_f64().unwrap();
        assert!(
            (got_per - per).abs() < 1e-4,
            "{name}: PER {got_per} vs {per}"
        );
        assert!(
            ((got_cond - cond) / cond).abs() < 1e-3,
            "{name}: condition {got_cond} vs {cond}"
        );
    }
}

fn yaml(relora: bool) -> String {
    let data = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../shared/data/corpus/train/gutenberg_pg11_Alices_Adventures_in_Wonderland.txt");
    let adapters = if relora {
        ", relora: { r: 4, lora_alpha: 8, lora_dropout: 0.0, reset_frequency: 3 }"
    } else {
        ""
    };
    format!(
        "model: {{ preset: tiny, d_model: 32, n_layers: 2, attention_n_heads: 4, attention_n_kv_heads: 2, activation_hidden_dim: 64, max_seq_len: 16{adapters} }}\n\
         training: {{ max_steps: 6, seed: 1, optimization: {{ lr: 0.003, lr_scheduler: constant, lr_warmup_steps: 0 }} }}\n\
         data: {{ dataset: {{ name: {data:?}, holdout_fraction: 0.0 }}, dataloader: {{ batch_size: 4 }}, tokenizer: {{ name: bpe, vocab_size: 300 }} }}\n\
         evaluation: {{ metrics: [], dynamics_every_n_steps: 3 }}\n"
    )
}

fn run(tag: &str, relora: bool) -> PathBuf {
    let gpu = common::gpu();
    let dir = std::env::temp_dir().join(format!("wgtrain-dyn-{tag}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    let config = TrainConfig::from_yaml(&yaml(relora), &[]).unwrap();
    assert_eq!(config.model_config().unwrap().relora.is_some(), relora);
    let mut t = Trainer::new(&gpu, config, &dir).unwrap();
    t.show_progress = false;
    t.run(&Arc::new(AtomicBool::new(false))).unwrap();
    dir
}

#[test]
fn training_logs_dynamics_and_plot_overlays_runs() {
    let plain = run("plain", false);
    let relora = run("relora", true);
    for dir in [&plain, &relora] {
        let log = read_log(&dir.join("metrics.jsonl")).unwrap();
        for key in [
            "dynamics/layers.1.swiglu.w_2.weight/weights/per",
            "dynamics/layers.1.ov_circuit/weights/condition_number",
            "dynamics/layers.0.swiglu.w_2.weight/update/per",
        ] {
            let s = series(&log, key);
            assert_eq!(
                s.iter().map(|p| p.0).collect::<Vec<_>>(),
                vec![1.0, 3.0, 6.0],
                "{key} in {}",
                dir.display()
            );
            assert!(
                s.iter().all(|p| p.1.is_finite() && p.1 > 0.0),
                "{key}: {s:?}"
            );
        }
        let per = series(&log, "dynamics/layers.0.swiglu.w_2.weight/weights/per");
        assert!(per.iter().all(|p| p.1 <= 1.0));
    }
    // ReLoRA's update B·A has rank at most r = 4 of 32: a low PER, far below the full-rank
    // gradient's (the study's finding, here by construction).
    let up = |dir: &PathBuf| {
        series(
            &read_log(&dir.join("metrics.jsonl")).unwrap(),
            "dynamics/layers.0.swiglu.w_2.weight/update/per",
        )[2]
        .1
    };
    assert!(
        up(&relora) <= 4.0 / 32.0 + 1e-6,
        "ReLoRA update PER {}",
        up(&relora)
    );
    assert!(up(&plain) > up(&relora));
    let out = plain.with_extension("plots");
    common::wgtrain(["plot", "--log"])
        .arg(&plain)
        .arg("--log")
        .arg(&relora)
        .arg("--out")
        .arg(&out)
        .run_ok();
    let svg =
        std::fs::read_to_string(out.join("dynamics_layers.0.swiglu.w_2.weight_update_per.svg"))
            .unwrap();
    assert!(
        svg.contains("<svg") && svg.contains("polyline"),
        "an SVG with lines"
    );
    for dir in [plain, relora, out] {
        std::fs::remove_dir_all(dir).ok();
    }
}

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
    let ckpt = load(&dir).unwrap();
    let c = &ckpt.config;
    let f64s = |name: &str| -> (Vec<usize>, Vec<f64>) {
        let t = &ckpt.tensors[name];
        (t.shape.clone(), t.data.iter().map(|&v| v as f64).collect())
    };
    // w_2 as stored.
    let (shape, w2) = f64s("layers.0.swiglu.w_2.weight");
    let want_w2 = per_and_condition(shape[0], shape[1], &w2);
    // pico-analyze's OV circuit, per query head h with kv head g = h / (H / KV):
    // W_v[g*hd.., :] (hd x d) times W_o[:, h*hd..] (d x hd), each head on its own.
    let (d, h, kv, hd) = (
        c.d_model,
        c.attention_n_heads,
        c.attention_n_kv_heads,
        c.head_dim(),
    );
    let (_, wv) = f64s("layers.0.attention.v_proj.weight");
    let (_, wo) = f64s("layers.0.attention.o_proj.weight");
    let mut want = vec![("layers.0.swiglu.w_2.weight".to_string(), want_w2)];
    for head in 0..h {
        let want_head = per_and_condition(hd, hd, &ov_head_f64(&wv, &wo, d, h, kv, head));
        want.push((
            format!("layers.0.ov_circuit.weights.heads.{head}"),
            want_head,
        ));
    }
    let mean =
        |f: fn(&(f64, f64)) -> f64| want[1..].iter().map(|w| f(&w.1)).sum::<f64>() / h as f64;
    let want_mean = (mean(|w| w.0), mean(|w| w.1));
    want.push((
        "layers.0.ov_circuit.weights.head_mean".to_string(),
        want_mean,
    ));
    assert_eq!(
        lines.len(),
        want.len(),
        "w_2, every head's OV circuit, their mean"
    );
    for (line, (name, (per, cond))) in lines.iter().zip(&want) {
        assert_eq!(line["name"], name.as_str());
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

/// Head `head`'s OV product `W_v[g*hd.., :] · W_o[:, head*hd..]` (`hd x hd`), in f64.
fn ov_head_f64(wv: &[f64], wo: &[f64], d: usize, h: usize, kv: usize, head: usize) -> Vec<f64> {
    let hd = d / h;
    let g = head / (h / kv);
    let mut out = vec![0.0; hd * hd];
    for i in 0..hd {
        for j in 0..hd {
            out[i * hd + j] = (0..d)
                .map(|c| wv[(g * hd + i) * d + c] * wo[c * h * hd + head * hd + j])
                .sum();
        }
    }
    out
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
            "dynamics/layers.1.ov_circuit.weights.head_mean/weights/condition_number",
            "dynamics/layers.0.ov_circuit.weights.heads.3/weights/per",
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

/// `wgtrain analyze` on a mid-cycle ReLoRA checkpoint measures what training measured at
/// that step (the effective `W + s·B·A`); `--base` measures the frozen `W`, which differs.
#[test]
fn offline_analysis_of_a_relora_checkpoint_equals_the_training_dynamics() {
    let dir = run("relora-offline", true);
    let log = read_log(&dir.join("metrics.jsonl")).unwrap();
    // Step 6: B has trained for two steps since the reset at step 4.
    let ckpt_dir = dir.join("checkpoints/step_000006");
    let analyze = |extra: &[&str]| -> Vec<serde_json::Value> {
        common::wgtrain(["analyze", "--json"])
            .test_backend()
            .arg("--checkpoint")
            .arg(&ckpt_dir)
            .args(extra)
            .run_ok()
            .lines()
            .map(|l| serde_json::from_str(l).unwrap())
            .collect()
    };
    let effective = analyze(&[]);
    let base = analyze(&["--base"]);
    assert_eq!(
        effective.len(),
        2 * (1 + 4 + 1),
        "2 layers: w_2, 4 heads, their mean"
    );
    let mut w2_differs = false;
    for (e, b) in effective.iter().zip(&base) {
        let name = e["name"].as_str().unwrap();
        assert_eq!(b["name"], name);
        for metric in ["per", "condition_number", "frobenius", "spectral"] {
            let key = format!("dynamics/{name}/weights/{metric}");
            let logged = series(&log, &key);
            let at6 = logged
                .iter()
                .find(|p| p.0 == 6.0)
                .unwrap_or_else(|| panic!("{key}"));
            let got = e[metric].as_f64().unwrap();
            assert!(
                (got - at6.1).abs() <= 1e-5 * at6.1.abs(),
                "{key}: analyze {got} vs training {}",
                at6.1
            );
        }
        if name.contains("w_2") && e["frobenius"] != b["frobenius"] {
            w2_differs = true;
        }
    }
    assert!(
        w2_differs,
        "the base w_2 is not the effective one mid-cycle"
    );
    std::fs::remove_dir_all(dir).ok();
}

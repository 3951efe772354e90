//! The PyTorch baseline: `bench/torch_baseline.py` (built into this binary with the model it
//! imports, so a copied binary carries it) times the suite's matmul shapes and training steps
//! in the same run, where the given Python can import torch.

use super::Sink;
use std::collections::BTreeMap;
use std::path::PathBuf;
use wgtrain::bench::record::{BaselineInfo, Entry};
use wgtrain::bench::shapes::{self, Size, StepCase};
use wgtrain::model::config::ModelConfig;

const SCRIPT: &str = include_str!("../../../../bench/torch_baseline.py");
const MODEL: &str = include_str!("../../../../tests/reference/pico_reference.py");

/// One line of the baseline (e.g. `pytorch cpu`): seconds per matmul label and per step label.
#[derive(serde::Deserialize)]
struct Line {
    name: String,
    detail: String,
    matmul: BTreeMap<String, f64>,
    steps: BTreeMap<String, f64>,
}

#[derive(serde::Deserialize)]
struct Output {
    lines: Vec<Line>,
}

pub struct Torch {
    lines: Vec<Line>,
    pub info: Vec<BaselineInfo>,
}

/// A step's label, shared by our entry and the baseline's.
pub fn step_label(c: &StepCase) -> String {
    format!("{} {} x {}", c.preset, c.batch, c.seq)
}

impl Torch {
    fn unavailable(why: String) -> Torch {
        Torch {
            lines: Vec::new(),
            info: vec![BaselineInfo {
                name: "pytorch".into(),
                available: false,
                detail: why,
            }],
        }
    }

    /// Run the baseline with `python` over the shapes of `size` (the families `sink` runs).
    pub fn run(python: Option<&str>, size: Size, sink: &Sink) -> Torch {
        let Some(python) = python else {
            return Self::unavailable("not asked for (--no-pytorch)".into());
        };
        match Self::try_run(python, size, sink) {
            Ok(t) => t,
            Err(why) => Self::unavailable(why),
        }
    }

    fn try_run(python: &str, size: Size, sink: &Sink) -> std::result::Result<Torch, String> {
        let probe = std::process::Command::new(python)
            .args(["-c", "import torch, numpy"])
            .output();
        match probe {
            Ok(o) if o.status.success() => {}
            Ok(_) => {
                return Err(format!(
                    "`{python}` cannot import torch and numpy (pip install torch numpy, or \
                     --python PATH)"
                ))
            }
            Err(e) => return Err(format!("cannot run `{python}`: {e}")),
        }
        let dir = std::env::temp_dir().join(format!("wgbench-torch-{}", std::process::id()));
        std::fs::create_dir_all(&dir).map_err(|e| format!("{}: {e}", dir.display()))?;
        let result = Self::run_in(&dir, python, size, sink);
        let _ = std::fs::remove_dir_all(&dir);
        result
    }

    fn run_in(
        dir: &std::path::Path,
        python: &str,
        size: Size,
        sink: &Sink,
    ) -> std::result::Result<Torch, String> {
        let write = |name: &str, text: &str| -> std::result::Result<PathBuf, String> {
            let p = dir.join(name);
            std::fs::write(&p, text).map_err(|e| format!("{}: {e}", p.display()))?;
            Ok(p)
        };
        let script = write("torch_baseline.py", SCRIPT)?;
        write("pico_reference.py", MODEL)?;
        let matmul: Vec<serde_json::Value> = if sink.wants("matmul") {
            shapes::matmul_cases(size)
                .iter()
                .map(|c| {
                    let s = c.shape;
                    serde_json::json!({"label": c.label(), "m": s.m, "k": s.k, "n": s.n,
                        "trans_a": s.trans_a, "trans_b": s.trans_b})
                })
                .collect()
        } else {
            Vec::new()
        };
        let mut steps = Vec::new();
        if sink.wants("training step") {
            for c in shapes::step_cases(size) {
                let config = ModelConfig::preset(c.preset).map_err(|e| e.to_string())?;
                steps.push(
                    serde_json::json!({"label": step_label(&c), "config": config,
                    "batch": c.batch, "seq": c.seq}),
                );
            }
        }
        let spec = serde_json::json!({"repeats": shapes::step_repeats(size), "matmul": matmul,
            "steps": steps});
        let spec_path = write("spec.json", &spec.to_string())?;
        let out_path = dir.join("out.json");
        println!(
            "PyTorch baseline: running {python} {} ...",
            script.display()
        );
        let status = std::process::Command::new(python)
            .arg(&script)
            .arg(&spec_path)
            .arg(&out_path)
            .status()
            .map_err(|e| format!("cannot run `{python}`: {e}"))?;
        if !status.success() {
            return Err(format!("the baseline script failed ({status})"));
        }
        let text = std::fs::read_to_string(&out_path).map_err(|e| e.to_string())?;
        let out: Output = serde_json::from_str(&text).map_err(|e| format!("its output: {e}"))?;
        let info = out
            .lines
            .iter()
            .map(|l| BaselineInfo {
                name: l.name.clone(),
                available: true,
                detail: l.detail.clone(),
            })
            .collect();
        Ok(Torch {
            lines: out.lines,
            info,
        })
    }

    /// Add every line's time for matmul `label` (doing `flops`) to `entry`.
    pub fn add_matmul(&self, entry: &mut Entry, label: &str, flops: f64) {
        for l in &self.lines {
            if let Some(&s) = l.matmul.get(label) {
                entry.baseline(&l.name, s, flops);
            }
        }
    }

    /// Add every line's time for the step `label` (of `tokens` tokens) to `entry`.
    pub fn add_step(&self, entry: &mut Entry, label: &str, tokens: f64) {
        for l in &self.lines {
            if let Some(&s) = l.steps.get(label) {
                entry.baseline(&l.name, s, tokens);
            }
        }
    }
}

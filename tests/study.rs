//! `wgtrain study` end to end on `studies/micro.yaml`: every figure is drawn, every number of
//! the report is recomputed here from the runs' own files, a study stopped mid-way resumes
//! to the same runs as one never stopped, `--plan` plans without training, and study files
//! with mistakes are refused with the reason.

mod common;

use std::path::{Path, PathBuf};
use wgtrain::metrics::log::{read_log, series};
use wgtrain::study::file::StudyFile;

fn micro() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("studies/micro.yaml")
}

fn study(out: &Path, extra: &[&str]) -> String {
    common::wgtrain(["study", "--quiet"])
        .test_backend()
        .arg("--config")
        .arg(micro())
        .arg("--out")
        .arg(out)
        .args(extra)
        .run_ok()
}

const RUNS: [&str; 6] = [
    "d32-pico-decoder-seed1",
    "d32-pico-relora-seed1",
    "d32-pico-relora-quirks-seed1",
    "d64-pico-decoder-seed1",
    "d64-pico-relora-seed1",
    "d64-pico-relora-quirks-seed1",
];

/// The report's results-table row of `scale` / `variant`, split into cells.
fn row(report: &str, scale: &str, variant: &str) -> Vec<String> {
    let prefix = format!("| {scale} | {variant} | ");
    let line = report
        .lines()
        .find(|l| l.starts_with(&prefix) && l.matches('|').count() == 11)
        .unwrap_or_else(|| panic!("no results row for {scale} {variant}:\n{report}"));
    line.trim_matches('|')
        .split('|')
        .map(|c| c.trim().to_string())
        .collect()
}

/// Per pair: good scored above bad, from a run's blimp_pairs.json.
fn blimp_correct(dir: &Path) -> (Vec<bool>, f64) {
    let v: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(dir.join("blimp_pairs.json")).unwrap())
            .unwrap();
    let mut all = Vec::new();
    let mut accs = Vec::new();
    for paradigm in v["pairs"].as_array().unwrap() {
        let pairs: Vec<bool> = paradigm
            .as_array()
            .unwrap()
            .iter()
            .map(|p| p[0].as_f64().unwrap() > p[1].as_f64().unwrap())
            .collect();
        accs.push(pairs.iter().filter(|&&c| c).count() as f64 / pairs.len() as f64);
        all.extend(pairs);
    }
    (all, 100.0 * accs.iter().sum::<f64>() / accs.len() as f64)
}

/// The figures and report in `out` against the run directories under `runs`.
fn check_report_against_runs(out: &Path, runs: &Path) {
    let report = std::fs::read_to_string(out.join("report.md")).unwrap();
    for stem in [
        "loss_d32",
        "loss_d64",
        "per_weights_d32",
        "per_updates_d64",
        "condition_updates_d32",
        "blimp",
        "paloma",
    ] {
        let svg = std::fs::read_to_string(out.join(format!("{stem}.svg"))).unwrap();
        assert!(svg.contains("<svg") && (svg.contains("<polyline") || svg.contains("<rect")));
        let png = std::fs::read(out.join(format!("{stem}.png"))).unwrap();
        assert!(
            png.starts_with(b"\x89PNG") && png.len() > 10_000,
            "{stem}.png"
        );
        assert!(
            report.contains(&format!("({stem}.png)")),
            "{stem} in the report"
        );
    }
    for name in RUNS {
        let dir = runs.join(name);
        let (scale, variant) = name.trim_end_matches("-seed1").split_once('-').unwrap();
        let cells = row(&report, scale, variant);
        // One value per step (a killed and resumed run logs some steps twice).
        let run = wgtrain::study::results::RunResult::load(&dir).unwrap();
        let log_series = |k: &str| run.series(k);
        // BLiMP: the mean over paradigms of the stored pairs.
        let (_, blimp) = blimp_correct(&dir);
        assert_eq!(cells[3], format!("{blimp:.2}"), "{name} BLiMP");
        // Paloma: the last in-training evaluation, per-document mean and pooled.
        let last = |k: &str| log_series(k).last().unwrap().1;
        assert_eq!(
            cells[4],
            format!("{:.2}", last("eval/paloma")),
            "{name} Paloma"
        );
        assert_eq!(
            cells[5],
            format!("{:.2}", last("eval/paloma_pooled")),
            "{name} pooled"
        );
        assert_eq!(
            log_series("eval/paloma").last().unwrap().0,
            30.0,
            "final evaluation"
        );
        // Final loss: the mean of the last tenth (3 of 30 steps).
        let loss = log_series("loss");
        assert_eq!(loss.len(), 30, "{name}: a loss every step");
        let tail: f64 = loss[27..].iter().map(|p| p.1).sum::<f64>() / 3.0;
        assert_eq!(cells[6], format!("{tail:.4}"), "{name} loss");
        // PER of w_2 updates: mean over dynamics steps and the 2 layers.
        let per =
            |l: usize| log_series(&format!("dynamics/layers.{l}.swiglu.w_2.weight/update/per"));
        let (p0, p1) = (per(0), per(1));
        assert!(!p0.is_empty() && p0.len() == p1.len());
        let mean = p0
            .iter()
            .zip(&p1)
            .map(|(a, b)| (a.1 + b.1) / 2.0)
            .sum::<f64>()
            / p0.len() as f64;
        assert_eq!(cells[8], format!("{mean:.4}"), "{name} PER updates");
        // The OV figure is pico-analyze's per-head one.
        assert!(!log_series("dynamics/layers.1.ov_circuit.weights.heads.3/weights/per").is_empty());
    }
    // The paired test of d64: b and c recomputed from the pairs.
    let (a, _) = blimp_correct(&runs.join(RUNS[3]));
    let (b, _) = blimp_correct(&runs.join(RUNS[4]));
    let only_a = a.iter().zip(&b).filter(|(x, y)| **x && !**y).count();
    let only_b = a.iter().zip(&b).filter(|(x, y)| !**x && **y).count();
    let p = wgtrain::study::stats::mcnemar_exact(only_a, only_b);
    let want = "| d64 | pico-decoder vs pico-relora | 1 | ";
    let line = report
        .lines()
        .find(|l| l.starts_with(want))
        .expect("paired row");
    assert!(
        line.contains(&format!("| {only_a} | {only_b} | ")),
        "{line}"
    );
    assert!(
        line.contains(&format!("{p:.3}")) || p < 1e-3,
        "{line} vs p {p}"
    );
    // Five findings, each judged.
    for i in 1..=5 {
        let f = report
            .lines()
            .find(|l| l.starts_with(&format!("| {i} | ")))
            .unwrap_or_else(|| panic!("finding {i}"));
        assert!(
            f.ends_with("**holds** |") || f.ends_with("**does not hold** |"),
            "{f}"
        );
    }
}

#[test]
fn the_micro_study_runs_resumes_and_reports_what_its_runs_measured() {
    let whole = common::temp_path("study-whole");
    let _ = std::fs::remove_dir_all(&whole);
    let said = study(&whole, &[]);
    assert!(
        said.contains("study finished: 6 runs trained now"),
        "{said}"
    );
    check_report_against_runs(&whole, &whole);

    // Stopped after 45 steps (mid-way through the second run), then continued.
    let split = common::temp_path("study-split");
    let _ = std::fs::remove_dir_all(&split);
    let said = study(&split, &["--stop-after-steps", "45"]);
    assert!(
        said.contains("study stopped: 1 of 6 runs finished"),
        "{said}"
    );
    assert!(split.join(RUNS[0]).join("study_done.json").exists());
    assert!(!split.join(RUNS[1]).join("study_done.json").exists());
    let said = study(&split, &[]);
    assert!(
        said.contains("5 runs trained now, 1 already done"),
        "{said}"
    );
    check_report_against_runs(&split, &split);
    // Bit for bit the runs of the study that was never stopped.
    for name in RUNS {
        let keys = [
            "loss",
            "eval/paloma",
            "dynamics/layers.0.swiglu.w_2.weight/update/per",
        ];
        for key in keys {
            let a = series(
                &read_log(&whole.join(name).join("metrics.jsonl")).unwrap(),
                key,
            );
            let b = series(
                &read_log(&split.join(name).join("metrics.jsonl")).unwrap(),
                key,
            );
            assert_eq!(a, b, "{name} {key}");
        }
    }
    // Killed (SIGKILL) while training the third run, after its first checkpoint: the
    // rerun resumes that run from its checkpoint and ends with the same runs.
    let killed = common::temp_path("study-killed");
    let mut child = common::wgtrain(["study", "--quiet"])
        .test_backend()
        .arg("--config")
        .arg(micro())
        .arg("--out")
        .arg(&killed)
        .spawn();
    let third = killed.join(RUNS[2]).join("checkpoints/latest");
    let t0 = std::time::Instant::now();
    while !third.exists() {
        assert!(
            t0.elapsed().as_secs() < 300,
            "the study did not reach its third run"
        );
        std::thread::sleep(std::time::Duration::from_millis(50));
    }
    child.kill().unwrap();
    child.wait().unwrap();
    assert!(!killed.join(RUNS[2]).join("study_done.json").exists());
    let said = study(&killed, &[]);
    assert!(
        said.contains("4 runs trained now, 2 already done"),
        "{said}"
    );
    check_report_against_runs(&killed, &killed);
    for name in RUNS {
        for key in ["loss", "eval/paloma"] {
            let a = series(
                &read_log(&whole.join(name).join("metrics.jsonl")).unwrap(),
                key,
            );
            let b = wgtrain::study::results::RunResult::load(&killed.join(name))
                .unwrap()
                .series(key);
            assert_eq!(a, b, "{name} {key} after kill -9");
        }
    }
    std::fs::remove_dir_all(&killed).ok();
    // Running it again trains nothing; --report-only redraws from the directories.
    let said = study(&split, &[]);
    assert!(
        said.contains("0 runs trained now, 6 already done"),
        "{said}"
    );
    std::fs::remove_file(split.join("report.md")).unwrap();
    study(&split, &["--report-only"]);
    check_report_against_runs(&split, &split);
    // compare: the report from run directories alone.
    let cmp = common::temp_path("study-compare");
    common::wgtrain(["compare", "--out"])
        .arg(&cmp)
        .args(RUNS.iter().map(|r| whole.join(r)))
        .run_ok();
    check_report_against_runs(&cmp, &whole);
    for d in [whole, split, cmp] {
        std::fs::remove_dir_all(d).ok();
    }
}

#[test]
fn plan_prints_memory_and_time_without_training() {
    let paper = Path::new(env!("CARGO_MANIFEST_DIR")).join("studies/paper.yaml");
    let out = common::temp_path("study-paper-plan");
    let said = common::wgtrain(["study", "--plan"])
        .test_backend()
        .arg("--config")
        .arg(&paper)
        .arg("--out")
        .arg(&out)
        .run_ok();
    for run in [
        "tiny-pico-decoder-seed42",
        "small-pico-relora-quirks-seed42",
    ] {
        assert!(said.contains(run), "{said}");
    }
    // The logits of one micro-batch of 8 x 2048 tokens at V = 50304 (3.07 GiB whole) are
    // held a chunk of 1334 rows at a time: 256.0 MiB.
    assert!(said.contains("256.0 MiB"), "{said}");
    assert!(!said.contains("3.07 GiB"), "{said}");
    assert!(!out.exists(), "--plan trains nothing");
    // Small runs are built and timed: seconds per step and a training time for each.
    let out = common::temp_path("study-micro-plan");
    let said = common::wgtrain(["study", "--plan", "--plan-steps", "1"])
        .test_backend()
        .arg("--config")
        .arg(micro())
        .arg("--out")
        .arg(&out)
        .run_ok();
    let timed = said.lines().filter(|l| l.contains(" min")).count();
    assert!(timed >= 6, "{said}");
    assert!(!out.join(RUNS[0]).exists(), "no run directory");
    std::fs::remove_dir_all(out).ok();
}

#[test]
fn study_files_with_mistakes_are_refused_with_the_reason() {
    let good = std::fs::read_to_string(micro()).unwrap();
    assert!(StudyFile::from_yaml(&good).is_ok());
    for (bad, says) in [
        (
            good.replace("seeds: [1]", "seeds: [1]\nsedes: [2]"),
            "sedes",
        ),
        (good.replace("name: micro", "name: 'a b'"), "study name"),
        (
            good.replace("  - name: pico-relora-quirks", "  - name: pico-relora"),
            "named twice",
        ),
        (good.replace("seeds: [1]", "seeds: []"), "seeds"),
    ] {
        let e = StudyFile::from_yaml(&bad).unwrap_err().to_string();
        assert!(e.contains(says), "{says}: {e}");
    }
    // A run whose generated config is wrong names the run and the key.
    let bad = good.replace("model: { d_model: 32,", "model: { d_modle: 32,");
    let s = StudyFile::from_yaml(&bad).unwrap();
    let e = wgtrain::study::plan::plan_runs(&s, Path::new("/tmp/x"), None)
        .unwrap_err()
        .to_string();
    assert!(
        e.contains("d32-pico-decoder-seed1") && e.contains("d_modle"),
        "{e}"
    );
}

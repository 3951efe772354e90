//! `wgbench suite --quick` as CI runs it: every entry runs on the test adapter and the JSON
//! record parses, with the fields `wgbench report` reads.

mod common;

use std::collections::BTreeSet;
use std::process::Command;
use wgtrain::bench::record::Record;

/// Every family a suite run measures (BENCHMARKS.md's tables, one per family).
const FAMILIES: [&str; 11] = [
    "matmul",
    "attention forward",
    "attention backward",
    "training step",
    "linear + cross-entropy",
    "adamw",
    "lora",
    "merge-and-reset",
    "evaluation forward",
    "metrics",
    "browser demo session",
];

#[test]
fn quick_suite_runs_every_entry_and_writes_a_record() {
    let dir = common::temp_path("suite");
    std::fs::create_dir_all(&dir).unwrap();
    let out = dir.join("quick.json");
    // The PyTorch baseline is exercised by `bench/gpu_suite.sh` where torch is installed;
    // here it is off so the test needs nothing but the adapter.
    let run = Command::new(env!("CARGO_BIN_EXE_wgbench"))
        .args(["suite", "--quick", "--no-pytorch", "--backend"])
        .arg(common::backend().name())
        .arg("--out")
        .arg(&out)
        .env("LP_NUM_THREADS", "0")
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&run.stdout);
    assert!(
        run.status.success(),
        "wgbench suite failed:\n{stdout}\n{}",
        String::from_utf8_lossy(&run.stderr)
    );
    let record = Record::from_json(&std::fs::read_to_string(&out).unwrap()).unwrap();
    assert_eq!(record.size, "quick");
    assert!(!record.adapter.name.is_empty() && !record.wgpu_version.is_empty());
    assert!(
        record.wgpu_version.starts_with("30."),
        "{}",
        record.wgpu_version
    );
    let families: BTreeSet<&str> = record.entries.iter().map(|e| e.family.as_str()).collect();
    for f in FAMILIES {
        assert!(families.contains(f), "no {f} entry in the record");
    }
    for e in &record.entries {
        assert!(e.skipped.is_none(), "{} skipped: {:?}", e.key(), e.skipped);
        let t = e
            .timing
            .as_ref()
            .unwrap_or_else(|| panic!("{} has no timing", e.key()));
        assert!(t.median_s > 0.0 && t.min_s <= t.median_s && t.median_s <= t.max_s);
        if let Some(r) = &e.rate {
            assert!(
                r.value.is_finite() && r.value > 0.0,
                "{}: rate {r:?}",
                e.key()
            );
        }
    }
    // Every matmul variant and the autotune's pick ran on every shape, beside the CPU GEMM.
    let matmuls: Vec<_> = record
        .entries
        .iter()
        .filter(|e| e.family == "matmul")
        .collect();
    let shapes = wgtrain::bench::shapes::matmul_cases(wgtrain::bench::shapes::Size::Quick);
    let variants = 1 + wgtrain::ops::MatmulKernel::VARIANTS.len();
    assert_eq!(matmuls.len(), shapes.len() * variants);
    assert!(matmuls.iter().all(|e| e
        .baselines
        .iter()
        .any(|b| b.name == "cpu gemm" && b.ratio > 0.0)));
    assert!(record
        .baselines
        .iter()
        .any(|b| b.name == "pytorch" && !b.available));
    // The Markdown summary was printed with a table per family.
    for f in FAMILIES {
        assert!(stdout.contains(&format!("### {f}")), "summary lacks {f}");
    }
    // The record a run writes is what `wgbench report` reads.
    let report = Command::new(env!("CARGO_BIN_EXE_wgbench"))
        .arg("report")
        .arg(&out)
        .arg("--out")
        .arg(dir.join("report"))
        .output()
        .unwrap();
    assert!(report.status.success(), "{report:?}");
    let _ = std::fs::remove_dir_all(&dir);
}

//! `wgbench report`: two small records merged into one table per family with a column per
//! record, charts as SVG and PNG, the generated block of a Markdown file replaced with its
//! prose kept, bad records refused; and BENCHMARKS.md's block is what the committed records
//! generate.

mod common;

use std::path::PathBuf;
use std::process::Command;
use wgtrain::bench::record::{Entry, Record, Timing, Unit};
use wgtrain::bench::report;

fn record(adapter: &str, backend: &str, speed: f64) -> Record {
    let text = format!(
        r#"{{"format": 1, "size": "quick",
        "adapter": {{"name": "{adapter}", "vendor": "0x10005", "backend": "{backend}",
          "device_type": "Cpu", "driver": "d", "driver_info": "Mesa test",
          "subgroup_sizes": [8, 8], "timestamp_queries": true}},
        "wgpu_version": "30.0.0", "features": ["TIMESTAMP_QUERY"], "limits": {{}},
        "host": {{"cpu": "test cpu", "cores": 2, "os": "test os"}},
        "commit": "abc", "date": "2026-12-04T00:00:00Z", "command": "wgbench suite --quick",
        "baselines": [{{"name": "cpu gemm", "available": true, "detail": "sgemm"}}],
        "entries": []}}"#
    );
    let mut r = Record::from_json(&text).unwrap();
    let t = |s: f64| Timing::of("gpu timestamps", &[s, s * 1.1, s * 0.9]).unwrap();
    let mut mm = Entry::new("matmul", "square 256 (256 x 256 x 256, nn)")
        .variant("auto")
        .measured(t(0.01 / speed), 2.0 * 256f64.powi(3), Unit::GflopPerS);
    mm.baseline("cpu gemm", 0.001, 2.0 * 256f64.powi(3));
    let mut step = Entry::new("training step", "tiny 1 x 64")
        .variant("pico-decoder")
        .measured(t(1.0 / speed), 64.0, Unit::TokensPerS);
    step.baseline("pytorch cpu", 0.5, 64.0);
    r.entries = vec![mm, step];
    if backend == "gl" {
        r.entries
            .push(Entry::new("adamw", "tiny").skipped("no such thing here"));
    }
    r
}

fn wgbench(args: &[&std::ffi::OsStr]) -> std::process::Output {
    Command::new(env!("CARGO_BIN_EXE_wgbench"))
        .args(args)
        .output()
        .unwrap()
}

#[test]
fn two_records_make_one_table_per_family_and_charts() {
    let dir = common::temp_path("report");
    std::fs::create_dir_all(&dir).unwrap();
    let a = dir.join("a.json");
    let b = dir.join("b.json");
    std::fs::write(
        &a,
        serde_json::to_string(&record("lavapipe", "vulkan", 1.0)).unwrap(),
    )
    .unwrap();
    std::fs::write(
        &b,
        serde_json::to_string(&record("llvmpipe", "gl", 2.0)).unwrap(),
    )
    .unwrap();
    let md = dir.join("BENCH.md");
    std::fs::write(
        &md,
        format!(
            "# Prose before\n\n{}\nold table\n{}\n\nProse after.\n",
            report::BEGIN,
            report::END
        ),
    )
    .unwrap();
    let out = dir.join("out");
    let run = wgbench(&[
        "report".as_ref(),
        a.as_os_str(),
        b.as_os_str(),
        "--out".as_ref(),
        out.as_os_str(),
        "--benchmarks".as_ref(),
        md.as_os_str(),
    ]);
    assert!(run.status.success(), "{run:?}");
    let text = std::fs::read_to_string(out.join("report.md")).unwrap();
    // One table per family, a column per record, the ratio to the same run's baseline.
    for f in ["### matmul", "### training step", "### adamw"] {
        assert!(text.contains(f), "no table {f}:\n{text}");
    }
    assert!(
        text.contains("| entry | variant | lavapipe (vulkan, quick) | llvmpipe (gl, quick) |"),
        "{text}"
    );
    // lavapipe: 2 * 256^3 / 0.01 s = 3.36 GFLOP/s, 0.100x the CPU GEMM; gl twice as fast.
    assert!(
        text.contains("| 3.36 GFLOP/s; 0.100x cpu gemm | 6.71 GFLOP/s; 0.200x cpu gemm |"),
        "{text}"
    );
    assert!(text.contains("| tiny 1 x 64 | pico-decoder | 64.0 tokens/s; 0.500x pytorch cpu | 128 tokens/s; 1.00x pytorch cpu |"), "{text}");
    assert!(
        text.contains("| not run | skipped (no such thing here) |"),
        "{text}"
    );
    for stem in [
        "step_tokens_per_s",
        "step_vs_pytorch",
        "matmul_gflops",
        "matmul_vs_cpu_gemm",
    ] {
        let png = std::fs::read(out.join(format!("{stem}.png"))).unwrap();
        assert_eq!(&png[1..4], b"PNG", "{stem}.png");
        let svg = std::fs::read_to_string(out.join(format!("{stem}.svg"))).unwrap();
        assert!(
            svg.contains("<svg") && svg.contains("llvmpipe (gl, quick)"),
            "{stem}.svg"
        );
        assert!(text.contains(&format!("{stem}.svg")), "report links {stem}");
    }
    // The Markdown file's block is regenerated; the prose around it stays.
    let bench = std::fs::read_to_string(&md).unwrap();
    assert!(bench.starts_with("# Prose before\n\n"));
    assert!(bench.ends_with("\n\nProse after.\n"));
    assert!(!bench.contains("old table"));
    assert!(bench.contains("](out/matmul_gflops.svg)"), "{bench}");

    // A record of another format, or not a record, is refused with a reason; the file stays.
    let bad = dir.join("bad.json");
    std::fs::write(&bad, r#"{"format": 9}"#).unwrap();
    let before = std::fs::read_to_string(&md).unwrap();
    for (path, says) in [
        (&bad, "not a wgbench record"),
        (&dir.join("missing.json"), "reading"),
    ] {
        let run = wgbench(&[
            "report".as_ref(),
            a.as_os_str(),
            path.as_os_str(),
            "--out".as_ref(),
            out.as_os_str(),
            "--benchmarks".as_ref(),
            md.as_os_str(),
        ]);
        let err = String::from_utf8_lossy(&run.stderr);
        assert!(!run.status.success() && err.contains(says), "{err}");
    }
    assert_eq!(std::fs::read_to_string(&md).unwrap(), before);
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn benchmarks_md_is_generated_from_the_committed_records() {
    let root = PathBuf::from(env!("CARGO_MANIFEST_DIR"));
    let mut paths: Vec<PathBuf> = std::fs::read_dir(root.join("bench/records"))
        .expect("bench/records holds the committed suite records")
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|e| e == "json"))
        .collect();
    paths.sort();
    let records = report::load(&paths).unwrap();
    let dir = common::temp_path("report-committed");
    let stems = report::draw_charts(&records, &dir).unwrap();
    let links: Vec<String> = stems
        .iter()
        .map(|s| format!("docs/bench/{s}.svg"))
        .collect();
    let want = report::markdown(&records, &links);
    let text = std::fs::read_to_string(root.join("BENCHMARKS.md")).unwrap();
    let got = report::block_of(&text).expect("BENCHMARKS.md has the generated block");
    assert_eq!(
        got.trim(),
        want.trim(),
        "BENCHMARKS.md is out of date: run `wgbench report bench/records/*.json --out docs/bench --benchmarks BENCHMARKS.md`"
    );
    for l in &links {
        assert!(root.join(l).exists(), "{l} is not committed");
    }
    let _ = std::fs::remove_dir_all(&dir);
}

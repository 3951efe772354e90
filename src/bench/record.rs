//! The suite's record: one JSON file per run (the adapter, the machine, the build, every
//! entry with its baselines), and the Markdown summary printed at the end of a run.

use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;

/// The record's layout version; `wgbench report` refuses other versions.
pub const FORMAT: u32 = 1;

#[derive(Clone, Debug, Serialize, Deserialize, PartialEq)]
pub struct Record {
    pub format: u32,
    /// `quick` or `full`.
    pub size: String,
    pub adapter: Adapter,
    pub wgpu_version: String,
    /// The device features the run requested (and so could use).
    pub features: Vec<String>,
    /// The device limits the plans were made under.
    pub limits: BTreeMap<String, u64>,
    pub host: Host,
    pub commit: String,
    /// UTC, `YYYY-MM-DDTHH:MM:SSZ`.
    pub date: String,
    pub command: String,
    /// Every baseline the run tried, and whether it was available.
    pub baselines: Vec<BaselineInfo>,
    pub entries: Vec<Entry>,
}

#[derive(Clone, Debug, Serialize, Deserialize, PartialEq)]
pub struct Adapter {
    pub name: String,
    /// PCI vendor id as hex, e.g. `0x10de`.
    pub vendor: String,
    /// `vulkan`, `gl`, `webgpu`, ...
    pub backend: String,
    pub device_type: String,
    pub driver: String,
    pub driver_info: String,
    pub subgroup_sizes: [u32; 2],
    pub timestamp_queries: bool,
}

impl Adapter {
    /// The adapter `gpu` runs on, with whether its device has timestamp queries.
    pub fn of(gpu: &crate::Gpu) -> Adapter {
        let a = &gpu.adapter;
        Adapter {
            name: a.name.clone(),
            vendor: format!("{:#x}", a.vendor),
            backend: a.backend.to_string(),
            device_type: a.device_type.clone(),
            driver: a.driver.clone(),
            driver_info: a.driver_info.clone(),
            subgroup_sizes: [a.subgroup_sizes.0, a.subgroup_sizes.1],
            timestamp_queries: gpu
                .device
                .features()
                .contains(wgpu::Features::TIMESTAMP_QUERY),
        }
    }
}

#[derive(Clone, Debug, Serialize, Deserialize, PartialEq)]
pub struct Host {
    pub cpu: String,
    pub cores: usize,
    pub os: String,
}

#[derive(Clone, Debug, Serialize, Deserialize, PartialEq)]
pub struct BaselineInfo {
    /// e.g. `cpu gemm`, `pytorch cpu`, `pytorch cuda`.
    pub name: String,
    pub available: bool,
    /// What it is (library, version, threads), or why it was not available.
    pub detail: String,
}

/// One measured thing.
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq)]
pub struct Entry {
    /// `matmul`, `attention forward`, `step`, ... (one table per family in reports).
    pub family: String,
    /// What was run, with its shape, e.g. `tiny w_2 forward (512 x 384 x 96, nt)`.
    pub name: String,
    /// The kernel variant, where the family has several (`auto` is the autotune's pick).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub variant: Option<String>,
    /// Why the entry did not run on this adapter; the timing is then absent.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub skipped: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub timing: Option<Timing>,
    /// The throughput: work per median second.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub rate: Option<Rate>,
    /// GPU memory the entry's plan holds, where it has a plan.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub planned_bytes: Option<u64>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub baselines: Vec<BaselineResult>,
    /// Anything else worth keeping (the variant the autotune picked, a loss, ...).
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub notes: BTreeMap<String, String>,
}

impl Entry {
    pub fn new(family: &str, name: impl Into<String>) -> Entry {
        Entry {
            family: family.to_string(),
            name: name.into(),
            variant: None,
            skipped: None,
            timing: None,
            rate: None,
            planned_bytes: None,
            baselines: Vec::new(),
            notes: BTreeMap::new(),
        }
    }

    pub fn variant(mut self, v: impl Into<String>) -> Entry {
        self.variant = Some(v.into());
        self
    }

    /// The entry measured: `work` units (FLOPs, bytes, tokens, steps) per run.
    pub fn measured(mut self, timing: Timing, work: f64, unit: Unit) -> Entry {
        self.rate = Some(Rate {
            value: unit.rate(work, timing.median_s),
            unit: unit.name().to_string(),
        });
        self.timing = Some(timing);
        self
    }

    pub fn skipped(mut self, why: impl Into<String>) -> Entry {
        self.skipped = Some(why.into());
        self
    }

    pub fn note(mut self, key: &str, value: impl Into<String>) -> Entry {
        self.notes.insert(key.to_string(), value.into());
        self
    }

    /// Add a baseline that did the same `work` in `seconds`: its rate and our ratio to it.
    pub fn baseline(&mut self, name: &str, seconds: f64, work: f64) {
        let Some(t) = &self.timing else { return };
        let unit = self.rate.as_ref().map_or("", |r| r.unit.as_str());
        let rate = Unit::named(unit).map(|u| u.rate(work, seconds));
        self.baselines.push(BaselineResult {
            name: name.to_string(),
            median_s: seconds,
            rate,
            // Ours over the baseline, as speed: above 1 means we are faster.
            ratio: seconds / t.median_s,
        });
    }

    /// The key entries are matched by across records.
    pub fn key(&self) -> String {
        match &self.variant {
            Some(v) => format!("{} | {} | {v}", self.family, self.name),
            None => format!("{} | {}", self.family, self.name),
        }
    }
}

#[derive(Clone, Debug, Serialize, Deserialize, PartialEq)]
pub struct Timing {
    /// `gpu timestamps` (the span of the entry's passes on the device) or `wall` (submit to
    /// completion on the host).
    pub source: String,
    pub median_s: f64,
    pub min_s: f64,
    pub max_s: f64,
    pub samples: usize,
}

impl Timing {
    /// The median and range of `samples` (seconds), from `source`; None when empty.
    pub fn of(source: &str, samples: &[f64]) -> Option<Timing> {
        let mut v: Vec<f64> = samples.iter().copied().filter(|s| s.is_finite()).collect();
        if v.is_empty() {
            return None;
        }
        v.sort_by(f64::total_cmp);
        let n = v.len();
        let median = if n % 2 == 1 {
            v[n / 2]
        } else {
            0.5 * (v[n / 2 - 1] + v[n / 2])
        };
        Some(Timing {
            source: source.to_string(),
            median_s: median,
            min_s: v[0],
            max_s: v[n - 1],
            samples: n,
        })
    }
}

#[derive(Clone, Debug, Serialize, Deserialize, PartialEq)]
pub struct Rate {
    pub value: f64,
    pub unit: String,
}

#[derive(Clone, Debug, Serialize, Deserialize, PartialEq)]
pub struct BaselineResult {
    pub name: String,
    pub median_s: f64,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub rate: Option<f64>,
    /// Our speed over the baseline's (baseline seconds / our seconds).
    pub ratio: f64,
}

/// Units of work an entry's rate counts.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Unit {
    GflopPerS,
    GbPerS,
    TokensPerS,
    StepsPerS,
    RunsPerS,
}

impl Unit {
    pub fn name(self) -> &'static str {
        match self {
            Unit::GflopPerS => "GFLOP/s",
            Unit::GbPerS => "GB/s",
            Unit::TokensPerS => "tokens/s",
            Unit::StepsPerS => "steps/s",
            Unit::RunsPerS => "runs/s",
        }
    }

    pub fn named(name: &str) -> Option<Unit> {
        [
            Unit::GflopPerS,
            Unit::GbPerS,
            Unit::TokensPerS,
            Unit::StepsPerS,
            Unit::RunsPerS,
        ]
        .into_iter()
        .find(|u| u.name() == name)
    }

    /// `work` (FLOPs, bytes, tokens, steps or runs) done in `seconds`, in this unit.
    pub fn rate(self, work: f64, seconds: f64) -> f64 {
        let per_s = work / seconds;
        match self {
            Unit::GflopPerS | Unit::GbPerS => per_s / 1e9,
            _ => per_s,
        }
    }
}

impl Record {
    pub fn from_json(text: &str) -> crate::Result<Record> {
        let r: Record = serde_json::from_str(text)
            .map_err(|e| crate::Error::Invalid(format!("not a wgbench record: {e}")))?;
        if r.format != FORMAT {
            return Err(crate::Error::Invalid(format!(
                "a wgbench record of format {}; this wgbench reads format {FORMAT} (rerun `wgbench suite`)",
                r.format
            )));
        }
        Ok(r)
    }

    /// A short column name for reports, e.g. `llvmpipe (vulkan)`.
    pub fn column(&self) -> String {
        let name = match self.adapter.name.trim() {
            // Some browsers give no adapter name.
            "" => format!("unnamed {} adapter", self.adapter.device_type),
            n => n.to_string(),
        };
        format!("{name} ({}, {})", self.adapter.backend, self.size)
    }

    /// The run as Markdown: the set-up, then one table per family.
    pub fn summary_markdown(&self) -> String {
        let mut out = format!(
            "## wgbench suite ({}) on {} ({}, {}, {})\n\n\
             wgpu {}, commit {}, {} on {} ({} cores), {}\n\n",
            self.size,
            self.adapter.name,
            self.adapter.backend,
            self.adapter.device_type,
            self.adapter.driver_info,
            self.wgpu_version,
            self.commit,
            self.date,
            self.host.cpu,
            self.host.cores,
            self.host.os
        );
        for b in &self.baselines {
            let state = if b.available { "" } else { " (not available)" };
            out.push_str(&format!("- baseline `{}`{state}: {}\n", b.name, b.detail));
        }
        let mut families: Vec<&str> = Vec::new();
        for e in &self.entries {
            if !families.contains(&e.family.as_str()) {
                families.push(&e.family);
            }
        }
        for family in families {
            out.push_str(&format!(
                "\n### {family}\n\n| entry | variant | median | range | rate | memory | vs baselines |\n|---|---|---|---|---|---|---|\n"
            ));
            for e in self.entries.iter().filter(|e| e.family == family) {
                out.push_str(&format!("{}\n", entry_row(e)));
            }
        }
        out
    }
}

fn entry_row(e: &Entry) -> String {
    let variant = e.variant.as_deref().unwrap_or("");
    if let Some(why) = &e.skipped {
        return format!("| {} | {variant} | skipped: {why} | | | | |", e.name);
    }
    let (median, range) = match &e.timing {
        Some(t) => (
            format!("{} ({})", seconds(t.median_s), short_source(&t.source)),
            format!("{} to {}", seconds(t.min_s), seconds(t.max_s)),
        ),
        None => (String::new(), String::new()),
    };
    let rate = e
        .rate
        .as_ref()
        .map_or(String::new(), |r| format!("{} {}", number(r.value), r.unit));
    let memory = e.planned_bytes.map_or(String::new(), |b| {
        format!("{:.1} MiB", b as f64 / 1048576.0)
    });
    let base: Vec<String> = e
        .baselines
        .iter()
        .map(|b| format!("{:.3}x {}", b.ratio, b.name))
        .collect();
    format!(
        "| {} | {variant} | {median} | {range} | {rate} | {memory} | {} |",
        e.name,
        base.join(", ")
    )
}

fn short_source(s: &str) -> &str {
    if s.starts_with("gpu") {
        "gpu"
    } else {
        "wall"
    }
}

/// Seconds as ms or s with three significant figures.
pub fn seconds(s: f64) -> String {
    if s < 1.0 {
        format!("{} ms", number(s * 1e3))
    } else {
        format!("{} s", number(s))
    }
}

/// A number with about three significant figures.
pub fn number(v: f64) -> String {
    let a = v.abs();
    if a >= 100.0 {
        format!("{v:.0}")
    } else if a >= 10.0 {
        format!("{v:.1}")
    } else if a >= 1.0 {
        format!("{v:.2}")
    } else {
        format!("{v:.3}")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn timing_takes_the_median_and_range() {
        let t = Timing::of("wall", &[3.0, 1.0, 2.0, f64::NAN]).unwrap();
        assert_eq!(
            (t.median_s, t.min_s, t.max_s, t.samples),
            (2.0, 1.0, 3.0, 3)
        );
        let t = Timing::of("wall", &[4.0, 1.0]).unwrap();
        assert_eq!(t.median_s, 2.5);
        assert!(Timing::of("wall", &[]).is_none());
    }

    #[test]
    fn baseline_ratio_is_our_speed_over_theirs() {
        let t = Timing::of("wall", &[0.5]).unwrap();
        let mut e = Entry::new("matmul", "m").measured(t, 2e9, Unit::GflopPerS);
        assert_eq!(e.rate.as_ref().unwrap().value, 4.0);
        e.baseline("cpu gemm", 0.25, 2e9);
        let b = &e.baselines[0];
        assert_eq!((b.ratio, b.rate), (0.5, Some(8.0)));
    }
}

//! The record's header: the adapter, the host, the build, the date and the command.

use std::collections::BTreeMap;
use std::path::Path;
use wgtrain::bench::record::{Adapter, Host, Record, FORMAT};
use wgtrain::bench::shapes::Size;
use wgtrain::{Error, Gpu, Result};

/// The wgpu version this binary was built with, read from the lock file at build time.
fn wgpu_version() -> String {
    const LOCK: &str = include_str!("../../../../Cargo.lock");
    LOCK.split("[[package]]")
        .find(|p| p.contains("name = \"wgpu\"\n"))
        .and_then(|p| p.lines().find_map(|l| l.strip_prefix("version = ")))
        .map_or("unknown".into(), |v| v.trim_matches('"').to_string())
}

fn cpu_name() -> String {
    std::fs::read_to_string("/proc/cpuinfo")
        .ok()
        .and_then(|t| {
            t.lines()
                .find(|l| l.starts_with("model name"))
                .and_then(|l| l.split(':').nth(1))
                .map(|s| s.trim().to_string())
        })
        .unwrap_or_else(|| std::env::consts::ARCH.to_string())
}

fn os_name() -> String {
    let pretty = std::fs::read_to_string("/etc/os-release")
        .ok()
        .and_then(|t| {
            t.lines()
                .find_map(|l| l.strip_prefix("PRETTY_NAME="))
                .map(|s| s.trim_matches('"').to_string())
        });
    let kernel = std::fs::read_to_string("/proc/sys/kernel/osrelease").ok();
    match (pretty, kernel) {
        (Some(p), Some(k)) => format!("{p}, Linux {}", k.trim()),
        (Some(p), None) => p,
        _ => std::env::consts::OS.to_string(),
    }
}

/// The commit of the working tree the suite runs from (`-dirty` with local changes),
/// `$WGBENCH_COMMIT` where there is no git (a copied binary), else `unknown`.
fn commit() -> String {
    let git = |args: &[&str]| {
        std::process::Command::new("git")
            .args(args)
            .output()
            .ok()
            .filter(|o| o.status.success())
            .map(|o| String::from_utf8_lossy(&o.stdout).trim().to_string())
    };
    match git(&["rev-parse", "--short=12", "HEAD"]) {
        Some(c) => {
            let dirty = git(&["status", "--porcelain", "--untracked-files=no"])
                .is_some_and(|s| !s.is_empty());
            if dirty {
                format!("{c}-dirty")
            } else {
                c
            }
        }
        None => std::env::var("WGBENCH_COMMIT").unwrap_or_else(|_| "unknown".into()),
    }
}

/// Now, UTC, as `YYYY-MM-DDTHH:MM:SSZ`.
pub fn utc_now() -> String {
    let secs = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs());
    utc_date(secs)
}

/// Seconds since the epoch as a UTC date (the civil-from-days rule of the proleptic
/// Gregorian calendar).
pub fn utc_date(secs: u64) -> String {
    let days = (secs / 86400) as i64;
    let rem = secs % 86400;
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = doy - (153 * mp + 2) / 5 + 1;
    let month = if mp < 10 { mp + 3 } else { mp - 9 };
    let year = yoe + era * 400 + i64::from(month <= 2);
    format!(
        "{year:04}-{month:02}-{day:02}T{:02}:{:02}:{:02}Z",
        rem / 3600,
        rem / 60 % 60,
        rem % 60
    )
}

/// Everything of the record but its entries and baselines.
pub fn header(gpu: &Gpu, size: Size) -> Record {
    let features = gpu.device.features();
    let l = gpu.device.limits();
    let limits = BTreeMap::from([
        (
            "max_storage_buffer_binding_size".to_string(),
            l.max_storage_buffer_binding_size,
        ),
        ("max_buffer_size".into(), l.max_buffer_size),
        (
            "max_compute_workgroup_storage_size".into(),
            l.max_compute_workgroup_storage_size as u64,
        ),
        (
            "max_compute_invocations_per_workgroup".into(),
            l.max_compute_invocations_per_workgroup as u64,
        ),
        (
            "max_compute_workgroups_per_dimension".into(),
            l.max_compute_workgroups_per_dimension as u64,
        ),
        ("binding_bytes_used".into(), gpu.binding_limit()),
    ]);
    Record {
        format: FORMAT,
        size: size.name().into(),
        adapter: Adapter::of(gpu),
        wgpu_version: wgpu_version(),
        features: features.iter_names().map(|(n, _)| n.to_string()).collect(),
        limits,
        host: Host {
            cpu: cpu_name(),
            cores: std::thread::available_parallelism().map_or(1, |n| n.get()),
            os: os_name(),
        },
        commit: commit(),
        date: utc_now(),
        command: std::env::args().collect::<Vec<_>>().join(" "),
        baselines: Vec::new(),
        entries: Vec::new(),
    }
}

/// Fail now if `out` cannot be written (its folder missing or read-only).
pub fn check_writable(out: &Path) -> Result<()> {
    let dir = out
        .parent()
        .filter(|p| !p.as_os_str().is_empty())
        .unwrap_or(Path::new("."));
    let probe = dir.join(format!(".wgbench-probe-{}", std::process::id()));
    std::fs::write(&probe, b"")
        .and_then(|_| std::fs::remove_file(&probe))
        .map_err(|e| {
            Error::Invalid(format!(
                "--out {}: cannot write in {} ({e}); create the folder or choose another path",
                out.display(),
                dir.display()
            ))
        })
}

/// Write the record atomically (a temporary file renamed over `out`).
pub fn write_record(record: &Record, out: &Path) -> Result<()> {
    let text = serde_json::to_string_pretty(record)
        .map_err(|e| Error::Invalid(format!("encoding the record: {e}")))?;
    let tmp = out.with_extension("json.tmp");
    std::fs::write(&tmp, text + "\n")
        .and_then(|_| std::fs::rename(&tmp, out))
        .map_err(|e| Error::Invalid(format!("writing {}: {e}", out.display())))
}

#[cfg(test)]
mod tests {
    #[test]
    fn utc_dates() {
        assert_eq!(super::utc_date(0), "1970-01-01T00:00:00Z");
        assert_eq!(super::utc_date(951_782_400), "2000-02-29T00:00:00Z");
        assert_eq!(super::utc_date(1_796_353_445), "2026-12-04T03:04:05Z");
    }
}

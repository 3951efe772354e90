//! pico-train's Hugging Face checkpoint layout, both ways: checkpoints whose tensor names carry
//! the `pico_decoder.` prefix (and whose config.json carries the Hugging Face keys) load and
//! compute what their unprefixed originals compute; `wgtrain export --hf` writes that layout
//! (prefixed names, pico's config keys, the tokenizer), loads back to the same logits, merges
//! ReLoRA checkpoints first; bad inputs are refused before anything is written.

mod common;

use std::collections::BTreeSet;
use std::fs;
use std::path::Path;
use wgtrain::model::checkpoint::{
    hf_config_json, load, read_safetensors, write_safetensors, Checkpoint, HostSlice, HF_PREFIX,
};
use wgtrain::model::decoder::Decoder;
use wgtrain::model::merge::merge_checkpoint;
use wgtrain::train::byte_tokenizer;
use wgtrain::Gpu;

/// A copy of checkpoint `src` at `dst` whose tensor names are `rename`d and whose config.json
/// is `config` (the original's when `None`).
fn rewritten(src: &Path, dst: &Path, rename: impl Fn(&str) -> String, config: Option<String>) {
    fs::create_dir_all(dst).unwrap();
    let tensors = read_safetensors(&src.join("model.safetensors")).unwrap();
    let names: Vec<String> = tensors.keys().map(|n| rename(n)).collect();
    let list: Vec<(&str, &[usize], HostSlice<'_>)> = names
        .iter()
        .zip(tensors.values())
        .map(|(n, t)| (n.as_str(), t.shape.as_slice(), t.data.as_slice()))
        .collect();
    write_safetensors(&dst.join("model.safetensors"), &list).unwrap();
    let config = config.unwrap_or_else(|| fs::read_to_string(src.join("config.json")).unwrap());
    fs::write(dst.join("config.json"), config).unwrap();
}

fn prefixed(name: &str) -> String {
    format!("{HF_PREFIX}{name}")
}

/// The logits of a plain or ReLoRA checkpoint on a fixed batch (no dropout).
fn logits(gpu: &Gpu, ckpt: &Checkpoint) -> Vec<f32> {
    let m = Decoder::for_inference(gpu, &ckpt.config, 2, 12).unwrap();
    m.load_params(gpu, |n| ckpt.tensors.get(n).map(|t| t.data.as_slice()))
        .unwrap();
    let ids: Vec<u32> = (0..26)
        .map(|i| (i * 11 + 5) % ckpt.config.vocab_size as u32)
        .collect();
    m.set_batch(gpu, &ids).unwrap();
    let mut enc = gpu.encoder();
    m.record_eval_forward(&mut enc);
    gpu.submit(enc);
    m.logits().unwrap().to_vec_f32(gpu).unwrap()
}

/// `wgtrain grads` on the fixture's batch: (loss as printed, the logits it wrote).
fn cli_loss_and_logits(checkpoint: &Path, tmp: &Path, tag: &str) -> (String, Vec<f32>) {
    let out = tmp.join(format!("{tag}-grads.safetensors"));
    let stdout = common::wgtrain(["grads", "--checkpoint"])
        .arg(checkpoint)
        .arg("--batch")
        .arg(common::fixture("pico_mini").join("batch.safetensors"))
        .arg("--out")
        .arg(&out)
        .test_backend()
        .run_ok();
    let loss = stdout.split_whitespace().nth(1).unwrap().to_string();
    let got = read_safetensors(&out).unwrap();
    (loss, got["logits"].data.as_f32().unwrap().to_vec())
}

fn listing(dir: &Path) -> BTreeSet<String> {
    fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect()
}

#[test]
fn a_prefixed_checkpoint_loads_and_computes_what_its_original_does() {
    let tmp = common::temp_path("hf-prefixed");
    let original = common::fixture("pico_mini");
    let hf = tmp.join("hf");
    // pico-train's layout: prefixed names and its Hugging Face config.json keys.
    let ckpt = load(&original).unwrap();
    let mut config: serde_json::Value =
        serde_json::from_str(&hf_config_json(&ckpt.config)).unwrap();
    config["transformers_version"] = "4.48.3".into();
    rewritten(&original, &hf, prefixed, Some(config.to_string()));

    let loaded = load(&hf).unwrap();
    assert_eq!(loaded.config, ckpt.config);
    assert_eq!(
        loaded.tensors, ckpt.tensors,
        "the prefix is stripped from every name"
    );

    let gpu = common::gpu();
    assert_eq!(logits(&gpu, &loaded), logits(&gpu, &ckpt));
    // Through the command line too: the same loss (perplexity = e^loss) and logits.
    assert_eq!(
        cli_loss_and_logits(&hf, &tmp, "hf"),
        cli_loss_and_logits(&original, &tmp, "original")
    );
    let _ = fs::remove_dir_all(&tmp);
}

#[test]
fn export_hf_writes_pico_layout_and_loads_back_to_the_same_logits() {
    let tmp = common::temp_path("hf-export");
    let src = tmp.join("ckpt");
    common::copy_checkpoint(&common::fixture("pico_mini"), &src);
    let tokenizer = byte_tokenizer::tokenizer_json();
    fs::write(src.join("tokenizer.json"), &tokenizer).unwrap();
    fs::write(
        src.join("tokenizer_config.json"),
        r#"{"model_max_length": 16}"#,
    )
    .unwrap();
    let out = tmp.join("hf");
    let stdout = common::wgtrain(["export", "--hf", "--checkpoint"])
        .arg(&src)
        .arg("--out")
        .arg(&out)
        .run_ok();
    assert!(stdout.contains("pico_decoder.* names"), "{stdout}");
    assert!(!stdout.contains("merged"), "{stdout}");

    assert_eq!(
        listing(&out),
        [
            "config.json",
            "model.safetensors",
            "tokenizer.json",
            "tokenizer_config.json"
        ]
        .map(String::from)
        .into()
    );
    assert_eq!(listing(&tmp), ["ckpt", "hf"].map(String::from).into());
    assert_eq!(
        fs::read_to_string(out.join("tokenizer.json")).unwrap(),
        tokenizer
    );

    // Every tensor under its prefixed name, values unchanged.
    let ckpt = load(&src).unwrap();
    let written = read_safetensors(&out.join("model.safetensors")).unwrap();
    let want: BTreeSet<String> = ckpt
        .config
        .param_specs()
        .iter()
        .map(|s| prefixed(&s.name))
        .collect();
    assert_eq!(written.keys().cloned().collect::<BTreeSet<_>>(), want);
    for (name, t) in &ckpt.tensors {
        let w = &written[&prefixed(name)];
        assert_eq!(
            (&w.shape, w.data.as_f32().unwrap()),
            (&t.shape, &t.data[..])
        );
    }

    // pico's config.json keys and values.
    let config: serde_json::Value =
        serde_json::from_str(&fs::read_to_string(out.join("config.json")).unwrap()).unwrap();
    assert_eq!(config["model_type"], "pico_decoder");
    assert_eq!(
        config["architectures"],
        serde_json::json!(["PicoDecoderHF"])
    );
    assert_eq!(
        config["auto_map"],
        serde_json::json!({
            "AutoConfig": "pico_decoder.PicoDecoderHFConfig",
            "AutoModel": "pico_decoder.PicoDecoderHF",
            "AutoModelForCausalLM": "pico_decoder.PicoDecoderHF",
        })
    );
    assert_eq!(config["torch_dtype"], "float32");
    let c = &ckpt.config;
    for (key, value) in [
        ("d_model", c.d_model),
        ("n_layers", c.n_layers),
        ("vocab_size", c.vocab_size),
        ("max_seq_len", c.max_seq_len),
        ("attention_n_heads", c.attention_n_heads),
        ("attention_n_kv_heads", c.attention_n_kv_heads),
        ("activation_hidden_dim", c.activation_hidden_dim),
    ] {
        assert_eq!(config[key], value, "{key}");
    }
    assert_eq!(config["norm_eps"], c.norm_eps);
    assert_eq!(config["position_emb_theta"], c.position_emb_theta);
    assert!(config["batch_size"].is_u64());
    assert!(config.get("relora").is_none());

    // Back into wgtrain: the same model, the same logits, bit for bit.
    let back = load(&out).unwrap();
    assert_eq!((&back.config, &back.tensors), (&ckpt.config, &ckpt.tensors));
    let gpu = common::gpu();
    assert_eq!(logits(&gpu, &back), logits(&gpu, &ckpt));
    assert_eq!(
        cli_loss_and_logits(&out, &tmp, "export"),
        cli_loss_and_logits(&src, &tmp, "src")
    );

    // Exporting again replaces the export.
    common::wgtrain(["export", "--hf", "--checkpoint"])
        .arg(&src)
        .arg("--out")
        .arg(&out)
        .run_ok();
    assert_eq!(load(&out).unwrap().tensors, ckpt.tensors);
    let _ = fs::remove_dir_all(&tmp);
}

#[test]
fn export_hf_finds_the_run_tokenizer_or_takes_one_given() {
    let tmp = common::temp_path("hf-tokenizer");
    let step = tmp.join("run/checkpoints/step_1");
    common::copy_checkpoint(&common::fixture("pico_mini"), &step);
    let run_tokenizer = byte_tokenizer::tokenizer_json();
    fs::write(tmp.join("run/tokenizer.json"), &run_tokenizer).unwrap();
    let out = tmp.join("hf");
    let stdout = common::wgtrain(["export", "--hf", "--checkpoint"])
        .arg(&step)
        .arg("--out")
        .arg(&out)
        .run_ok();
    assert!(stdout.contains("run/tokenizer.json"), "{stdout}");
    assert_eq!(
        fs::read_to_string(out.join("tokenizer.json")).unwrap(),
        run_tokenizer
    );

    // --tokenizer wins; a file that is not JSON is refused and nothing changes.
    let other = tmp.join("other.json");
    fs::write(&other, r#"{"version": "1.0"}"#).unwrap();
    common::wgtrain(["export", "--hf", "--checkpoint"])
        .arg(&step)
        .arg("--out")
        .arg(&out)
        .arg("--tokenizer")
        .arg(&other)
        .run_ok();
    assert_eq!(
        fs::read_to_string(out.join("tokenizer.json")).unwrap(),
        r#"{"version": "1.0"}"#
    );
    let broken = tmp.join("broken.json");
    fs::write(&broken, "not json").unwrap();
    let r = common::wgtrain(["export", "--hf", "--checkpoint"])
        .arg(&step)
        .arg("--out")
        .arg(&out)
        .arg("--tokenizer")
        .arg(&broken)
        .run();
    assert!(
        !r.ok && r.stderr.contains("is not a JSON file"),
        "{}",
        r.stderr
    );
    assert_eq!(
        fs::read_to_string(out.join("tokenizer.json")).unwrap(),
        r#"{"version": "1.0"}"#
    );

    // No tokenizer anywhere: the export says so and writes none.
    let bare = tmp.join("bare");
    common::copy_checkpoint(&common::fixture("pico_mini"), &bare);
    let out2 = tmp.join("hf2");
    let stdout = common::wgtrain(["export", "--hf", "--checkpoint"])
        .arg(&bare)
        .arg("--out")
        .arg(&out2)
        .run_ok();
    assert!(stdout.contains("no tokenizer.json found"), "{stdout}");
    assert_eq!(
        listing(&out2),
        ["config.json", "model.safetensors"]
            .map(String::from)
            .into()
    );
    let _ = fs::remove_dir_all(&tmp);
}

#[test]
fn a_relora_checkpoint_exports_merged_and_computes_the_same_function() {
    let tmp = common::temp_path("hf-relora");
    let src = common::fixture("relora_mini");
    let out = tmp.join("hf");
    let stdout = common::wgtrain(["export", "--hf", "--checkpoint"])
        .arg(&src)
        .arg("--out")
        .arg(&out)
        .run_ok();
    assert!(stdout.contains("merged the ReLoRA adapters"), "{stdout}");

    let ckpt = load(&src).unwrap();
    let r = ckpt.config.relora.as_ref().unwrap();
    assert_ne!(r.scale(), 1.0, "the scale must matter for this test");
    let back = load(&out).unwrap();
    assert!(back.config.relora.is_none());
    let names = read_safetensors(&out.join("model.safetensors")).unwrap();
    assert!(names
        .keys()
        .all(|n| n.starts_with(HF_PREFIX) && !n.contains("_lora")));
    // Exactly the host merge's weights ...
    let (plain, merged) = merge_checkpoint(&ckpt).unwrap();
    assert_eq!(back.config, plain);
    assert_eq!(back.tensors, merged.into_iter().collect());
    // ... which compute what the ReLoRA model computes.
    let gpu = common::gpu();
    common::assert_close(
        &logits(&gpu, &back),
        &logits(&gpu, &ckpt),
        1e-4,
        1e-4,
        "exported vs ReLoRA logits",
    );
    let _ = fs::remove_dir_all(&tmp);
}

#[test]
fn bad_inputs_are_refused_with_clear_errors_and_no_output() {
    let tmp = common::temp_path("hf-bad");
    let original = common::fixture("pico_mini");

    // Some names prefixed, some not.
    let mixed = tmp.join("mixed");
    rewritten(
        &original,
        &mixed,
        |n| {
            if n.starts_with("layers.1") {
                prefixed(n)
            } else {
                n.to_string()
            }
        },
        None,
    );
    let e = load(&mixed).unwrap_err().to_string();
    assert!(
        e.contains("mixes two state dicts") && e.contains("has no `pico_decoder.` prefix"),
        "{e}"
    );

    // A Hugging Face config of another architecture.
    let llama = tmp.join("llama");
    let config = fs::read_to_string(original.join("config.json"))
        .unwrap()
        .replacen('{', r#"{"model_type": "llama", "#, 1);
    rewritten(&original, &llama, prefixed, Some(config));
    let e = load(&llama).unwrap_err().to_string();
    assert!(
        e.contains("`model_type`") && e.contains("'llama' is not a pico model"),
        "{e}"
    );

    for (src, want) in [
        (&mixed, "mixes two state dicts"),
        (&llama, "is not a pico model"),
    ] {
        let out = tmp.join("out");
        let r = common::wgtrain(["export", "--hf", "--checkpoint"])
            .arg(src)
            .arg("--out")
            .arg(&out)
            .run();
        assert!(!r.ok && r.stderr.contains(want), "{}", r.stderr);
        assert!(!out.exists(), "no output directory after a refused export");
        assert!(
            !listing(&tmp).iter().any(|n| n.starts_with(".out")),
            "no staging leftovers: {:?}",
            listing(&tmp)
        );
    }

    // The export cannot replace its own checkpoint, nor a directory that is not one.
    let src = tmp.join("ckpt");
    common::copy_checkpoint(&original, &src);
    let r = common::wgtrain(["export", "--hf", "--checkpoint"])
        .arg(&src)
        .arg("--out")
        .arg(&src)
        .run();
    assert!(
        !r.ok && r.stderr.contains("is the checkpoint being exported"),
        "{}",
        r.stderr
    );
    assert_eq!(
        listing(&src),
        listing(&original),
        "the checkpoint is untouched"
    );
    let notes = tmp.join("notes");
    fs::create_dir(&notes).unwrap();
    fs::write(notes.join("keep.txt"), "keep me").unwrap();
    let r = common::wgtrain(["export", "--hf", "--checkpoint"])
        .arg(&src)
        .arg("--out")
        .arg(&notes)
        .run();
    assert!(!r.ok && r.stderr.contains("no config.json"), "{}", r.stderr);
    assert_eq!(listing(&notes), ["keep.txt"].map(String::from).into());
    let _ = fs::remove_dir_all(&tmp);
}

//! Checkpoints and safetensors files on the host: round trips, BF16/F16 loading, every
//! mismatch and damaged-file error, and the PyTorch-written fixtures.

use safetensors::tensor::TensorView;
use safetensors::Dtype;
use std::fs;
use std::path::{Path, PathBuf};
use wgtrain::model::checkpoint::{
    self, load, load_checked, read_safetensors, save, write_safetensors, HostData, HostSlice,
    CONFIG_FILE, MODEL_FILE,
};
use wgtrain::model::config::ModelConfig;
use wgtrain::model::relora::ReloraConfig;

/// A fresh directory under cargo's per-target temp dir.
fn temp_dir(tag: &str) -> PathBuf {
    let p = Path::new(env!("CARGO_TARGET_TMPDIR"))
        .join("checkpoint-tests")
        .join(format!("{tag}-{}", std::process::id()));
    let _ = fs::remove_dir_all(&p);
    fs::create_dir_all(&p).unwrap();
    p
}

fn fixture(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/fixtures")
        .join(name)
}

fn mini() -> ModelConfig {
    ModelConfig {
        d_model: 8,
        n_layers: 2,
        vocab_size: 13,
        attention_n_heads: 2,
        attention_n_kv_heads: 1,
        activation_hidden_dim: 12,
        max_seq_len: 8,
        norm_eps: 1e-5,
        position_emb_theta: 500000.0,
        relora: None,
    }
}

type Owned = Vec<(String, Vec<usize>, Vec<f32>)>;

/// Values for every parameter, including awkward ones (signed zero, infinities, NaN payloads,
/// subnormals) to prove the round trip is bitwise.
fn weights(c: &ModelConfig) -> Owned {
    let special = [
        -0.0f32,
        f32::INFINITY,
        f32::NEG_INFINITY,
        f32::from_bits(0x7fc0_1234),
        f32::from_bits(0xff80_0001),
        f32::from_bits(0x0000_0001),
        f32::MIN_POSITIVE,
        f32::MAX,
        1.0 / 3.0,
    ];
    c.param_specs()
        .into_iter()
        .enumerate()
        .map(|(i, s)| {
            let data = (0..s.numel())
                .map(|j| {
                    if j < special.len() && i % 2 == 0 {
                        special[j]
                    } else {
                        ((i * 131 + j * 7) % 97) as f32 / 97.0 - 0.5
                    }
                })
                .collect();
            (s.name, s.shape, data)
        })
        .collect()
}

fn refs(w: &Owned) -> Vec<(&str, &[usize], &[f32])> {
    w.iter()
        .map(|(n, s, d)| (n.as_str(), s.as_slice(), d.as_slice()))
        .collect()
}

/// Write a checkpoint by hand with the safetensors crate: `tensors` as (name, dtype, shape, bytes).
fn write_raw(dir: &Path, config: &ModelConfig, tensors: &[(String, Dtype, Vec<usize>, Vec<u8>)]) {
    fs::create_dir_all(dir).unwrap();
    fs::write(dir.join(CONFIG_FILE), config.to_json_string()).unwrap();
    let views: Vec<(String, TensorView<'_>)> = tensors
        .iter()
        .map(|(n, dt, s, b)| (n.clone(), TensorView::new(*dt, s.clone(), b).unwrap()))
        .collect();
    safetensors::serialize_to_file(views, None, &dir.join(MODEL_FILE)).unwrap();
}

fn f32_raw(w: &Owned) -> Vec<(String, Dtype, Vec<usize>, Vec<u8>)> {
    w.iter()
        .map(|(n, s, d)| {
            let b = d.iter().flat_map(|v| v.to_le_bytes()).collect();
            (n.clone(), Dtype::F32, s.clone(), b)
        })
        .collect()
}

fn err(r: wgtrain::Result<impl std::fmt::Debug>) -> String {
    r.unwrap_err().to_string()
}

#[test]
fn round_trip_is_bitwise() {
    let root = temp_dir("round_trip");
    let dir = root.join("step_10");
    let mut c = mini();
    c.relora = Some(
        ReloraConfig::from_json_value(
            &serde_json::json!({"r": 16, "lora_alpha": 32, "target_modules": ["q_proj"]}),
        )
        .unwrap(),
    );
    let w = weights(&c);
    save(&dir, &c, &refs(&w)).unwrap();
    let ckpt = load_checked(&dir).unwrap();
    assert_eq!(ckpt.config, c);
    assert_eq!(ckpt.tensors.len(), w.len());
    for (n, s, d) in &w {
        let t = ckpt.tensor(n).unwrap();
        assert_eq!(&t.shape, s, "{n}");
        let got: Vec<u32> = t.data.iter().map(|v| v.to_bits()).collect();
        let want: Vec<u32> = d.iter().map(|v| v.to_bits()).collect();
        assert_eq!(got, want, "{n}");
    }
    // the file is a plain safetensors file with f32 tensors under the given names
    let raw = read_safetensors(&dir.join(MODEL_FILE)).unwrap();
    assert_eq!(raw.len(), w.len());
    assert!(matches!(raw[&w[0].0].data, HostData::F32(_)));
    let e = err(ckpt.tensor("nope.weight"));
    assert!(e.contains("'nope.weight'") && e.contains("missing"), "{e}");
    fs::remove_dir_all(root).unwrap();
}

#[test]
fn loads_bf16_and_f16_weights() {
    let root = temp_dir("half");
    let c = mini();
    let w = weights(&c);
    // (f16 bits, bf16 bits, value) for values exact in both formats, plus f16 specials
    let f16_cases: [(u16, f32); 8] = [
        (0x3c00, 1.0),
        (0xc100, -2.5),
        (0x7bff, 65504.0),
        (0x0001, 5.960_464_5e-8), // smallest subnormal, 2^-24
        (0x8000, -0.0),
        (0x7c00, f32::INFINITY),
        (0xfc00, f32::NEG_INFINITY),
        (0x3555, 0.333_251_95),
    ];
    let bf16_cases: [(u16, f32); 5] = [
        (0x3f80, 1.0),
        (0xc020, -2.5),
        (0x4780, 65536.0),
        (0x0001, f32::from_bits(0x0001_0000)),
        (0xff80, f32::NEG_INFINITY),
    ];
    for (dtype, cases) in [(Dtype::F16, &f16_cases[..]), (Dtype::BF16, &bf16_cases[..])] {
        let dir = root.join(format!("{dtype:?}"));
        let mut tensors = f32_raw(&w);
        let want: Vec<f32> = (0..w[1].2.len())
            .map(|i| cases[i % cases.len()].1)
            .collect();
        let bytes: Vec<u8> = (0..want.len())
            .flat_map(|i| cases[i % cases.len()].0.to_le_bytes())
            .collect();
        tensors[1] = (w[1].0.clone(), dtype, w[1].1.clone(), bytes);
        // a NaN too: payload kept
        let nan_bits: u16 = if dtype == Dtype::F16 { 0x7e01 } else { 0x7fc1 };
        tensors[2].1 = dtype;
        tensors[2].3 = (0..w[2].2.len())
            .flat_map(|_| nan_bits.to_le_bytes())
            .collect();
        write_raw(&dir, &c, &tensors);

        let ckpt = load_checked(&dir).unwrap();
        let got = &ckpt.tensors[&w[1].0].data;
        let got_bits: Vec<u32> = got.iter().map(|v| v.to_bits()).collect();
        let want_bits: Vec<u32> = want.iter().map(|v| v.to_bits()).collect();
        assert_eq!(got_bits, want_bits, "{dtype:?}");
        assert!(ckpt.tensors[&w[2].0].data.iter().all(|v| v.is_nan()));
        let bits = |v: &[f32]| v.iter().map(|x| x.to_bits()).collect::<Vec<_>>();
        assert_eq!(
            bits(&ckpt.tensors[&w[0].0].data),
            bits(&w[0].2),
            "f32 beside {dtype:?}"
        );
    }
    fs::remove_dir_all(root).unwrap();
}

#[test]
fn mismatches_name_the_tensor() {
    let root = temp_dir("mismatch");
    let c = mini();
    let w = weights(&c);
    let specs = c.param_specs();

    // missing tensor
    let dir = root.join("missing");
    let fewer: Owned = w
        .iter()
        .filter(|t| t.0 != "layers.1.swiglu.w_2.weight")
        .cloned()
        .collect();
    save(&dir, &c, &refs(&fewer)).unwrap();
    let e = err(load_checked(&dir));
    assert!(
        e.contains("'layers.1.swiglu.w_2.weight'") && e.contains("missing"),
        "{e}"
    );
    assert!(e.contains("[8, 12]") && e.contains(MODEL_FILE), "{e}");

    // unexpected tensor
    let dir = root.join("unexpected");
    let mut more = w.clone();
    more.push((
        "layers.0.attention.q_proj.A_lora.weight".into(),
        vec![4, 8],
        vec![0.0; 32],
    ));
    save(&dir, &c, &refs(&more)).unwrap();
    let ckpt = load(&dir).unwrap();
    let e = err(ckpt.check_against(&specs));
    assert!(
        e.contains("'layers.0.attention.q_proj.A_lora.weight'"),
        "{e}"
    );
    assert!(e.contains("unexpected tensor"), "{e}");

    // wrong shape (a transposed linear weight)
    let dir = root.join("shape");
    let mut bad = w.clone();
    let k = bad
        .iter()
        .position(|t| t.0 == "layers.0.attention.k_proj.weight")
        .unwrap();
    bad[k].1 = vec![8, 4];
    save(&dir, &c, &refs(&bad)).unwrap();
    let e = err(load_checked(&dir));
    assert!(e.contains("'layers.0.attention.k_proj.weight'"), "{e}");
    assert!(e.contains("expected [4, 8], got [8, 4]"), "{e}");

    // several problems: the first is named, the others counted and listed
    let dir = root.join("several");
    let mut worse = bad.clone();
    worse.retain(|t| t.0 != "output_norm.weight");
    worse.push(("extra".into(), vec![1], vec![1.0]));
    save(&dir, &c, &refs(&worse)).unwrap();
    let e = err(load_checked(&dir));
    assert!(e.contains("'layers.0.attention.k_proj.weight'"), "{e}");
    assert!(
        e.contains("2 more problems: output_norm.weight, extra"),
        "{e}"
    );

    // a checkpoint of another model size against this model's specs
    let mut other = c.clone();
    other.d_model = 16;
    let e = err(load(&dir.join("..").join("shape"))
        .unwrap()
        .check_against(&other.param_specs()));
    assert!(
        e.contains("'embedding_proj.weight'") && e.contains("expected [13, 16], got [13, 8]"),
        "{e}"
    );

    // an integer tensor among the weights
    let dir = root.join("dtype");
    let mut tensors = f32_raw(&w);
    let n = w[3].2.len();
    tensors[3].1 = Dtype::I64;
    tensors[3].3 = (0..n as i64).flat_map(|v| v.to_le_bytes()).collect();
    write_raw(&dir, &c, &tensors);
    let e = err(load(&dir));
    assert!(
        e.contains(&format!("'{}'", w[3].0)) && e.contains("unsupported dtype I64"),
        "{e}"
    );

    // a dtype no reader supports
    let dir = root.join("bool");
    let mut tensors = f32_raw(&w);
    tensors[0].1 = Dtype::BOOL;
    tensors[0].3 = vec![0u8; w[0].2.len()];
    write_raw(&dir, &c, &tensors);
    let e = err(load(&dir));
    assert!(
        e.contains("'embedding_proj.weight'") && e.contains("BOOL"),
        "{e}"
    );
    let e = err(read_safetensors(&dir.join(MODEL_FILE)));
    assert!(
        e.contains("'embedding_proj.weight'") && e.contains("unsupported dtype BOOL"),
        "{e}"
    );
    fs::remove_dir_all(root).unwrap();
}

#[test]
fn damaged_or_missing_files_are_clear_errors() {
    let root = temp_dir("damaged");
    let c = mini();
    let w = weights(&c);
    let good = root.join("good");
    save(&good, &c, &refs(&w)).unwrap();
    let model_bytes = fs::read(good.join(MODEL_FILE)).unwrap();

    let copy = |name: &str| -> PathBuf {
        let d = root.join(name);
        fs::create_dir_all(&d).unwrap();
        for f in [CONFIG_FILE, MODEL_FILE] {
            fs::copy(good.join(f), d.join(f)).unwrap();
        }
        d
    };

    // no such directory
    let e = err(load(&root.join("absent")));
    assert!(
        e.contains("absent") && e.contains("no such checkpoint directory"),
        "{e}"
    );

    // missing config.json
    let d = copy("no_config");
    fs::remove_file(d.join(CONFIG_FILE)).unwrap();
    let e = err(load(&d));
    assert!(
        e.contains(&format!("no_config/{CONFIG_FILE}")) && e.contains("not found"),
        "{e}"
    );

    // malformed config.json, and one with an impossible value
    let d = copy("bad_config");
    fs::write(d.join(CONFIG_FILE), "{\"d_model\": 8,").unwrap();
    let e = err(load(&d));
    assert!(
        e.contains(CONFIG_FILE) && e.contains("not valid JSON"),
        "{e}"
    );
    fs::write(
        d.join(CONFIG_FILE),
        c.to_json_string()
            .replace("\"n_layers\": 2", "\"n_layers\": 0"),
    )
    .unwrap();
    let e = err(load(&d));
    assert!(e.contains(CONFIG_FILE) && e.contains("`n_layers`"), "{e}");
    fs::write(d.join(CONFIG_FILE), [0xff, 0xfe]).unwrap();
    let e = err(load(&d));
    assert!(e.contains(CONFIG_FILE) && e.contains("UTF-8"), "{e}");

    // missing model.safetensors
    let d = copy("no_model");
    fs::remove_file(d.join(MODEL_FILE)).unwrap();
    let e = err(load(&d));
    assert!(
        e.contains(&format!("no_model/{MODEL_FILE}")) && e.contains("not found"),
        "{e}"
    );

    // truncated anywhere: in the length prefix, in the header, in the data; empty; garbage
    let d = copy("truncated");
    let header_len = u64::from_le_bytes(model_bytes[..8].try_into().unwrap()) as usize;
    for cut in [
        0,
        5,
        8,
        8 + header_len / 2,
        8 + header_len + 4,
        model_bytes.len() - 1,
    ] {
        fs::write(d.join(MODEL_FILE), &model_bytes[..cut]).unwrap();
        let e = err(load(&d));
        assert!(
            e.contains(&format!("truncated/{MODEL_FILE}")),
            "cut {cut}: {e}"
        );
        assert!(e.contains("truncated or corrupt"), "cut {cut}: {e}");
        let e = err(read_safetensors(&d.join(MODEL_FILE)));
        assert!(e.contains("truncated or corrupt"), "cut {cut}: {e}");
    }
    let mut garbage = model_bytes.clone();
    garbage[10] = b'#'; // breaks the JSON header
    fs::write(d.join(MODEL_FILE), &garbage).unwrap();
    let e = err(load(&d));
    assert!(e.contains(MODEL_FILE) && e.contains("corrupt"), "{e}");
    let mut huge = model_bytes.clone();
    huge[..8].copy_from_slice(&u64::MAX.to_le_bytes());
    fs::write(d.join(MODEL_FILE), &huge).unwrap();
    assert!(err(load(&d)).contains("not a valid safetensors file"));

    // a file where a directory should be
    let e = err(load(&good.join(MODEL_FILE)));
    assert!(e.contains("is not a directory"), "{e}");
    let e = err(save(&good.join(CONFIG_FILE), &c, &refs(&w)));
    assert!(e.contains("is not a directory"), "{e}");
    fs::remove_dir_all(root).unwrap();
}

#[test]
fn safetensors_files_with_ids_round_trip() {
    let root = temp_dir("files");
    let path = root.join("sub").join("batch.safetensors");
    let ids: Vec<i64> = vec![0, 1, 50303, -1, i64::MAX, i64::MIN];
    let ids32: Vec<i32> = vec![7, -7, i32::MAX];
    let loss = [2.5f32];
    let logits: Vec<f32> = (0..24).map(|i| i as f32 * 0.5 - 3.0).collect();
    write_safetensors(
        &path,
        &[
            ("input_ids", &[2, 3], HostSlice::I64(&ids)),
            ("mask", &[3], HostSlice::I32(&ids32)),
            ("loss", &[], HostSlice::F32(&loss)),
            ("logits", &[2, 3, 4], HostSlice::F32(&logits)),
        ],
    )
    .unwrap();
    let got = read_safetensors(&path).unwrap();
    assert_eq!(got.len(), 4);
    assert_eq!(got["input_ids"].shape, [2, 3]);
    assert_eq!(got["input_ids"].data.as_i64().unwrap(), &ids[..]);
    assert_eq!(
        got["mask"].data,
        HostData::I64(vec![7, -7, i32::MAX as i64])
    );
    assert!(got["loss"].shape.is_empty());
    assert_eq!(got["loss"].data.as_f32().unwrap(), &loss[..]);
    assert_eq!(got["logits"].data.as_f32().unwrap(), &logits[..]);

    // overwriting is atomic and leaves no temporary file behind
    let again: Vec<(&str, &[usize], HostSlice)> = got
        .iter()
        .filter(|(n, _)| n.as_str() != "mask")
        .map(|(n, t)| (n.as_str(), t.shape.as_slice(), t.data.as_slice()))
        .collect();
    write_safetensors(&path, &again).unwrap();
    let got2 = read_safetensors(&path).unwrap();
    assert_eq!(got2.len(), 3);
    assert_eq!(got2["input_ids"], got["input_ids"]);
    let names: Vec<_> = fs::read_dir(path.parent().unwrap())
        .unwrap()
        .map(|e| e.unwrap().file_name().into_string().unwrap())
        .collect();
    assert_eq!(names, ["batch.safetensors"]);

    // bad input is refused, the file is unchanged
    let e = err(write_safetensors(
        &path,
        &[("x", &[2, 2], HostSlice::F32(&loss))],
    ));
    assert!(
        e.contains("'x'") && e.contains("[2, 2] holds 4 values but 1 were given"),
        "{e}"
    );
    assert_eq!(read_safetensors(&path).unwrap(), got2);

    // other integer widths read as i64
    let u32s: Vec<u8> = [3u32, u32::MAX]
        .iter()
        .flat_map(|v| v.to_le_bytes())
        .collect();
    let u8s = vec![200u8, 1];
    let views = vec![
        ("u32", TensorView::new(Dtype::U32, vec![2], &u32s).unwrap()),
        ("u8", TensorView::new(Dtype::U8, vec![2], &u8s).unwrap()),
    ];
    let other = root.join("ints.safetensors");
    safetensors::serialize_to_file(views, None, &other).unwrap();
    let got = read_safetensors(&other).unwrap();
    assert_eq!(got["u32"].data, HostData::I64(vec![3, u32::MAX as i64]));
    assert_eq!(got["u8"].data, HostData::I64(vec![200, 1]));

    let e = err(read_safetensors(&root.join("nothing.safetensors")));
    assert!(
        e.contains("nothing.safetensors") && e.contains("not found"),
        "{e}"
    );
    fs::remove_dir_all(root).unwrap();
}

/// PyTorch wrote these (tests/reference/pico_reference.py): they load and match their config.
#[test]
fn pytorch_fixtures_load_and_match_their_config() {
    for (name, d, layers, v) in [("pico_mini", 32, 2, 97), ("pico_tiny_shape", 96, 1, 256)] {
        let ckpt = load_checked(&fixture(name)).unwrap();
        let c = &ckpt.config;
        assert_eq!(
            (c.d_model, c.n_layers, c.vocab_size),
            (d, layers, v),
            "{name}"
        );
        assert_eq!(
            (c.norm_eps, c.position_emb_theta, c.relora.clone()),
            (1e-6, 10000.0, None)
        );
        assert_eq!(ckpt.tensors.len(), 3 + 9 * layers);
        for spec in c.param_specs() {
            let t = &ckpt.tensors[&spec.name];
            assert_eq!(t.data.len(), spec.numel());
            assert!(
                t.data.iter().all(|x| x.is_finite()),
                "{name}: {}",
                spec.name
            );
            if spec.name.ends_with("norm.weight") {
                assert!(t.data.iter().all(|&x| x == 1.0), "{}", spec.name);
            } else if spec.name != "embedding_proj.weight" {
                // nn.Linear default init: U(-1/sqrt(in), 1/sqrt(in))
                let bound = 1.0 / (spec.shape[1] as f32).sqrt();
                assert!(t.data.iter().all(|x| x.abs() <= bound), "{}", spec.name);
            }
        }
        let batch = read_safetensors(&fixture(name).join("batch.safetensors")).unwrap();
        let ids = batch["input_ids"].data.as_i64().unwrap();
        assert_eq!(batch["input_ids"].shape.len(), 2);
        assert!(ids.iter().all(|&i| (0..v as i64).contains(&i)), "{name}");
        let expected = read_safetensors(&fixture(name).join("expected.safetensors")).unwrap();
        assert!(expected["loss"].shape.is_empty());
        assert!(expected["loss"].data.as_f32().unwrap()[0] > 0.0);
    }

    // and saving one back gives the same tensors, bit for bit
    let ckpt = load_checked(&fixture("pico_mini")).unwrap();
    let root = temp_dir("fixture_resave");
    let dir = root.join("copy");
    let list: Vec<(&str, &[usize], &[f32])> = ckpt
        .tensors
        .iter()
        .map(|(n, t)| (n.as_str(), t.shape.as_slice(), t.data.as_slice()))
        .collect();
    checkpoint::save(&dir, &ckpt.config, &list).unwrap();
    let back = load_checked(&dir).unwrap();
    assert_eq!(back.tensors, ckpt.tensors);
    assert_eq!(back.config, ckpt.config);
    fs::remove_dir_all(root).unwrap();
}
